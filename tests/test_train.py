"""Child training's optimiser: the multi-tensor (foreach) update is the reference update, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nasforge.estimators import train as train_module
from nasforge.estimators.train import OPTIMIZERS, TrainRecipe, train_network
from nasforge.spaces.base import space_of_section


def _reference_optimizer(model, recipe, ours=train_module._optimizer):
    """The same optimisers with torch's per-tensor loop (its CPU default)."""
    return ours(model, recipe, foreach=False)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_foreach_update_equals_the_per_tensor_update(optimizer, mnist1d_slice, monkeypatch):
    data = mnist1d_slice
    space = space_of_section({"name": "chain-cnn", "num_layers": 3})
    tokens = space.sample(np.random.default_rng(4))
    recipe = TrainRecipe(epochs=2, optimizer=optimizer)
    assert train_module._optimizer(space.build(tokens, data.input_shape, 10), recipe).defaults["foreach"] is True

    def trained():
        torch.manual_seed(0)
        model = space.build(tokens, data.input_shape, data.num_classes)
        history = train_network(model, data.x_train[:400], data.y_train[:400], recipe, 0, torch.device("cpu"),
                                data.x_train[400:], data.y_train[400:])
        return model, history

    ours, ours_history = trained()
    monkeypatch.setattr(train_module, "_optimizer", _reference_optimizer)
    reference, reference_history = trained()
    assert ours_history == reference_history
    for (name, a), (_, b) in zip(ours.state_dict().items(), reference.state_dict().items()):
        assert torch.equal(a, b), name

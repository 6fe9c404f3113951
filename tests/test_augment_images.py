"""Image augmentation (training.crop_padding, training.flip): by hand on tiny tensors, off by default
(bit-identical training), labels untouched, refused on 1-D data, recorded in the stored config."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nasforge.estimators.augment import random_crop, random_flip
from nasforge.estimators.train import TrainEstimator, TrainRecipe, train_network

def images(n: int = 3, h: int = 3, w: int = 4) -> torch.Tensor:
    return torch.arange(1, n * 2 * h * w + 1, dtype=torch.float32).reshape(n, 2, h, w)


def test_crop_by_hand_on_a_tiny_tensor():
    x = images()
    offsets = torch.randint(0, 3, (3, 2), generator=torch.Generator().manual_seed(5))  # what the crop draws
    got = random_crop(x, 1, torch.Generator().manual_seed(5))
    for i, (top, left) in enumerate(offsets.tolist()):
        padded = np.zeros((2, 5, 6), dtype=np.float32)
        padded[:, 1:4, 1:5] = x[i].numpy()
        np.testing.assert_array_equal(got[i].numpy(), padded[:, top:top + 3, left:left + 4])
    assert sorted({tuple(o) for o in offsets.tolist()}) != [(1, 1)]  # not all the identity crop
    corner = random_crop(torch.ones(1, 1, 2, 2), 2, torch.Generator().manual_seed(0))
    assert corner.shape == (1, 1, 2, 2)


def test_crop_offset_zero_shows_the_padding():
    x = torch.ones(1, 1, 2, 3)
    gen = torch.Generator()
    for seed in range(50):  # find a draw of (0, 0): the top-left corner of the padded image
        if torch.randint(0, 3, (1, 2), generator=gen.manual_seed(seed)).tolist() == [[0, 0]]:
            break
    got = random_crop(x, 1, torch.Generator().manual_seed(seed))
    assert got[0, 0].tolist() == [[0, 0, 0], [0, 1, 1]]


def test_flip_by_hand_on_a_tiny_tensor():
    x = images(n=8)
    flipped = (torch.rand(8, generator=torch.Generator().manual_seed(3)) < 0.5).tolist()
    got = random_flip(x, True, torch.Generator().manual_seed(3))
    assert 0 < sum(flipped) < 8
    for i, f in enumerate(flipped):
        want = x[i].numpy()[:, :, ::-1] if f else x[i].numpy()
        np.testing.assert_array_equal(got[i].numpy(), want)


def test_off_draws_nothing_and_returns_the_input():
    x, gen = images(), torch.Generator().manual_seed(0)
    state = gen.get_state()
    assert random_crop(x, 0, gen) is x and random_flip(x, False, gen) is x
    assert torch.equal(gen.get_state(), state)


def _trained(recipe: TrainRecipe, x, y):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(4 * 36, 3))
    train_network(model, x, y, recipe, seed=1, device=torch.device("cpu"))
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_training_is_bit_identical_with_the_settings_absent_and_changes_when_on():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 1, 6, 6)).astype(np.float32), rng.integers(0, 3, 40)
    absent = _trained(TrainRecipe(epochs=2, batch_size=8), x, y)
    off = _trained(TrainRecipe(epochs=2, batch_size=8, crop_padding=0, flip=False), x, y)
    assert torch.equal(absent, off)
    assert not torch.equal(absent, _trained(TrainRecipe(epochs=2, batch_size=8, crop_padding=1), x, y))
    assert not torch.equal(absent, _trained(TrainRecipe(epochs=2, batch_size=8, flip=True), x, y))


def test_labels_untouched():
    """Labels reach the loss as they are: a network that memorises a label per batch position."""
    seen = []

    class Spy(torch.nn.CrossEntropyLoss):
        def forward(self, out, target):
            seen.append(target.clone())
            return super().forward(out, target)

    import nasforge.estimators.train as train_module

    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((16, 1, 4, 4)).astype(np.float32), rng.integers(0, 3, 16)
    real = train_module.nn.CrossEntropyLoss
    train_module.nn.CrossEntropyLoss = Spy
    try:
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
        train_network(model, x, y, TrainRecipe(epochs=1, batch_size=16, crop_padding=2, flip=True), 0,
                      torch.device("cpu"))
    finally:
        train_module.nn.CrossEntropyLoss = real
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(seen[0], torch.as_tensor(y)[perm])


def test_refused_on_one_dimensional_data_and_bad_values():
    with pytest.raises(ValueError, match="crop_padding and training.flip augment images"):
        random_crop(torch.ones(2, 1, 8), 1, torch.Generator())
    with pytest.raises(ValueError, match="2-D data"):
        random_flip(torch.ones(2, 1, 8), True, torch.Generator())
    for bad in ({"crop_padding": -1}, {"crop_padding": 1.5}, {"crop_padding": True}, {"flip": 1}):
        with pytest.raises(ValueError):
            TrainRecipe(**bad).check()
    from nasforge.spaces.base import create_space

    estimator = TrainEstimator(dataset="mnist1d", epochs=1, flip=True)
    with pytest.raises(ValueError, match="this data is 1-D"):
        estimator.setup(create_space("chain-cnn", num_layers=2))


def test_recorded_in_the_estimator_config():
    estimator = TrainEstimator(dataset="digits", epochs=1, crop_padding=2, flip=True)
    assert estimator.settings()["crop_padding"] == 2 and estimator.settings()["flip"] is True

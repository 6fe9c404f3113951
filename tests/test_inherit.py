"""Children that start from trained weights (``training.init_weights``): every tensor of a trained
network reaches the same architecture at other bit widths, a child that inherits a trained network
starts where it ended, and a missing or useless file is refused by name (exit 2 before any child,
or a failed trial, never a failed search)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cli_paths import error_line, json_out, nasforge, ok

from nasforge.estimators.base import TrialFailed
from nasforge.estimators.inherit import inherit, plain_name, read_weights
from nasforge.estimators.train import TrainEstimator, TrainRecipe, train_network
from nasforge.quant.layers import layer_bits, quantisable_layers
from nasforge.spaces.chain_cnn import ChainCNNSpace
from nasforge.store import Store
from nasforge.stored_config import read_config

TINY = ["--layers", "2", "--epochs", "1", "--batch-size", "64", "--strategy", "random", "--seed", "1"]


def _architecture(space: ChainCNNSpace, seed: int = 3):
    return space.sample(np.random.default_rng(seed))


def test_plain_names_drop_only_the_parametrisation_path():
    assert plain_name("body.2.conv.parametrizations.weight.original") == "body.2.conv.weight"
    assert plain_name("head.parametrizations.weight.original") == "head.weight"
    for kept in ("body.2.conv.weight", "body.2.bn.running_mean", "body.2.conv.act_quant.max_abs"):
        assert plain_name(kept) == kept


def test_a_quantised_child_gets_every_weight_of_the_trained_plain_network(mnist1d_slice, tmp_path):
    plain = ChainCNNSpace(num_layers=4)
    tokens = _architecture(plain)
    trained = plain.build(tokens, mnist1d_slice.input_shape, mnist1d_slice.num_classes)
    with torch.no_grad():  # not fresh values: a copy is told apart from a new initialisation
        for tensor in trained.state_dict().values():
            if tensor.is_floating_point():
                tensor.normal_()
    torch.save(trained.state_dict(), tmp_path / "w.pt")
    mixed = ChainCNNSpace(num_layers=4, mixed_precision=True, architecture=list(tokens))
    bits = _architecture(mixed, seed=5)
    child = mixed.build(bits, mnist1d_slice.input_shape, mnist1d_slice.num_classes)
    assert any(layer_bits(layer)["weight_bits"] < 32 for layer in quantisable_layers(child))
    copied = inherit(child, read_weights(str(tmp_path / "w.pt")))
    assert copied == len(trained.state_dict())  # every tensor of the file found its place
    # the reference: the trained network's own layers, in the same order as the child's
    for theirs, ours in zip(quantisable_layers(trained), quantisable_layers(child)):
        latent = ours.parametrizations.weight.original if hasattr(ours, "parametrizations") else ours.weight
        assert torch.equal(latent, theirs.weight)
        assert (ours.bias is None) == (theirs.bias is None)
        assert ours.bias is None or torch.equal(ours.bias, theirs.bias)
    own = child.state_dict()
    for name, tensor in trained.state_dict().items():
        if "running" in name or "num_batches" in name:
            assert torch.equal(own[name], tensor)


def test_an_inheriting_child_starts_where_the_trained_network_ended(mnist1d_slice, tmp_path):
    # learning rate ~0: what a child scores is what it started from
    data, space = mnist1d_slice, ChainCNNSpace(num_layers=3)
    tokens = _architecture(space, seed=1)  # one that learns on this small slice: about 1 in 3 after 10 epochs
    estimator = TrainEstimator(epochs=1, learning_rate=1e-12, weight_decay=0.0, val_fraction=0.25)
    estimator.setup(space, data)
    torch.manual_seed(0)
    model = space.build(tokens, data.input_shape, data.num_classes)
    history = train_network(model, estimator.x_train, estimator.y_train, TrainRecipe(epochs=10), 0,
                            torch.device("cpu"), estimator.x_val, estimator.y_val)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    fresh = estimator.evaluate(tokens, seed=1)["val_acc"]
    inheriting = TrainEstimator(epochs=1, learning_rate=1e-12, weight_decay=0.0, val_fraction=0.25,
                                init_weights=str(tmp_path / "w.pt"))
    inheriting.setup(space, data)
    started = inheriting.evaluate(tokens, seed=1)["val_acc"]
    assert history[-1] > fresh + 0.15  # the trained network is far from a fresh one (chance: 0.1)
    assert abs(started - history[-1]) <= 0.03  # batch-norm statistics are re-estimated: a few signals move


def test_a_child_that_shares_no_tensor_fails_its_trial(mnist1d_slice, tmp_path):
    torch.save({"elsewhere.weight": torch.zeros(3, 3)}, tmp_path / "w.pt")
    space = ChainCNNSpace(num_layers=2)
    estimator = TrainEstimator(epochs=1, init_weights=str(tmp_path / "w.pt"))
    estimator.setup(space, mnist1d_slice)
    with pytest.raises(TrialFailed, match=r"1 of the file's 1 tensors have no place .*elsewhere.weight: no such entry"):
        estimator.evaluate(_architecture(space), seed=0)


def test_a_file_of_another_network_fails_even_where_some_layers_fit(mnist1d_slice):
    # two networks of one space that share their first layers: the file's other tensors have no
    # place, so the child is refused instead of starting half from the file and half fresh
    space, data = ChainCNNSpace(num_layers=3), mnist1d_slice
    first = _architecture(space, seed=3)
    model = space.build(first, data.input_shape, data.num_classes)
    shapes = {name: value.shape for name, value in model.state_dict().items()}
    for seed in range(200):
        other = _architecture(space, seed=seed)
        theirs = space.build(other, data.input_shape, data.num_classes).state_dict()
        fitting = [n for n, t in theirs.items() if n in shapes and shapes[n] == t.shape]
        if fitting and len(fitting) < len(theirs):
            break
    else:
        pytest.fail("no pair of architectures that share only some layers")
    before = {n: t.clone() for n, t in model.state_dict().items()}
    with pytest.raises(TrialFailed, match=r"tensors have no place in this child .*: (no such entry|shape)"):
        inherit(model, theirs)
    assert all(torch.equal(before[n], t) for n, t in model.state_dict().items())  # nothing half-copied


@pytest.mark.parametrize("content, words", [(None, "no file at"), (b"not a tensor file", "not a torch state dict"),
                                            ({}, "no state dict")])
def test_a_bad_weights_file_stops_the_search_with_exit_2(content, words, tmp_path, mnist1d_npz):
    path = tmp_path / "w.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    run = nasforge(["search", "--dataset", mnist1d_npz, *TINY, "--budget", "1", "--experiment", "e", "--quiet",
                    "--set", f'training.init_weights="{path}"'], cwd=tmp_path)
    assert run.returncode == 2 and words in error_line(run) and "Traceback" not in run.stderr


def test_a_search_from_a_found_networks_weights_stores_the_path_and_reads_back(tmp_path, mnist1d_npz):
    # the user's path: an fp32 search, its best's weights, then a search of its bit widths from them
    ok(nasforge(["search", "--dataset", mnist1d_npz, *TINY, "--budget", "1", "--experiment", "fp", "--quiet"],
                cwd=tmp_path))
    network = json_out(nasforge(["best", "--experiment", "fp", "--json"], cwd=tmp_path))[0]
    space = ChainCNNSpace(num_layers=2)
    model = space.build(tuple(network["tokens"]), (1, 40), 10)
    (tmp_path / "weights").mkdir()
    torch.save(model.state_dict(), tmp_path / "weights" / "fp.pt")
    flags = ["--set", "space.mixed_precision=true", "--set", f"space.architecture={network['tokens']}",
             "--set", 'training.init_weights="weights/fp.pt"']
    ok(nasforge(["search", "--dataset", mnist1d_npz, *TINY, "--budget", "2", "--experiment", "bits", "--quiet",
                 *flags], cwd=tmp_path))
    trials = json_out(nasforge(["trials", "--experiment", "bits", "--json"], cwd=tmp_path))
    assert [t["state"] for t in trials] == ["COMPLETE", "COMPLETE"]
    with Store(tmp_path / "bits" / "trials.sqlite", readonly=True) as store:
        stored = read_config(store)
    assert stored["training"]["init_weights"] == str(tmp_path / "weights" / "fp.pt")  # absolute
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ok(nasforge(["search", "--experiment", str(tmp_path / "bits"), "--resume", "--budget", "3", "--quiet"],
                cwd=elsewhere))
    assert len(json_out(nasforge(["trials", "--experiment", "bits", "--json"], cwd=tmp_path))) == 3

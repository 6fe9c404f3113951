"""The chain-cnn supernet and the shared-weights estimator.

The central contract (issue 6): given the supernet's weights, the stand-alone network of the same
architecture computes the same output. Then: which weights an architecture shares with another,
the supernet's size, the estimator's metrics, determinism and resume.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nasforge.estimators.base import ESTIMATORS, create_estimator
from nasforge.estimators.supernet import ChainSuperNet, make_plan, reachable_sizes, supernet_parameters
from nasforge.estimators.weight_sharing import SharedWeightsEstimator
from nasforge.objectives.hardware import count_flops, count_params
from nasforge.spaces.chain_cnn import ChainCNNSpace

SHAPES = {1: (2, 23), 2: (2, 9, 7)}  # odd sizes exercise the zero-padding of mismatched inputs


@functools.lru_cache(maxsize=None)
def perturbed_supernet(dims: int, num_layers: int) -> ChainSuperNet:
    """A supernet whose every parameter and running statistic is random, so no slice is trivial."""
    torch.manual_seed(dims * 10 + num_layers)
    net = ChainSuperNet(ChainCNNSpace(num_layers=num_layers, dims=dims), SHAPES[dims], 5)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
        for name, b in net.named_buffers():
            b.copy_(torch.rand_like(b) + (0.5 if name.endswith("running_var") else -0.5))
    return net


def tokens_strategy(space: ChainCNNSpace):
    return st.tuples(*[st.integers(0, d.size - 1) for d in space.decisions])


def _spec(layers, readout="avg", depth=0, width=64, dims=1, size=(16,), channels=1):
    return {"dims": dims, "in_channels": channels, "input_size": list(size), "num_classes": 3,
            "layers": [{"op": op, "kernel": [k] * dims, "filters": f, "stride": s, "inputs": inp}
                       for op, k, f, s, inp in layers],
            "head": {"depth": depth, "width": width}, "readout": readout}


# ---- the supernet computes what the stand-alone network computes --------------------------------------
@pytest.mark.parametrize("dims,num_layers", [(1, 6), (2, 4)])
def test_supernet_matches_stand_alone_network(dims, num_layers):
    net = perturbed_supernet(dims, num_layers)
    space = net.space

    @settings(max_examples=25, deadline=None)
    @given(tokens=tokens_strategy(space), train=st.booleans())
    def check(tokens, train):
        child = net.extract(tokens)
        x = torch.randn(6, *SHAPES[dims], generator=torch.Generator().manual_seed(sum(tokens)))
        saved = {k: v.clone() for k, v in net.named_buffers()}
        net.train(train)
        child.train(train)
        net.batch_stats_in_eval = False  # eval mode then uses running statistics, as ChainNet does
        try:
            with torch.no_grad():
                expected, got = child(x), net(x, tokens)
        finally:
            net.batch_stats_in_eval = True
            for k, v in net.named_buffers():
                v.copy_(saved[k])
        assert got.shape == (6, 5)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)

    check()


def test_extracted_network_has_the_stand_alone_parameter_count():
    net = perturbed_supernet(1, 6)
    rng = np.random.default_rng(0)
    for _ in range(10):
        tokens = net.space.sample(rng)
        reference = net.space.build(tokens, SHAPES[1], 5)
        assert count_params(net.extract(tokens)) == count_params(reference)


def test_batch_statistics_in_eval_leave_running_statistics_alone():
    net = perturbed_supernet(1, 6)
    tokens = net.space.sample(np.random.default_rng(1))
    before = {k: v.clone() for k, v in net.named_buffers()}
    net.eval()
    with torch.no_grad():
        net(torch.randn(8, *SHAPES[1]), tokens)
    for k, v in net.named_buffers():
        assert torch.equal(v, before[k]), k


# ---- what is shared ---------------------------------------------------------------------------------
def test_plan_tracks_channel_origins_by_hand():
    # L0 conv 8 filters <- input; L1 identity <- L0; L2 maxpool /2 <- L0 + L1; L3 conv 4 /2 <- L1 + L2.
    spec = _spec([("conv", 3, 8, 1, []), ("identity", 1, 24, 1, [0]), ("maxpool", 3, 24, 2, [0, 1]),
                  ("conv", 5, 4, 2, [1, 2])])
    plan = make_plan(spec)
    assert plan.layers[0].inputs == [(0, 1)]
    assert plan.layers[1].inputs == [(1, 8)]
    assert plan.layers[2].inputs == [(1, 8), (1, 8)]  # L1 passes L0's channels on
    assert plan.layers[3].inputs == [(1, 8), (1, 8), (1, 8)]
    # Sizes: L0 16, L1 16, L2 8; L3 reads max(16, 8) = 16 and halves it to 8. Only L3 is unread.
    assert plan.final == [3]
    assert plan.feature_size == [8]
    assert plan.features == [(4, 4)]


def test_a_channel_meets_the_same_weights_whatever_its_neighbours():
    space = ChainCNNSpace(num_layers=3, dims=1)
    net = ChainSuperNet(space, (1, 20), 4)
    base = {"L0.op": "conv", "L0.kernel": 3, "L0.filters": 24, "L0.stride": 1,
            "L1.from_L0": 1, "L1.op": "conv", "L1.kernel": 3, "L1.filters": 36, "L1.stride": 1,
            "L2.op": "conv", "L2.kernel": 5, "L2.filters": 48, "L2.stride": 1,
            "readout": "avg", "head.depth": 0, "head.width": 64}
    alone = space.decode({**base, "L2.from_L0": 1, "L2.from_L1": 0})
    both = space.decode({**base, "L2.from_L0": 1, "L2.from_L1": 1})
    w_alone = net.extract(alone).layers[2].body[0].weight
    w_both = net.extract(both).layers[2].body[0].weight
    assert w_alone.shape == (48, 24, 5) and w_both.shape == (48, 24 + 36, 5)
    assert torch.equal(w_alone, w_both[:, :24])  # L0's channels: same block in both architectures
    assert torch.equal(w_both[:, 24:], net.convs[2]["k5"].weight[2][:48, :36].detach())  # L1's block
    # fewer filters are the first rows of the same tensor
    fewer = space.decode({**base, "L2.from_L0": 1, "L2.from_L1": 0, "L2.filters": 24})
    assert torch.equal(net.extract(fewer).layers[2].body[0].weight, w_alone[:24])


def test_a_training_step_changes_only_the_blocks_the_child_used(mnist1d_slice):
    space = ChainCNNSpace(num_layers=3, dims=1)
    est = SharedWeightsEstimator(warmup_steps=0, steps=2, batch_size=16, device="cpu")
    est.setup(space, mnist1d_slice)
    tokens = space.decode({"L0.op": "conv", "L0.kernel": 3, "L0.filters": 24, "L0.stride": 1,
                           "L1.from_L0": 1, "L1.op": "maxpool", "L1.kernel": 3, "L1.filters": 24, "L1.stride": 2,
                           "L2.from_L0": 0, "L2.from_L1": 1, "L2.op": "conv", "L2.kernel": 7, "L2.filters": 36,
                           "L2.stride": 1, "readout": "avg", "head.depth": 1, "head.width": 64})
    before = {k: v.clone() for k, v in est.supernet.named_parameters()}
    est.evaluate(tokens, seed=0)
    changed = {k for k, v in est.supernet.named_parameters() if not torch.equal(v, before[k])}
    assert changed == {
        "convs.0.k3.weight.0", "convs.0.k3.bn_weight", "convs.0.k3.bn_bias",
        "convs.2.k7.weight.1", "convs.2.k7.bn_weight", "convs.2.k7.bn_bias",  # L2 reads L0's channels via L1
        "first.avg_hidden.weight.3", "first.avg_hidden.bias", "last.weight.0", "last.bias",
    }


def test_reachable_sizes_and_supernet_size_by_hand():
    assert reachable_sizes([40], 6) == [(40,), (20,), (10,), (5,), (3,), (2,), (1,)]
    assert reachable_sizes([9, 7], 2) == [(9, 7), (5, 4), (3, 2)]
    # one layer, 1-D, 1 input channel, 3 classes: convs 64*1*(1+3+5+7) + 4*2*64 batch-norm;
    # first head layer: feature-map sizes 4 and 2, so (256 + 3) outputs * (1 + 64) origin channels *
    # (1 avg + 4 + 2 positions) + (256 + 3) * 3 biases;
    # second 256*256 + 256; last 3*256 + 3.
    space = ChainCNNSpace(num_layers=1, dims=1)
    expected = 64 * 16 + 512 + 259 * 65 * 7 + 259 * 3 + 256 * 256 + 256 + 3 * 256 + 3
    assert reachable_sizes([4], 1) == [(4,), (2,)]
    assert supernet_parameters(space, (1, 4), 3) == expected
    assert sum(p.numel() for p in ChainSuperNet(space, (1, 4), 3).parameters()) == expected
    big = ChainCNNSpace(num_layers=6, dims=1)
    assert supernet_parameters(big, (1, 40), 10) == sum(p.numel() for p in ChainSuperNet(big, (1, 40), 10).parameters())


# ---- the estimator ----------------------------------------------------------------------------------
def test_registered_and_refuses_bad_input(mnist1d_slice):
    assert "shared-weights" in ESTIMATORS
    assert isinstance(create_estimator("shared-weights", steps=1), SharedWeightsEstimator)
    for bad, word in [({"steps": -1}, "steps"), ({"batch_size": 1}, "batch_size"),
                      ({"optimizer": "lbfgs"}, "optimizer"), ({"learning_rate": 0}, "learning_rate"),
                      ({"val_fraction": 1.0}, "val_fraction"), ({"eval_size": -5}, "eval_size")]:
        with pytest.raises(ValueError, match=word):
            SharedWeightsEstimator(**bad)
    est = SharedWeightsEstimator()
    from nasforge.spaces.base import SearchSpace, Decision

    class Other(SearchSpace):
        name = "other"
        decisions = [Decision("a", (0, 1))]

    with pytest.raises(ValueError, match="chain-cnn"):
        est.setup(Other(), mnist1d_slice)
    with pytest.raises(ValueError, match="2-D"):
        est.setup(ChainCNNSpace(num_layers=2, dims=2), mnist1d_slice)
    with pytest.raises(ValueError, match="max_supernet_params"):
        SharedWeightsEstimator(max_supernet_params=1000).setup(ChainCNNSpace(2, 1), mnist1d_slice)
    with pytest.raises(ValueError, match="mixed_precision"):
        SharedWeightsEstimator().setup(ChainCNNSpace(2, 1, mixed_precision=True), mnist1d_slice)
    with pytest.raises(RuntimeError, match="setup"):
        SharedWeightsEstimator().evaluate((0,), 0)


def test_metrics_are_those_of_the_stand_alone_network(mnist1d_slice):
    space = ChainCNNSpace(num_layers=4, dims=1)
    est = SharedWeightsEstimator(warmup_steps=3, steps=2, batch_size=32, eval_size=50, device="cpu")
    est.setup(space, mnist1d_slice)
    rng = np.random.default_rng(4)
    first = est.evaluate(space.sample(rng), seed=1)
    assert first["warmup_steps"] == 3 and first["shared_steps"] == 5 and first["supernet_steps"] == 5
    n_train = len(est.y_train)
    assert first["epochs"] == pytest.approx(5 * 32 / n_train)
    tokens = space.sample(rng)
    m = est.evaluate(tokens, seed=2)
    assert m["warmup_steps"] == 0 and m["supernet_steps"] == 7
    model = space.build(tokens, mnist1d_slice.input_shape, 10)
    assert m["params"] == count_params(model)
    assert m["flops"] == count_flops(model, mnist1d_slice.input_shape)
    assert 0.0 <= m["val_acc"] <= 1.0
    assert m["val_acc"] * 50 == pytest.approx(round(m["val_acc"] * 50))  # a fraction of 50 signals


def test_deterministic_for_seeds_and_resumable(tmp_path, mnist1d_slice):
    space = ChainCNNSpace(num_layers=3, dims=1)
    rng = np.random.default_rng(7)
    archs = [space.sample(rng) for _ in range(5)]

    def fresh():
        est = SharedWeightsEstimator(warmup_steps=4, steps=3, batch_size=32, device="cpu")
        est.setup(space, mnist1d_slice)
        return est

    a, b = fresh(), fresh()
    for i, t in enumerate(archs[:3]):
        assert a.evaluate(t, i)["val_acc"] == b.evaluate(t, i)["val_acc"]
    a.save(tmp_path / "supernet.pt")
    resumed = fresh()
    resumed.load(tmp_path / "supernet.pt")
    assert resumed.steps_done == a.steps_done
    for i, t in enumerate(archs[3:], start=3):
        expected, got = a.evaluate(t, i), resumed.evaluate(t, i)
        assert got["warmup_steps"] == 0  # no second warm-up after a resume
        assert got["val_acc"] == expected["val_acc"] and got["train_loss"] == expected["train_loss"]
    for (k, v), w in zip(a.supernet.state_dict().items(), resumed.supernet.state_dict().values()):
        assert torch.equal(v, w), k
    other = SharedWeightsEstimator(warmup_steps=4, steps=9, batch_size=32, device="cpu")
    other.setup(space, mnist1d_slice)
    with pytest.raises(ValueError, match="steps: saved 3, now 9"):
        other.load(tmp_path / "supernet.pt")


@pytest.mark.slow
def test_shared_weights_learn_and_rank_a_good_network_above_a_trivial_one(mnist1d_slice):
    """After training on sampled children, a conv chain beats an all-identity chain with the shared weights."""
    space = ChainCNNSpace(num_layers=3, dims=1)
    est = SharedWeightsEstimator(warmup_steps=300, steps=20, batch_size=32, device="cpu")
    est.setup(space, mnist1d_slice)
    conv = {f"L{i}.{k}": v for i in range(3) for k, v in
            (("op", "conv"), ("kernel", 5), ("filters", 64), ("stride", 1))}
    edges = {f"L{i}.from_L{j}": int(j == i - 1) for i in range(3) for j in range(i)}
    good = space.decode({**conv, **edges, "readout": "flatten", "head.depth": 0, "head.width": 64})
    trivial = space.decode({**conv, **edges, **{f"L{i}.op": "identity" for i in range(3)},
                            "readout": "avg", "head.depth": 0, "head.width": 64})
    rng = np.random.default_rng(0)
    for i in range(10):
        est.evaluate(space.sample(rng), i)
        est.evaluate(good, 100 + i)
    acc_good = est.validation_accuracy(good, size=0)
    acc_trivial = est.validation_accuracy(trivial, size=0)
    assert acc_good > 0.4  # chance is 0.1
    assert acc_good > acc_trivial + 0.2


def test_a_search_with_shared_weights_checkpoints_them_and_resumes(tmp_path, mnist1d_slice):
    from nasforge import SearchConfig, Store, run_search
    from nasforge.config import ConfigError
    from nasforge.search import ESTIMATOR_CHECKPOINT, store_path

    config = SearchConfig(budget=4, seed=0)
    config.space = {"name": "chain-cnn", "num_layers": 2}
    config.strategy = {"name": "reinforce", "batch_size": 2}
    config.training = {"estimator": "shared-weights", "steps": 2, "warmup_steps": 4, "eval_size": 64}
    run_search(config, tmp_path / "exp", data=mnist1d_slice)
    checkpoint = tmp_path / "exp" / ESTIMATOR_CHECKPOINT
    assert checkpoint.exists()
    saved = torch.load(checkpoint, weights_only=True)
    config.budget = 6
    run_search(config, tmp_path / "exp", resume=True, data=mnist1d_slice)
    with Store(store_path(tmp_path / "exp")) as store:
        trials = store.trials()
    assert [t.state for t in trials] == ["COMPLETE"] * 6
    assert trials[-1].metrics["supernet_steps"] > trials[3].metrics["supernet_steps"]  # went on from the checkpoint
    assert trials[4].metrics["warmup_steps"] == trials[3].metrics["warmup_steps"]  # no second warm-up
    assert saved  # a real checkpoint, not an empty file
    config.execution = {"name": "local"}  # copies in worker processes would train apart
    with pytest.raises(ConfigError, match="inline"):
        run_search(config, tmp_path / "other", data=mnist1d_slice)

"""Single-path one-shot weight sharing (issue 19.3) on ``nb201-cell``.

The central contract: after a path's batch norm is recalibrated, the extracted stand-alone network
computes exactly what the supernet computes on that path. Then: what is shared, that the
recalibrated statistics are the stand-alone network's own on the calibration batches, the
estimator's mode and refusals, a checkpoint round trip, and the real CLI.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cli_paths import json_out, nasforge, ok
from nasforge.data.datasets import Dataset, load_dataset
from nasforge.estimators.cell_supernet import CellSuperNet
from nasforge.estimators.single_path import recalibrate
from nasforge.estimators.weight_sharing import SharedWeightsEstimator
from nasforge.spaces.base import SPACES

SHAPE = (1, 7, 6)  # odd sizes: the reductions round up


def _space(cells: int = 2, channels: int = 4):
    return SPACES.create("nb201-cell", cells_per_stage=cells, channels=channels)


@functools.lru_cache(maxsize=None)
def perturbed_supernet() -> CellSuperNet:
    """Every parameter and running statistic random, so no copied tensor can be trivially right."""
    torch.manual_seed(0)
    net = CellSuperNet(_space(), SHAPE, 5)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
        for name, b in net.named_buffers():
            if b.is_floating_point():
                b.copy_(torch.rand_like(b) + (0.5 if name.endswith("running_var") else -0.5))
    return net


@pytest.fixture(scope="module")
def digits() -> Dataset:
    d = load_dataset("digits")
    return Dataset("digits-small", d.x_train[:300], d.y_train[:300], d.x_test[:50], d.y_test[:50], d.num_classes)


def tokens_strategy():
    return st.tuples(*[st.integers(0, d.size - 1) for d in _space().decisions])


def assert_path_matches(net, tokens, train: bool) -> None:
    """Recalibrate the path, extract it, and compare both on one batch in train or eval mode."""
    x = torch.randn(6, *SHAPE, generator=torch.Generator().manual_seed(sum(tokens)))
    saved = {k: v.clone() for k, v in net.state_dict().items()}
    try:
        recalibrate(net, tokens, [torch.randn(8, *SHAPE), torch.randn(5, *SHAPE)])
        child = net.extract(tokens)
        net.train(train)
        child.train(train)
        with torch.no_grad():
            got, expected = net(x, tokens), child(x)
    finally:
        net.load_state_dict(saved)
    assert got.shape == (6, 5)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(tokens=tokens_strategy(), train=st.booleans())
def test_extracted_network_computes_what_the_supernet_computes(tokens, train):
    assert_path_matches(perturbed_supernet(), tokens, train)


def test_every_weighted_edge_choice_is_one_shared_weight_set():
    net, space = perturbed_supernet(), _space()
    conv3 = space.decisions[0].choices.index("nor_conv_3x3")
    a = net.extract((conv3, 1, 1, 1, 1, 1))  # edge 1<-0 a 3x3 convolution, the rest skips
    b = net.extract((conv3, 2, 2, 2, 2, 2))
    for cell_a, cell_b, shared in zip(a.blocks, b.blocks, net.blocks):
        if hasattr(shared, "choices"):  # a cell position: the same 3x3 weights in both networks
            weight = shared.choices["e10"]["nor_conv_3x3"][1].weight
            assert torch.equal(cell_a.ops[0][1].weight, weight) and torch.equal(cell_b.ops[0][1].weight, weight)
    cells = [blk for blk in net.blocks if hasattr(blk, "choices")]
    assert len(cells) == 6 and not torch.equal(cells[0].choices["e10"]["nor_conv_3x3"][1].weight,
                                               cells[1].choices["e10"]["nor_conv_3x3"][1].weight)


def test_recalibrated_statistics_are_the_stand_alone_networks_own():
    """Running the calibration batches through a fresh copy of the extracted network (cumulative
    averages from reset statistics) gives the statistics the supernet recalibrated to."""
    net, tokens = perturbed_supernet(), (3, 2, 4, 1, 3, 2)
    batches = [torch.randn(8, *SHAPE, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    saved = {k: v.clone() for k, v in net.state_dict().items()}
    try:
        reference = net.extract(tokens)
        recalibrate(net, tokens, batches)
        recalibrated = net.extract(tokens)
        for m in reference.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None
        reference.train()
        with torch.no_grad():
            for x in batches:
                reference(x)
    finally:
        net.load_state_dict(saved)
    stats = [k for k in reference.state_dict() if "running" in k]
    assert stats
    for k in stats:
        torch.testing.assert_close(recalibrated.state_dict()[k], reference.state_dict()[k], rtol=1e-6, atol=1e-6)


def test_mode_is_chosen_by_the_space_and_refused_where_it_does_not_fit(digits):
    est = SharedWeightsEstimator(warmup_steps=0, steps=0, batch_size=16, device="cpu")
    est.setup(_space(1, 4), digits)
    assert est.mode == "single-path"
    chain = SPACES.create("chain-cnn", num_layers=2, dims=2)
    with pytest.raises(ValueError, match="mode 'single-path' does not cover the 'chain-cnn'"):
        SharedWeightsEstimator(mode="single-path").setup(chain, digits)
    with pytest.raises(ValueError, match="mode 'enas' does not cover the 'nb201-cell'"):
        SharedWeightsEstimator(mode="enas").setup(_space(), digits)
    for bad, word in (({"mode": "darts"}, "mode"), ({"calibration_batches": 0}, "calibration_batches")):
        with pytest.raises(ValueError, match=word):
            SharedWeightsEstimator(**bad)


def test_scoring_never_trains_the_scored_path_and_steps_train_uniform_paths(digits):
    est = SharedWeightsEstimator(warmup_steps=2, steps=0, batch_size=16, device="cpu")
    est.setup(_space(1, 4), digits)
    tokens = (3, 3, 3, 3, 3, 3)
    first = est.evaluate(tokens, seed=0)
    weights = {k: v.clone() for k, v in est.supernet.named_parameters()}
    again = est.evaluate(tokens, seed=1)
    assert again["val_acc"] == first["val_acc"] and again["supernet_steps"] == 2  # frozen after warm-up
    assert all(torch.equal(v, weights[k]) for k, v in est.supernet.named_parameters())
    moving = SharedWeightsEstimator(warmup_steps=0, steps=3, batch_size=16, device="cpu")
    moving.setup(_space(1, 4), digits)
    assert moving.evaluate(tokens, seed=0)["supernet_steps"] == 3


def _estimator(space, data, **settings) -> SharedWeightsEstimator:
    est = SharedWeightsEstimator(**{"warmup_steps": 3, "steps": 2, "batch_size": 16, "device": "cpu", **settings})
    est.setup(space, data)
    return est


def test_checkpoint_round_trip_continues_identically(tmp_path, digits):
    space = _space(1, 4)
    rng = np.random.default_rng(5)
    archs = [space.sample(rng) for _ in range(4)]
    a = _estimator(space, digits)
    for i, t in enumerate(archs[:2]):
        a.evaluate(t, i)
    a.save(tmp_path / "estimator.pt")
    resumed = _estimator(space, digits)
    resumed.load(tmp_path / "estimator.pt")
    for i, t in enumerate(archs[2:], start=2):
        expected, got = a.evaluate(t, i), resumed.evaluate(t, i)
        assert {k: v for k, v in got.items() if "seconds" not in k} == \
            {k: v for k, v in expected.items() if "seconds" not in k}
    for (k, v), w in zip(a.supernet.state_dict().items(), resumed.supernet.state_dict().values()):
        assert torch.equal(v, w), k
    other = _estimator(space, digits, calibration_batches=2)
    with pytest.raises(ValueError, match="calibration_batches: saved 4, now 2"):
        other.load(tmp_path / "estimator.pt")


def test_an_older_chain_checkpoint_without_the_mode_still_loads(tmp_path, digits):
    chain = SPACES.create("chain-cnn", num_layers=2, dims=2)
    est = _estimator(chain, digits, warmup_steps=1, steps=1)
    state = est.state_dict()
    for key in ("mode", "calibration_batches"):
        del state["settings"][key]
    del state["last_loss"]
    torch.save(state, tmp_path / "old.pt")
    est.load(tmp_path / "old.pt")
    assert est.mode == "enas"


@pytest.mark.timeout(600)
def test_a_real_cli_search_completes_reads_back_and_resumes(tmp_path):
    common = ["search", "--dataset", "digits", "--experiment", "exp", "--space", "nb201-cell",
              "--set", "space.cells_per_stage=1", "--set", "space.channels=4",
              "--set", "training.estimator=shared-weights", "--set", "training.warmup_steps=20",
              "--set", "training.steps=2", "--strategy", "random"]
    ok(nasforge([*common, "--budget", "4"], cwd=tmp_path))
    assert (tmp_path / "exp" / "estimator.pt").exists()
    ok(nasforge([*common, "--budget", "5", "--resume"], cwd=tmp_path))
    rows = json_out(nasforge(["trials", "--json", "--experiment", "exp"], cwd=tmp_path))
    assert [r["state"] for r in rows] == ["COMPLETE"] * 5, rows
    steps = [r["metrics"]["supernet_steps"] for r in rows]
    assert steps == [22, 24, 26, 28, 30]  # one warm-up, then continued from the checkpoint
    assert all(0.0 <= r["metrics"]["val_acc"] <= 1.0 for r in rows)


# ---- mobile-blocks: the same contract on SPOS's choice blocks -----------------------------------------
MOBILE = {"stages": [[8, 1], [12, 2]], "max_blocks": 2, "stem_channels": 8, "head_channels": 16}


@functools.lru_cache(maxsize=None)
def perturbed_mobile_supernet(per_block: bool):
    from nasforge.estimators.mobile_supernet import MobileSuperNet

    torch.manual_seed(1)
    net = MobileSuperNet(SPACES.create("mobile-blocks", per_block=per_block, **MOBILE), SHAPE, 5)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    return net


@pytest.mark.parametrize("per_block", [True, False])
def test_extracted_mobile_network_computes_what_the_supernet_computes(per_block):
    net = perturbed_mobile_supernet(per_block)

    @settings(max_examples=20, deadline=None)
    @given(tokens=st.tuples(*[st.integers(0, d.size - 1) for d in net.space.decisions]), train=st.booleans())
    def check(tokens, train):
        assert_path_matches(net, tokens, train)

    check()


def test_mobile_choice_blocks_are_shared_by_position_and_choice():
    net = perturbed_mobile_supernet(True)
    space = net.space
    base = {d.name: d.choices[0] for d in space.decisions}
    one = space.decode({**base, "width": 1.0, "S0.blocks": 1, "S0.B0.kernel": 5, "S1.blocks": 1})
    two = space.decode({**base, "width": 1.0, "S0.blocks": 2, "S0.B0.kernel": 5, "S1.blocks": 2, "S1.B1.se": True})
    a, b = net.extract(one), net.extract(two)
    shared = net.widths["w2"]["positions"][0]["e1k5"]
    assert torch.equal(a.blocks[0].body[0][0].weight, shared.body[0][0].weight)  # stage 0's first block
    assert torch.equal(b.blocks[0].body[0][0].weight, shared.body[0][0].weight)
    assert torch.equal(a.blocks[1].body[0][0].weight, b.blocks[2].body[0][0].weight)  # stage 1's first block
    assert len(b.blocks) == 4 and len(a.blocks) == 2


def test_mobile_blocks_search_their_supernet_through_the_estimator(digits):
    space = SPACES.create("mobile-blocks", **MOBILE)
    est = _estimator(space, digits)
    assert est.mode == "single-path"
    metrics = est.evaluate(space.sample(np.random.default_rng(0)), seed=0)
    assert metrics["supernet_steps"] == 5 and 0.0 <= metrics["val_acc"] <= 1.0

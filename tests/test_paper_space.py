"""chain-cnn with paper=true: Zoph & Le's (2017) strided CIFAR-10 space, exactly (issue 15, item 15)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cli_paths import json_out, nasforge, ok, shown
from nasforge.spaces import create_space
from nasforge.spaces.chain_cnn import ChainCNNSpace

PAPER = ChainCNNSpace(num_layers=3, dims=2, paper=True)


def test_decisions_are_the_papers_by_hand():
    # per layer: the anchor's skips, filter height, filter width, stride height, stride width, filters
    per_layer = [("kernel_h", (1, 3, 5, 7)), ("kernel_w", (1, 3, 5, 7)), ("stride_h", (1, 2, 3)),
                 ("stride_w", (1, 2, 3)), ("filters", (24, 36, 48, 64))]
    expected = []
    for i in range(3):
        expected += [(f"L{i}.from_L{j}", (0, 1)) for j in range(i)]
        expected += [(f"L{i}.{name}", choices) for name, choices in per_layer]
    assert [(d.name, tuple(d.choices)) for d in PAPER.decisions] == expected
    assert len(PAPER.decisions) == 3 + 15  # 0 + 1 + 2 skips, five choices a layer; no op, readout, head
    # 20 layers (the reported strided network): 190 skips + 100 layer choices
    assert len(ChainCNNSpace(num_layers=20, dims=2, paper=True).decisions) == 290


def test_the_paper_setting_is_refused_on_1d_data_and_off_by_default():
    with pytest.raises(ValueError, match="needs 2-D data"):
        ChainCNNSpace(num_layers=3, dims=1, paper=True)
    with pytest.raises(ValueError, match="paper must be true or false"):
        ChainCNNSpace(dims=2, paper="yes")
    assert "paper" not in ChainCNNSpace(dims=2).config()  # earlier searches' stored settings unchanged
    assert create_space("chain-cnn", num_layers=3, dims=2, paper=True).config() == \
        {"num_layers": 3, "dims": 2, "paper": True}


def test_spec_has_separate_strides_and_the_fixed_ending():
    values = {d.name: d.choices[0] for d in PAPER.decisions}
    values.update({"L0.kernel_h": 3, "L0.kernel_w": 7, "L0.stride_h": 2, "L0.stride_w": 3, "L0.filters": 48,
                   "L2.from_L0": 1})
    spec = PAPER.spec(PAPER.decode(values), (1, 12, 12), 10)
    assert spec["layers"][0] == {"op": "conv", "kernel": [3, 7], "filters": 48, "stride": [2, 3], "inputs": []}
    assert spec["layers"][2]["inputs"] == [0]
    assert (spec["readout"], spec["head"]["depth"]) == ("avg", 0)
    net = PAPER.build(PAPER.decode(values), (1, 12, 12), 10)
    conv = net.layers[0].body[0]
    assert conv.kernel_size == (3, 7) and conv.stride == (2, 3) and conv.out_channels == 48
    # layer 0 (12x12 -> 6x4, 48 ch) feeds layer 2; layer 1 (reads the input: 24 ch) is read by no one
    assert net.layers[2].body[0].in_channels == 48
    assert net.final == [1, 2]
    assert [m for m in net.head if isinstance(m, nn.Linear)][0].in_features == 24 + 24  # one linear layer
    assert PAPER.summary(PAPER.decode(values)) == "C3x7x48/2x3 C1x1x24<in C1x1x24<0 | avg"
    assert PAPER.describe(PAPER.decode(values))[0] == "L0: conv 3x7, 48 filters, stride 2x3  <- input"


@settings(max_examples=20, deadline=None)
@given(st.tuples(*[st.integers(0, d.size - 1) for d in PAPER.decisions]))
def test_every_architecture_builds_and_runs(tokens):
    model = PAPER.build(tokens, (3, 9, 7), 4)
    out = model(torch.randn(2, 3, 9, 7))
    assert out.shape == (2, 4) and torch.isfinite(out).all()
    assert PAPER.canonical(tokens) == tokens  # nothing is ignored in the paper's space


def test_a_search_through_the_cli_on_2d_data_and_trials_reads_it_back(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 6, 6)).astype(np.float32)
    y = np.arange(60) % 3
    x[np.arange(60), y, :] += 2.0  # a learnable signal: the class picks a brighter row
    np.savez(tmp_path / "tiny.npz", x_train=x[:45], y_train=y[:45], x_test=x[45:], y_test=y[45:], layout="NHW")
    run = nasforge(["search", "--dataset", "tiny.npz", "--budget", "2", "--epochs", "1", "--workers", "1",
                    "--layers", "3", "--set", "space.paper=true"], cwd=tmp_path, timeout=280)
    ok(run)
    rows = json_out(nasforge(["trials", "--json"], cwd=tmp_path))
    assert [r["state"] for r in rows] == ["COMPLETE", "COMPLETE"], shown(run)
    names = [d.name for d in ChainCNNSpace(num_layers=3, dims=2, paper=True).decisions]
    for row in rows:
        assert len(row["tokens"]) == len(names) == 18
        assert 0.0 <= row["metrics"]["val_acc"] <= 1.0


def test_a_search_with_the_paper_setting_on_1d_data_is_refused_cleanly(tmp_path):
    x = np.random.default_rng(0).normal(size=(40, 1, 16)).astype(np.float32)
    np.savez(tmp_path / "sig.npz", x_train=x[:30], y_train=np.arange(30) % 2, x_test=x[30:],
             y_test=np.arange(10) % 2, layout="NCL")
    run = nasforge(["search", "--dataset", "sig.npz", "--budget", "1", "--epochs", "1", "--workers", "1",
                    "--set", "space.paper=true"], cwd=tmp_path, timeout=120)
    assert run.returncode == 2, shown(run)
    assert "needs 2-D data" in run.stdout + run.stderr and "Traceback" not in run.stdout + run.stderr
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").glob("*/trials.sqlite"))


def test_the_supernet_refuses_it_and_the_drawing_lists_its_layers():
    from nasforge.estimators.supernet import ChainSuperNet
    from nasforge.report.archdraw import draw

    with pytest.raises(ValueError, match="not paper=true"):
        ChainSuperNet(PAPER, (1, 8, 8), 3)
    tokens = tuple(0 for _ in PAPER.decisions)
    svg = draw(PAPER, tokens)
    assert "L0: conv 1x1, 24 filters, stride 1x1" in svg and "readout: global average pool" in svg

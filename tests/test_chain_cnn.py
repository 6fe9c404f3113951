"""The chain-cnn space: validity, encodings, hashing, and the networks it builds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from nasforge.spaces import InvalidArchitectureError, create_space
from nasforge.spaces.chain_cnn import ChainCNNSpace


def tokens_of(space):
    return st.tuples(*[st.integers(0, d.size - 1) for d in space.decisions])


SPACE_1D = ChainCNNSpace(num_layers=4, dims=1)
SPACE_2D = ChainCNNSpace(num_layers=3, dims=2)


@given(tokens_of(SPACE_1D))
def test_encode_decode_round_trip(tokens):
    assert SPACE_1D.decode(SPACE_1D.encode(tokens)) == tokens
    assert SPACE_1D.validate(list(tokens)) == tokens


@given(tokens_of(SPACE_1D))
def test_canonical_is_idempotent_and_hash_respects_it(tokens):
    c = SPACE_1D.canonical(tokens)
    assert SPACE_1D.canonical(c) == c
    assert SPACE_1D.arch_hash(tokens) == SPACE_1D.arch_hash(c)


@settings(max_examples=25, deadline=None)
@given(tokens_of(SPACE_1D))
def test_every_valid_architecture_builds_and_runs_1d(tokens):
    model = SPACE_1D.build(tokens, (1, 40), 10)
    out = model(torch.randn(3, 1, 40))
    assert out.shape == (3, 10) and torch.isfinite(out).all()


@settings(max_examples=15, deadline=None)
@given(tokens_of(SPACE_2D))
def test_every_valid_architecture_builds_and_runs_2d(tokens):
    model = SPACE_2D.build(tokens, (1, 8, 8), 10)
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_decisions_follow_the_paper_per_layer():
    names = [d.name for d in SPACE_1D.decisions]
    assert names[:5] == ["L0.op", "L0.kernel", "L0.filters", "L0.stride", "L1.from_L0"]
    two_d = [d.name for d in SPACE_2D.decisions if d.layer == 0]
    assert two_d == ["L0.op", "L0.kernel_h", "L0.kernel_w", "L0.filters", "L0.stride"]
    by_name = {d.name: d for d in SPACE_1D.decisions}
    assert by_name["L0.op"].choices == ("conv", "maxpool", "avgpool", "identity")
    assert by_name["L0.kernel"].choices == (1, 3, 5, 7)
    assert by_name["L0.filters"].choices == (24, 36, 48, 64)
    assert by_name["L0.stride"].choices == (1, 2)
    assert by_name["head.depth"].choices == (0, 1, 2)
    assert by_name["head.width"].choices == (64, 128, 256)
    assert by_name["L3.from_L1"].source == 1 and by_name["L3.from_L1"].layer == 3


@pytest.mark.parametrize("bad, message", [
    ([0] * 3, "expects"),
    ([99] + [0] * (len(SPACE_1D.decisions) - 1), "must be in 0..3"),
    ([-1] + [0] * (len(SPACE_1D.decisions) - 1), "must be in"),
    (["x"] + [0] * (len(SPACE_1D.decisions) - 1), "integers"),
    ([0.5] + [0] * (len(SPACE_1D.decisions) - 1), "integers"),
])
def test_invalid_tokens_get_a_clear_error(bad, message):
    with pytest.raises(InvalidArchitectureError, match=message):
        SPACE_1D.validate(bad)


def test_decode_rejects_unknown_values():
    values = SPACE_1D.encode([0] * len(SPACE_1D.decisions))
    values["L0.filters"] = 100
    with pytest.raises(InvalidArchitectureError, match="L0.filters"):
        SPACE_1D.decode(values)


def _with(space, **values):
    base = space.encode([0] * len(space.decisions))
    base.update({k.replace("__", "."): v for k, v in values.items()})
    return space.decode(base)


def test_hash_identifies_twins_and_separates_different_networks():
    a = _with(SPACE_1D, L1__op="identity", L1__kernel=3, L1__filters=24)
    b = _with(SPACE_1D, L1__op="identity", L1__kernel=7, L1__filters=64)  # identity ignores both
    c = _with(SPACE_1D, L1__op="conv", L1__kernel=7)
    assert a != b and SPACE_1D.arch_hash(a) == SPACE_1D.arch_hash(b)
    assert SPACE_1D.arch_hash(a) != SPACE_1D.arch_hash(c)
    d = _with(SPACE_1D, **{"head__depth": 0, "head__width": 64})
    e = _with(SPACE_1D, **{"head__depth": 0, "head__width": 256})
    f = _with(SPACE_1D, **{"head__depth": 1, "head__width": 256})
    assert SPACE_1D.arch_hash(d) == SPACE_1D.arch_hash(e) != SPACE_1D.arch_hash(f)


def test_twins_with_equal_hash_build_the_same_function():
    a = _with(SPACE_1D, L2__op="identity", L2__kernel=3, L2__stride=2)
    b = _with(SPACE_1D, L2__op="identity", L2__kernel=5, L2__stride=1)
    torch.manual_seed(0)
    ma = SPACE_1D.build(a, (1, 40), 10)
    torch.manual_seed(0)
    mb = SPACE_1D.build(b, (1, 40), 10)
    x = torch.randn(4, 1, 40)
    ma.eval(), mb.eval()
    assert torch.equal(ma(x), mb(x))


def test_all_identity_chain_with_flatten_and_deep_head_is_an_mlp():
    values = {f"L{i}.op": "identity" for i in range(4)}
    values.update({f"L{i}.from_L{i - 1}": 1 for i in range(1, 4)})  # a plain chain
    values.update({"readout": "flatten", "head.depth": 2, "head.width": 128})
    tokens = _with(SPACE_1D, **{k.replace(".", "__"): v for k, v in values.items()})
    model = SPACE_1D.build(tokens, (1, 40), 10)
    kinds = {type(m) for m in model.modules() if not list(m.children())}
    assert kinds <= {nn.Linear, nn.ReLU, nn.Identity}
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(40, 128), (128, 128), (128, 10)]


def test_paper_rules_for_connections():
    """No input -> network input; several inputs padded and concatenated; unused layers feed the end."""
    values = {"L0.op": "conv", "L0.filters": 24, "L0.stride": 2,        # 40 -> 20 long
              "L1.op": "conv", "L1.filters": 36, "L1.from_L0": 0,       # reads the input
              "L2.op": "identity", "L2.from_L0": 1, "L2.from_L1": 1,    # 20 and 40 -> padded, 60 channels
              "L3.op": "conv", "L3.filters": 48, "L3.from_L0": 1, "L3.from_L1": 0, "L3.from_L2": 0,
              "readout": "avg", "head.depth": 0}
    tokens = _with(SPACE_1D, **{k.replace(".", "__"): v for k, v in values.items()})
    spec = SPACE_1D.spec(tokens, (1, 40), 10)
    assert [l["inputs"] for l in spec["layers"]] == [[], [], [0, 1], [0]]
    model = SPACE_1D.build(tokens, (1, 40), 10)
    assert model.final == [2, 3]  # L2 and L3 are read by no later layer
    assert model.layers[2].out_channels == 24 + 36
    assert model.head[-1].in_features == (24 + 36) + 48
    assert model(torch.randn(2, 1, 40)).shape == (2, 10)


def test_space_settings_are_checked():
    with pytest.raises(ValueError, match="dims"):
        create_space("chain-cnn", dims=3)
    with pytest.raises(ValueError, match="num_layers"):
        create_space("chain-cnn", num_layers=0)


def test_mutation_changes_exactly_one_decision():
    rng = np.random.default_rng(0)
    for _ in range(50):
        t = SPACE_1D.sample(rng)
        m = SPACE_1D.mutate(t, rng)
        assert sum(a != b for a, b in zip(t, m)) == 1
        SPACE_1D.validate(m)


def test_the_space_offers_only_what_chain_net_builds():
    """chain_cnn keeps its own choice lists (so that reading a space imports no torch) and
    chain_net.py its own (it is exported standalone): every offered choice must be buildable."""
    from nasforge.spaces import chain_cnn, chain_net

    assert set(chain_cnn.OPS) <= set(chain_net.OPS)
    assert set(chain_cnn.READOUTS) <= set(chain_net.READOUTS)

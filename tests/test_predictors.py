"""Predictors learn a synthetic target; rank correlation and encodings against hand values."""

from __future__ import annotations

import numpy as np
import pytest

import nasforge  # noqa: F401  (registers the benchmark spaces)
from nasforge.predictors import PREDICTORS, create_predictor, encode, encode_many, rank_correlation
from nasforge.predictors.encodings import nb201_path_encoding
from nasforge.spaces import create_space

FAST = {"mlp-ensemble": {"train_steps": 200}, "gbt": {}, "gp": {"restarts": 0}}


@pytest.fixture(scope="module")
def synthetic():
    """y = a fixed linear function of the one-hot encoding + small noise, on chain-cnn (3 layers)."""
    space = create_space("chain-cnn", num_layers=3)
    rng = np.random.default_rng(0)
    tokens = [space.sample(rng) for _ in range(400)]
    x = encode_many(space, tokens, "onehot")
    beta = rng.normal(size=x.shape[1])
    y = x @ beta + rng.normal(scale=0.1, size=len(x))
    return x[:250], y[:250], x[250:], y[250:]


def test_rank_correlation_by_hand():
    r = rank_correlation([1, 2, 3, 4], [1, 3, 2, 4])
    assert r["spearman"] == pytest.approx(1 - 6 * 2 / (4 * 15))  # one swapped pair: sum d^2 = 2
    assert r["kendall"] == pytest.approx((5 - 1) / 6)  # 5 concordant, 1 discordant of 6 pairs
    with pytest.raises(ValueError, match="3 measured values but 2"):
        rank_correlation([1, 2, 3], [1, 2])


@pytest.mark.parametrize("name", PREDICTORS.names())
def test_predictor_learns_a_linear_target(name, synthetic):
    x, y, x_test, y_test = synthetic
    predictor = create_predictor(name, seed=0, **FAST[name]).fit(x, y)
    assert predictor.rank_correlation(x_test, y_test)["kendall"] > 0.8
    mean, std = predictor.predict_with_std(x_test)
    assert np.allclose(mean, predictor.predict(x_test))
    if name in ("mlp-ensemble", "gp"):
        assert std.shape == mean.shape and (std >= 0).all() and std.max() > 0
    again = create_predictor(name, seed=0, **FAST[name]).fit(x, y).predict(x_test)
    assert np.allclose(again, mean)  # deterministic for a seed


@pytest.mark.parametrize("name", PREDICTORS.names())
def test_bad_input_is_refused(name, synthetic):
    x, y, _, _ = synthetic
    predictor = create_predictor(name, **FAST[name])
    with pytest.raises(ValueError, match="fit"):
        predictor.predict(x)
    with pytest.raises(ValueError, match="rows"):
        predictor.fit(x, y[:-1])
    with pytest.raises(ValueError, match="2-D"):
        predictor.fit(x[0], y[:1])
    bad = y.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        predictor.fit(x, bad)
    predictor.fit(x[:20], y[:20])
    with pytest.raises(ValueError, match="features"):
        predictor.predict(x[:, :-1])


def test_bad_settings_are_refused():
    for name, settings in (("gbt", {"n_estimators": 0}), ("gbt", {"subsample": 1.5}),
                           ("mlp-ensemble", {"members": 0}), ("mlp-ensemble", {"learning_rate": 0}),
                           ("gp", {"nu": 3}), ("gp", {"noise": -1.0}), ("gp", {"length_scale": 0.5})):
        with pytest.raises(ValueError, match=name):
            create_predictor(name, **settings)


def test_nb201_path_encoding_by_hand():
    space = create_space("nb201-cifar10")
    conv3 = space.decisions[0].choices.index("nor_conv_3x3")
    none = space.decisions[0].choices.index("none")
    v = nb201_path_encoding((conv3,) * 6)
    assert v.shape == (84,)
    assert v.sum() == 3  # four routes, but the two of length 2 are the same op sequence (c3, c3)
    assert nb201_path_encoding((none,) * 6).sum() == 0
    only_direct = tuple(conv3 if d.name == "edge_3<-0" else none for d in space.decisions)
    assert nb201_path_encoding(only_direct).sum() == 1
    assert encode(space, only_direct, "path").sum() == 1
    with pytest.raises(ValueError, match="no path encoding"):
        encode(create_space("chain-cnn", num_layers=2), (0,) * 12, "path")
    with pytest.raises(ValueError, match="encoding must be"):
        encode(space, only_direct, "graph")


def test_onehot_encoding_merges_twins():
    space = create_space("chain-cnn", num_layers=2)
    values = {d.name: d.choices[0] for d in space.decisions}
    values["L1.op"] = "identity"
    a = space.decode(values)
    values["L1.filters"] = 64  # ignored by identity
    b = space.decode(values)
    assert a != b and np.array_equal(encode(space, a), encode(space, b))

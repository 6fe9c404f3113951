"""The predictor contract, for every built-in predictor of the registry, beyond what
tests/test_predictors.py checks (learning a linear target, refusing bad input): prediction shapes
for any number of rows, better than a constant on held-out architectures, bit-identical for a
seed, a refit that forgets the first fit, and inputs left untouched. A built-in without settings
below fails here.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nasforge.predictors.base import PREDICTORS, create_predictor

#: Small settings per built-in: the defaults take seconds on a busy machine.
SMALL = {"mlp-ensemble": {"members": 3, "train_steps": 150}, "gbt": {"n_estimators": 60}, "gp": {"restarts": 0}}

def make(name: str, seed: int = 0):
    if name not in SMALL:
        pytest.fail(f"predictor {name!r} is registered but has no settings in SMALL: add them")
    return create_predictor(name, seed=seed, **SMALL[name])


def problem(seed: int, rows: int = 120):
    """One-hot codes of 6 decisions of 5 choices; y counts two choices, with an interaction."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, 5, size=(rows, 6))
    x = np.zeros((rows, 30))
    x[np.arange(rows)[:, None], np.arange(6) * 5 + tokens] = 1.0
    y = (tokens == 3).sum(1) + 0.5 * (tokens[:, 0] == tokens[:, 5]) + rng.normal(scale=0.05, size=rows)
    return x, y


@pytest.mark.parametrize("name", sorted(PREDICTORS.builtins))
def test_better_than_a_constant_and_bit_identical_for_a_seed(name):
    x, y = problem(0)
    train, test = slice(0, 80), slice(80, None)
    predictor = make(name).fit(x[train], y[train])
    predicted = predictor.predict(x[test])
    constant = np.mean((y[test] - y[train].mean()) ** 2)
    assert np.mean((y[test] - predicted) ** 2) < 0.5 * constant
    assert np.array_equal(make(name).fit(x[train], y[train]).predict(x[test]), predicted)


@pytest.mark.parametrize("name", sorted(PREDICTORS.builtins))
@settings(max_examples=10, deadline=None)
@given(rows=st.integers(1, 7))
def test_prediction_shapes_for_any_number_of_rows(name, rows):
    x, y = problem(1, rows=30)
    predictor = make(name).fit(x, y)
    mean, std = predictor.predict_with_std(x[:rows])
    assert mean.shape == (rows,) and np.isfinite(mean).all()
    assert std is None or (std.shape == (rows,) and np.isfinite(std).all() and (std >= 0).all())
    assert np.array_equal(predictor.predict(x[:rows]), mean)


@pytest.mark.parametrize("name", sorted(PREDICTORS.builtins))
def test_a_refit_forgets_the_first_fit_and_inputs_are_untouched(name):
    (x1, y1), (x2, y2) = problem(2, rows=40), problem(3, rows=40)
    copies = [a.copy() for a in (x1, y1, x2, y2)]
    refit = make(name).fit(x1, y1).fit(x2, y2)
    fresh = make(name).fit(x2, y2)
    assert np.array_equal(refit.predict(x1), fresh.predict(x1))
    assert all(np.array_equal(a, b) for a, b in zip((x1, y1, x2, y2), copies))

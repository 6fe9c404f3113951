"""Successive halving's settings and Hyperband's schedule on cases where a wrong formula shows:
eta other than e-like bases and a minimum above one epoch (the published table has R = 81,
eta = 3, where log base e and base 3 happen to agree)."""

from __future__ import annotations

import pytest

from nasforge.estimators.fidelity import Pruning


def test_brackets_for_eta_2_and_a_minimum_of_2_epochs():
    """R = 16 epochs from r = 2: Hyperband's bracket s trains children to 16 * 2^-s, then doubling,
    epochs (s_max = log2(16 / 2) = 3), by hand; bracket b here is s = 3 - b, stopping below 16."""
    pruning = Pruning(eta=2, min_epochs=2, brackets=3)
    pruning.check(16)
    assert [pruning.rungs_for(b, 16) for b in range(3)] == [[2, 4, 8], [4, 8], [8]]


def test_brackets_for_eta_2_from_one_epoch():
    """From 1 of 8 epochs Hyperband has brackets s = 3, 2, 1, 0; all but s = 0 stop children."""
    Pruning(eta=2, min_epochs=1, brackets=3).check(8)
    with pytest.raises(ValueError, match="no rung"):
        Pruning(eta=2, min_epochs=1, brackets=4).check(8)


@pytest.mark.parametrize("setting", [{"eta": 2.5}, {"eta": True}, {"min_epochs": True}, {"min_epochs": 1.0},
                                     {"brackets": True}, {"brackets": 1.5}, {"eta": "3"}])
def test_pruning_settings_must_be_whole_numbers_not_bools_or_floats(setting):
    name = next(iter(setting))
    with pytest.raises(ValueError, match=f"pruning: {name} must be an integer"):
        Pruning(**setting).check(16)


def test_pruning_settings_at_their_lowest_allowed_values_pass():
    Pruning(eta=2, min_epochs=1, brackets=1).check(2)
    with pytest.raises(ValueError, match="eta must be an integer of at least 2"):
        Pruning(eta=1).check(16)
    with pytest.raises(ValueError, match="min_epochs must be an integer of at least 1"):
        Pruning(min_epochs=0).check(16)

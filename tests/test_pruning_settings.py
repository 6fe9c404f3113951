"""Successive halving's settings and Hyperband's schedule on cases where a wrong formula shows:
eta other than e-like bases and a minimum above one epoch (the published table has R = 81,
eta = 3, where log base e and base 3 happen to agree)."""

from __future__ import annotations

import pytest

from nasforge.estimators.fidelity import Pruning, hyperband_brackets


def test_hyperband_brackets_for_eta_2_and_a_minimum_of_2_epochs():
    """R = 16 epochs from r = 2: s_max = log2(16 / 2) = 3; bracket s starts ceil(4 / (s + 1) * 2^s)
    children at 16 * 2^-s epochs and halves them each round, by hand."""
    table = dict(hyperband_brackets(2, 16, 2))
    assert sorted(table) == [0, 1, 2, 3]
    assert table[3] == [(8, 2), (4, 4), (2, 8), (1, 16)]
    assert table[2] == [(6, 4), (3, 8), (1, 16)]
    assert table[1] == [(4, 8), (2, 16)]
    assert table[0] == [(4, 16)]


def test_hyperband_brackets_for_eta_2_from_one_epoch():
    assert [s for s, _ in hyperband_brackets(1, 8, 2)] == [3, 2, 1, 0]


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

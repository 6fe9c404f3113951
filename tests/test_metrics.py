"""Metrics against hand counts and a trusted reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from torch import nn

from nasforge.objectives.classification import accuracy, average_precision, top_k_accuracy
from nasforge.objectives.hardware import count_flops, count_params
from nasforge.objectives.objective import Objective


def test_flops_and_params_of_a_conv_net_by_hand():
    model = nn.Sequential(nn.Conv1d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 10, 5))
    # conv: 10 positions x 4 filters x 3 taps multiply-adds; linear: 40 x 5; two FLOPs per multiply-add
    assert count_flops(model, (1, 10)) == 2 * (10 * 4 * 3 + 40 * 5)
    assert count_params(model) == (4 * 3 + 4) + (40 * 5 + 5)


def _average_precision_by_ranks(scores, labels) -> float:
    """nasforge's own implementation before it used scikit-learn, kept as the oracle: per class
    present, the precision at the end of each block of tied scores, weighted by the positives the
    block adds, over the class's positives; then the mean over classes."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    aps = []
    for c in np.unique(labels):
        s, positive = scores[:, c], labels == c
        order = np.argsort(-s, kind="stable")
        s_sorted, pos_sorted = s[order], positive[order]
        ends = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), len(s_sorted) - 1]
        tp_cum = np.cumsum(pos_sorted)[ends]
        aps.append(float((tp_cum / (ends + 1) * np.diff(np.r_[0, tp_cum])).sum() / positive.sum()))
    return float(np.mean(aps))


@settings(max_examples=80, deadline=None)
@given(st.integers(2, 5).flatmap(lambda k: st.integers(1, 40).flatmap(lambda n: st.tuples(
    arrays(np.float64, (n, k), elements=st.floats(0, 1, width=16)),
    arrays(np.int64, n, elements=st.integers(0, k - 1))))))
def test_average_precision_equals_the_rank_definition(data):
    """Ties (16-bit scores tie often), a single example and classes absent from the labels."""
    scores, labels = data
    assert np.isclose(average_precision(scores, labels), _average_precision_by_ranks(scores, labels),
                      rtol=1e-12, atol=0)


def test_average_precision_of_tied_scores_by_hand():
    """Class 0's positives rank 1 and 2-3 (tied with a negative): (1/1 + 2/3) / 2; class 1 the same,
    mirrored. A tie broken in the positive's favour would give 1."""
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.8, 0.2], [0.1, 0.9]])
    assert average_precision(scores, np.array([0, 0, 1, 1])) == pytest.approx(5 / 6, rel=1e-12)
    # a class absent from the labels (2) is left out of the mean, not counted as 0
    scores3 = np.c_[scores, np.zeros(4)]
    assert average_precision(scores3, np.array([0, 0, 1, 1])) == pytest.approx(5 / 6, rel=1e-12)


def test_accuracies():
    scores = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.3, 0.3, 0.4]])
    labels = np.array([1, 2, 0])
    assert accuracy(scores, labels) == 1 / 3
    assert top_k_accuracy(scores, labels, 2) == 2 / 3


def test_objective_reward_is_the_papers_cube_and_respects_direction():
    o = Objective()
    assert o.reward(0.9) == 0.9 ** 3
    low = Objective(metric="params", direction="minimize", transform="identity")
    assert low.reward(10) > low.reward(20) and low.better(10, 20)

"""Metrics against hand counts and a trusted reference."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import average_precision_score
from torch import nn

from nasforge.objectives.classification import accuracy, average_precision, top_k_accuracy
from nasforge.objectives.hardware import count_flops, count_params
from nasforge.objectives.objective import Objective


def test_flops_and_params_of_a_conv_net_by_hand():
    model = nn.Sequential(nn.Conv1d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 10, 5))
    # conv: 10 positions x 4 filters x 3 taps multiply-adds; linear: 40 x 5; two FLOPs per multiply-add
    assert count_flops(model, (1, 10)) == 2 * (10 * 4 * 3 + 40 * 5)
    assert count_params(model) == (4 * 3 + 4) + (40 * 5 + 5)


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 5).flatmap(lambda k: st.tuples(
    arrays(np.float64, (30, k), elements=st.floats(0, 1, width=16)),
    arrays(np.int64, 30, elements=st.integers(0, k - 1)))))
def test_average_precision_matches_scikit_learn(data):
    scores, labels = data
    expected = np.mean([average_precision_score(labels == c, scores[:, c]) for c in np.unique(labels)])
    assert np.isclose(average_precision(scores, labels), expected)


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

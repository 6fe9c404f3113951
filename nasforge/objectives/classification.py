"""Metrics of a classifier's predictions: accuracy, top-k accuracy and macro average precision.

Accuracies are fractions in [0, 1]; ``scores`` are class scores, one row per example.
"""

from __future__ import annotations

from typing import Dict

import numpy as np


def accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    return float((np.asarray(scores).argmax(axis=1) == np.asarray(labels)).mean())


def top_k_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    top = np.argsort(-np.asarray(scores), axis=1)[:, :k]
    return float((top == np.asarray(labels)[:, None]).any(axis=1).mean())


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Macro average precision: one-vs-rest AP per class present in ``labels``, averaged.

    AP of a class is the mean, over its positive examples, of the precision at that example's
    rank when examples are sorted by the class score (ties share the worst rank among them).
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    aps = []
    for c in np.unique(labels):
        s = scores[:, c]
        positive = labels == c
        order = np.argsort(-s, kind="stable")
        s_sorted, pos_sorted = s[order], positive[order]
        # group ties: precision is evaluated at the end of each block of equal scores
        ends = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), len(s_sorted) - 1]
        tp_cum = np.cumsum(pos_sorted)[ends]
        precision = tp_cum / (ends + 1)
        new_tp = np.diff(np.r_[0, tp_cum])
        aps.append(float((precision * new_tp).sum() / positive.sum()))
    return float(np.mean(aps))


def classification_report(scores: np.ndarray, labels: np.ndarray) -> Dict[str, float]:
    return {
        "accuracy": accuracy(scores, labels),
        "top3_accuracy": top_k_accuracy(scores, labels, min(3, np.asarray(scores).shape[1])),
        "average_precision": average_precision(scores, labels),
    }

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
    """Macro average precision: scikit-learn's one-vs-rest AP of each class present in ``labels``,
    averaged (scikit-learn's own macro average would also count absent classes, with a warning).

    AP of a class is the mean, over its positive examples, of the precision at that example's
    rank when examples are sorted by the class score (ties share the worst rank among them).
    """
    from sklearn.metrics import average_precision_score  # here: importing it costs about a second

    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    return float(np.mean([average_precision_score(labels == c, scores[:, c]) for c in np.unique(labels)]))


def classification_report(scores: np.ndarray, labels: np.ndarray) -> Dict[str, float]:
    return {
        "accuracy": accuracy(scores, labels),
        "top3_accuracy": top_k_accuracy(scores, labels, min(3, np.asarray(scores).shape[1])),
        "average_precision": average_precision(scores, labels),
    }

"""Estimators turn an architecture into measured metrics: ``create_estimator("train", ...)``."""

from . import synthetic, train, train_and_test, weight_sharing, zero_cost  # noqa: F401  (registration)
from .base import ESTIMATORS, Estimator, TrialFailed, create_estimator

__all__ = ["ESTIMATORS", "Estimator", "TrialFailed", "create_estimator"]

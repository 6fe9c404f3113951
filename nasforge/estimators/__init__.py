"""Estimators turn an architecture into measured metrics: ``create_estimator("train", ...)``."""

from . import train  # noqa: F401  (registration)
from .base import ESTIMATORS, Estimator, TrialFailed, create_estimator

__all__ = ["ESTIMATORS", "Estimator", "TrialFailed", "create_estimator"]

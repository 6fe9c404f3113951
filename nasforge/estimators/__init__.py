"""Estimators turn an architecture into measured metrics: ``create_estimator("train", ...)``. The
registry imports an estimator's module when its name is first asked for (no torch on import)."""

from .base import ESTIMATORS, Estimator, TrialFailed, create_estimator

__all__ = ["ESTIMATORS", "Estimator", "TrialFailed", "create_estimator"]

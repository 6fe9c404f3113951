"""What every performance predictor is: a regressor from architecture encodings to a metric.

``fit(X, y)`` then ``predict(X)``; ``predict_with_std`` adds an uncertainty where the model has
one (the spread of an ensemble, a Gaussian process's posterior), else ``None``. Constructors
only store settings; ``fit`` is deterministic for the ``seed`` setting.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Dict, Optional, Tuple

import numpy as np
from scipy import stats

from .. import registry
from ..registry import Registry


def rank_correlation(y_true, y_pred) -> Dict[str, float]:
    """Spearman's rho and Kendall's tau-b between measured and predicted values."""
    y_true = np.asarray(y_true, dtype=np.float64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.float64).ravel()
    if len(y_true) != len(y_pred):
        raise ValueError(f"rank_correlation: {len(y_true)} measured values but {len(y_pred)} predictions")
    if len(y_true) < 2:
        raise ValueError("rank_correlation needs at least 2 values")
    return {"spearman": float(stats.spearmanr(y_true, y_pred).statistic),
            "kendall": float(stats.kendalltau(y_true, y_pred).statistic)}


def check_xy(x, y=None, features: Optional[int] = None) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Inputs as float arrays; ValueError naming the fault otherwise."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"X must be 2-D (architectures x features), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("X holds NaN or infinite values")
    if features is not None and x.shape[1] != features:
        raise ValueError(f"X has {x.shape[1]} features, the predictor was fitted on {features}")
    if y is None:
        return x, None
    y = np.asarray(y, dtype=np.float64).ravel()
    if len(y) != len(x):
        raise ValueError(f"X has {len(x)} rows but y has {len(y)} values")
    if len(y) < 2:
        raise ValueError(f"a predictor needs at least 2 examples, got {len(y)}")
    if not np.isfinite(y).all():
        raise ValueError("y holds NaN or infinite values")
    return x, y


class Predictor(ABC):
    name = "predictor"

    def __init__(self, **settings: Any):
        self._settings = dict(settings)
        self.features: Optional[int] = None

    def settings(self) -> Dict[str, Any]:
        return dict(self._settings)

    def fit(self, x, y) -> "Predictor":
        x, y = check_xy(x, y)
        self.features = x.shape[1]
        self._fit(x, y)
        return self

    def predict(self, x) -> np.ndarray:
        return self.predict_with_std(x)[0]

    def predict_with_std(self, x) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        if self.features is None:
            raise ValueError(f"{self.name}: call fit before predict")
        x, _ = check_xy(x, features=self.features)
        return self._predict(x)

    def rank_correlation(self, x_held_out, y_held_out) -> Dict[str, float]:
        """Spearman and Kendall tau of the predictions on held-out architectures."""
        return rank_correlation(y_held_out, self.predict(x_held_out))

    @abstractmethod
    def _fit(self, x: np.ndarray, y: np.ndarray) -> None:
        ...

    @abstractmethod
    def _predict(self, x: np.ndarray) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        ...


PREDICTORS: Registry[Predictor] = registry.PREDICTORS  # declared in registry.py, light enough for --help


def create_predictor(name: str, **settings: Any) -> Predictor:
    return PREDICTORS.create(name, **settings)


def _check_int(owner: str, name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{owner}: {name} must be an integer >= {low}, got {value!r}")


def _check_positive(owner: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{owner}: {name} must be a positive number, got {value!r}")

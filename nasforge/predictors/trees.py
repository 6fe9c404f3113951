"""Gradient-boosted regression trees (scikit-learn): strong on small tabular encodings.

``GradientBoostingRegressor`` rather than the histogram variant: with the few dozen to few
hundred architectures a search has evaluated, the histogram variant's minimum leaf size and
binning cost accuracy and save nothing. No uncertainty.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
from sklearn.ensemble import GradientBoostingRegressor

from .base import PREDICTORS, Predictor, _check_int, _check_positive


@PREDICTORS.register("gbt")
class GBTPredictor(Predictor):
    name = "gbt"

    def __init__(self, n_estimators: int = 300, max_depth: int = 3, learning_rate: float = 0.05,
                 subsample: float = 0.8, min_samples_leaf: int = 2, seed: int = 0):
        super().__init__(n_estimators=n_estimators, max_depth=max_depth, learning_rate=learning_rate,
                         subsample=subsample, min_samples_leaf=min_samples_leaf, seed=seed)
        for name, low in (("n_estimators", 1), ("max_depth", 1), ("min_samples_leaf", 1)):
            _check_int(self.name, name, locals()[name], low)
        _check_positive(self.name, "learning_rate", learning_rate)
        if isinstance(subsample, bool) or not isinstance(subsample, (int, float)) or not 0 < subsample <= 1:
            raise ValueError(f"gbt: subsample must be in (0, 1], got {subsample!r}")
        self.s = self.settings()

    def _fit(self, x: np.ndarray, y: np.ndarray) -> None:
        s = self.s
        self.model = GradientBoostingRegressor(
            n_estimators=s["n_estimators"], max_depth=s["max_depth"], learning_rate=s["learning_rate"],
            subsample=s["subsample"], min_samples_leaf=s["min_samples_leaf"], random_state=int(s["seed"]))
        self.model.fit(x, y)

    def _predict(self, x: np.ndarray) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        return self.model.predict(x), None

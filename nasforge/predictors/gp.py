"""A Gaussian process (scikit-learn) with a Matern kernel plus noise, hyperparameters by ML-II.

On one-hot or path encodings the squared distance between two architectures counts the
decisions (or paths) in which they differ, so the kernel is a smooth function of edit distance.
Targets are normalised; the posterior standard deviation is the uncertainty. The length scale
is kept at or above ``min_length_scale`` (one differing decision is a distance of sqrt 2): on
NB-201 with 100 cells, marginal likelihood otherwise shrinks it until the GP only interpolates
(Kendall tau 0.45 instead of 0.59; docs/benchmarks-estimators.md).
"""

from __future__ import annotations

import warnings
from typing import Optional, Tuple

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

from .base import PREDICTORS, Predictor, _check_int, _check_positive


@PREDICTORS.register("gp")
class GPPredictor(Predictor):
    name = "gp"

    def __init__(self, length_scale: float = 3.0, min_length_scale: float = 1.0, nu: float = 1.5,
                 noise: float = 0.1, restarts: int = 2, seed: int = 0):
        super().__init__(length_scale=length_scale, min_length_scale=min_length_scale, nu=nu, noise=noise,
                         restarts=restarts, seed=seed)
        _check_positive(self.name, "length_scale", length_scale)
        _check_positive(self.name, "min_length_scale", min_length_scale)
        if length_scale < min_length_scale:
            raise ValueError(f"gp: length_scale {length_scale} is below min_length_scale {min_length_scale}")
        _check_positive(self.name, "noise", noise)
        if nu not in (0.5, 1.5, 2.5):
            raise ValueError(f"gp: nu must be 0.5, 1.5 or 2.5, got {nu!r}")
        _check_int(self.name, "restarts", restarts, 0)
        self.s = self.settings()

    def _fit(self, x: np.ndarray, y: np.ndarray) -> None:
        s = self.s
        kernel = (ConstantKernel(1.0, (1e-3, 1e3))
                  * Matern(length_scale=s["length_scale"], length_scale_bounds=(s["min_length_scale"], 1e2),
                           nu=s["nu"])
                  + WhiteKernel(s["noise"], (1e-4, 1.0)))
        self.model = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=s["restarts"],
                                              random_state=int(s["seed"]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model.fit(x, y)

    def _predict(self, x: np.ndarray) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        mean, std = self.model.predict(x, return_std=True)
        return mean, std

"""An ensemble of small MLPs (BANANAS' predictor): mean and spread of the members' predictions.

The network code is ``predictors/ensemble.py``'s ``Ensemble`` (all members trained together as
batched matrix products), which the ``bananas`` strategy uses too, so that both agree.
Targets are standardised before training; predictions are mapped back.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch

from .base import PREDICTORS, Predictor, _check_int, _check_positive
from .ensemble import Ensemble


@PREDICTORS.register("mlp-ensemble")
class MLPEnsemblePredictor(Predictor):
    name = "mlp-ensemble"

    def __init__(self, members: int = 5, hidden_size: int = 32, hidden_layers: int = 2,
                 train_steps: int = 300, learning_rate: float = 0.01, seed: int = 0):
        super().__init__(members=members, hidden_size=hidden_size, hidden_layers=hidden_layers,
                         train_steps=train_steps, learning_rate=learning_rate, seed=seed)
        for name, low in (("members", 1), ("hidden_size", 1), ("hidden_layers", 1), ("train_steps", 1)):
            _check_int(self.name, name, locals()[name], low)
        _check_positive(self.name, "learning_rate", learning_rate)
        self.s = self.settings()

    def _fit(self, x: np.ndarray, y: np.ndarray) -> None:
        s = self.s
        self.mean, self.scale = float(y.mean()), float(y.std()) or 1.0
        generator = torch.Generator().manual_seed(int(s["seed"]))
        self.model = Ensemble(s["members"], x.shape[1], s["hidden_size"], s["hidden_layers"], generator)
        xt = torch.as_tensor(x, dtype=torch.float32)
        yt = torch.as_tensor((y - self.mean) / self.scale, dtype=torch.float32)
        self.model.fit(xt, yt, s["train_steps"], s["learning_rate"])
        self.model.flat = self.model.flat.detach()  # no graph or gradient kept between calls

    def _predict(self, x: np.ndarray) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        with torch.no_grad():
            preds = self.model(torch.as_tensor(x, dtype=torch.float32)).double().numpy()
        preds = preds * self.scale + self.mean
        return preds.mean(axis=0), preds.std(axis=0)

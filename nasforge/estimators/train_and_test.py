"""``train-and-test``: child training that also reports test accuracy and latency, for tables.

A search must never look at the test split, so the ordinary ``train`` estimator does not. A
tabular benchmark is different: each row should hold what one training run of the architecture
gives on validation *and* test data, plus its inference latency, so that strategies, proxies and
predictors can later be scored against held-out accuracy without training anything. The child
is trained exactly as ``train`` trains it (same recipe, same validation split, same seed); after
the last epoch the same weights are scored on the test split and timed at batch size 1.
"""

from __future__ import annotations

from typing import Any, Dict, FrozenSet

import torch

from ..objectives.hardware import measure_latency
from ..spaces.base import Tokens
from .base import ESTIMATORS
from .train import TrainEstimator, predict

NAME = "train-and-test"


@ESTIMATORS.register(NAME)
class TrainAndTestEstimator(TrainEstimator):
    """``train`` plus test accuracy of the trained weights and batch-1 median latency (ms).

    ``latency_repeats`` / ``latency_warmup`` set the timing (one torch thread, so the number does
    not depend on how busy the other cores are). ``estimator`` is accepted so that a config's
    ``training.estimator = "train-and-test"`` can be handed over whole; any other value is refused.
    """

    name = NAME

    def __init__(self, estimator: str = NAME, latency_repeats: int = 30, latency_warmup: int = 5,
                 **settings: Any):
        if estimator != NAME:
            raise ValueError(f"estimator {NAME!r} was given settings for estimator {estimator!r}")
        if not isinstance(latency_repeats, int) or latency_repeats < 1:
            raise ValueError(f"latency_repeats must be a positive integer, got {latency_repeats!r}")
        if not isinstance(latency_warmup, int) or latency_warmup < 0:
            raise ValueError(f"latency_warmup must be a non-negative integer, got {latency_warmup!r}")
        super().__init__(**settings)
        self._settings.update(latency_repeats=latency_repeats, latency_warmup=latency_warmup)
        self.latency_repeats = latency_repeats
        self.latency_warmup = latency_warmup

    def produces(self) -> FrozenSet[str]:
        return super().produces() | {"test_acc", "latency_ms"}

    def evaluate(self, tokens: Tokens, seed: int) -> Dict[str, Any]:
        model, metrics = self.trained(tokens, seed)
        scores = predict(model, torch.as_tensor(self.data.x_test, device=self.device))
        model.cpu()
        latency = measure_latency(model, self.data.input_shape, batch_size=1, warmup=self.latency_warmup,
                                  repeats=self.latency_repeats, threads=1)
        return {**metrics, "test_acc": float((scores.argmax(1) == self.data.y_test).mean()),
                "latency_ms": latency["median_ms"]}

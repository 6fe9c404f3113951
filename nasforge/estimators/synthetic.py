"""A synthetic estimator: a fixed wall-clock cost and a deterministic score, no training.

For measuring the machinery around evaluations (executors, store, strategies) without the noise
and CPU load of real training: ``seconds`` of sleeping stands for a child's training, so many
concurrent evaluations fit on a small machine, and the score is a smooth, deterministic
function of the tokens (each decision's choice index scaled to [0, 1], averaged), so strategies
still have something to learn.
"""

from __future__ import annotations

import time
from typing import Any, Dict, FrozenSet

from ..spaces.base import SearchSpace, Tokens
from .base import ESTIMATORS, Estimator


@ESTIMATORS.register("synthetic")
class SyntheticEstimator(Estimator):
    name = "synthetic"

    def __init__(self, seconds: float = 0.5, start_seconds: float = 0.0, **ignored: Any):
        for name, value in (("seconds", seconds), ("start_seconds", start_seconds)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"synthetic estimator: {name} must be a non-negative number, got {value!r}")
        super().__init__(seconds=seconds, start_seconds=start_seconds)
        self.seconds = float(seconds)
        self.start_seconds = float(start_seconds)  # a process's one-off cost: paid once, by warm_up or
        self.started = False                       # else by the first evaluation, as torch's imports are

    def warm_up(self) -> None:
        if not self.started:
            time.sleep(self.start_seconds)
            self.started = True

    def setup(self, space: SearchSpace, data: Any = None) -> None:
        super().setup(space, data)
        self.sizes = [len(d.choices) for d in space.decisions]

    def produces(self) -> FrozenSet[str]:
        return frozenset({"val_acc", "test_acc", "simulated_seconds"})

    def evaluate(self, tokens: Tokens, seed: int) -> Dict[str, Any]:
        self.warm_up()
        if self.seconds:
            time.sleep(self.seconds)
        parts = [t / (n - 1) if n > 1 else 0.0 for t, n in zip(tokens, self.sizes)]
        score = sum(parts) / max(len(parts), 1)
        return {"val_acc": score, "test_acc": score, "simulated_seconds": self.seconds}

"""Turning a trial's metrics into the controller's reward.

The objective is one named metric with an explicit direction; the reward is a transform of it.
Zoph & Le (2017) cube the maximum validation accuracy of the last 5 epochs, which sharpens the
difference between good and very good children; that is the default here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict

TRANSFORMS: Dict[str, Callable[[float], float]] = {
    "identity": lambda x: x,
    "cube": lambda x: x ** 3,
    "square": lambda x: x ** 2,
}
DIRECTIONS = ("maximize", "minimize")


@dataclass
class Objective:
    metric: str = "val_acc"
    direction: str = "maximize"
    transform: str = "cube"
    failure_penalty: float = 0.0

    def check(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {self.direction!r}")
        if self.transform not in TRANSFORMS:
            raise ValueError(f"reward transform must be one of {sorted(TRANSFORMS)}, got {self.transform!r}")
        if not math.isfinite(self.failure_penalty):
            raise ValueError("failure penalty must be a finite number")

    def value(self, metrics: Dict[str, Any]) -> float:
        """The objective value of a trial; missing or non-finite values are errors."""
        if self.metric not in metrics:
            raise KeyError(f"objective metric {self.metric!r} not among the measured metrics {sorted(metrics)}")
        value = float(metrics[self.metric])
        if not math.isfinite(value):
            raise ValueError(f"objective metric {self.metric!r} is {value}")
        return value

    def reward(self, value: float) -> float:
        """Larger is better for the controller, whatever the direction of the metric."""
        signed = value if self.direction == "maximize" else -value
        return float(TRANSFORMS[self.transform](signed))

    def better(self, a: float, b: float) -> bool:
        return a > b if self.direction == "maximize" else a < b

"""What a trial is scored by: one named metric with an explicit direction, a weighted sum of
metrics, or any function of them, and the transform that turns the value into a reward.

Zoph & Le (2017) cube the maximum validation accuracy of the last 5 epochs, which sharpens the
difference between good and very good children; that is :class:`Objective`'s default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Protocol, runtime_checkable

from .registry import DIRECTIONS, METRICS, metric_value

TRANSFORMS: Dict[str, Callable[[float], float]] = {
    "identity": lambda x: x,
    "cube": lambda x: x ** 3,
    "square": lambda x: x ** 2,
}


@runtime_checkable
class ObjectiveLike(Protocol):
    """What the :class:`~nasforge.objectives.rewards.Scorer` reads of an objective: the three
    classes below have it; an object of a user's own with these members works as well."""

    direction: str  # "maximize" or "minimize"
    transform: str  # a key of TRANSFORMS
    failure_penalty: float  # the reward of a failed trial

    @property
    def label(self) -> str:
        """The name shown where the objective's value is (the metric, or the objective's name)."""

    def check(self) -> None:
        """Raise ValueError naming what is wrong with the settings."""

    def value(self, metrics: Dict[str, Any]) -> float:
        """The objective's value for one trial's metrics."""


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

    @property
    def label(self) -> str:
        return self.metric

    def value(self, metrics: Dict[str, Any]) -> float:
        """The objective value of a trial; missing or non-finite values are errors."""
        return metric_value(metrics, self.metric, "objective")

    def reward(self, value: float) -> float:
        """Larger is better for the controller, whatever the direction of the metric."""
        signed = value if self.direction == "maximize" else -value
        return float(TRANSFORMS[self.transform](signed))

    def better(self, a: float, b: float) -> bool:
        return a > b if self.direction == "maximize" else a < b


@dataclass
class WeightedSum:
    """Σ weight · sign · metric, maximised; sign is -1 for metrics that are better small, so all
    weights are positive "importance".  Choose weights that put the metrics on one scale
    (e.g. 1e-6 per parameter)."""

    weights: Dict[str, float]
    directions: Dict[str, str] = field(default_factory=dict)  # for metrics not in METRICS
    transform: str = "identity"
    failure_penalty: float = 0.0
    name: str = "weighted_sum"
    direction: str = field(default="maximize", init=False)

    def check(self) -> None:
        if not self.weights:
            raise ValueError("a weighted sum needs at least one metric")
        for metric, weight in self.weights.items():
            if not math.isfinite(float(weight)):
                raise ValueError(f"weight of {metric!r} must be a finite number, got {weight!r}")
            self._direction(metric)

    def _direction(self, metric: str) -> str:
        if metric in self.directions:
            direction = self.directions[metric]
        elif metric in METRICS:
            direction = METRICS[metric].direction
        else:
            raise ValueError(f"unknown metric {metric!r} in the weighted sum; give its direction "
                             f"(directions={{{metric!r}: 'minimize'}}) or register_metric it")
        if direction not in DIRECTIONS:
            raise ValueError(f"direction of {metric!r} must be one of {DIRECTIONS}, got {direction!r}")
        return direction

    @property
    def label(self) -> str:
        return self.name

    def value(self, metrics: Dict[str, Any]) -> float:
        total = 0.0
        for metric, weight in self.weights.items():
            if metric not in metrics:
                raise KeyError(f"weighted-sum metric {metric!r} not among the measured metrics {sorted(metrics)}")
            sign = 1.0 if self._direction(metric) == "maximize" else -1.0
            total += float(weight) * sign * float(metrics[metric])
        if not math.isfinite(total):
            raise ValueError(f"weighted sum is {total}")
        return total


@dataclass
class CallableObjective:
    """Any function of the metrics dict, with the direction it should go."""

    fn: Callable[[Dict[str, Any]], float]
    direction: str = "maximize"
    transform: str = "identity"
    failure_penalty: float = 0.0
    name: str = "custom"

    def check(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {self.direction!r}")
        if not callable(self.fn):
            raise ValueError(f"objective function {self.fn!r} is not callable")

    @property
    def label(self) -> str:
        return self.name

    def value(self, metrics: Dict[str, Any]) -> float:
        value = float(self.fn(metrics))
        if not math.isfinite(value):
            raise ValueError(f"objective {self.name!r} is {value}")
        return value

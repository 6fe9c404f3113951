"""Limits on metrics (``latency_ms<=2``) and MnasNet's reward factor (Tan et al., 2019).

A hard constraint makes a trial over its limit infeasible; MnasNet's ACC · (LAT / T)^w turns a limit
into a factor on the objective instead, for any metric as LAT.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Optional

from .registry import METRICS, metric_value, unknown_metric

OPERATORS = ("<=", ">=")
CONSTRAINT_MODES = ("hard", "soft", "mnasnet-hard")
MNASNET_EXPONENTS = {"soft": (-0.07, -0.07), "mnasnet-hard": (0.0, -1.0)}


def _check_metric(metric: str, known: Optional[Iterable[str]]) -> None:
    names = set(METRICS) if known is None else set(known)
    if metric not in names:
        raise ValueError(unknown_metric(metric, names))


@dataclass(frozen=True)
class Constraint:
    """A limit on one metric, e.g. ``latency_ms <= 2``.  As a hard constraint a trial over the limit
    is infeasible: it is recorded as such, gets the infeasible reward and is never the best."""

    metric: str
    op: str
    limit: float

    def __post_init__(self):
        if self.op not in OPERATORS:
            raise ValueError(f"constraint operator must be one of {OPERATORS}, got {self.op!r}")
        if not isinstance(self.limit, (int, float)) or not math.isfinite(self.limit):
            raise ValueError(f"constraint limit of {self.metric!r} must be a finite number, got {self.limit!r}")

    def value(self, metrics: Dict[str, Any]) -> float:
        return metric_value(metrics, self.metric, "constraint")

    def satisfied(self, value: float) -> bool:
        return value <= self.limit if self.op == "<=" else value >= self.limit

    def excess(self, value: float) -> float:
        """How far past the limit, relative to it (0 when satisfied); grades an infeasible reward."""
        over = value - self.limit if self.op == "<=" else self.limit - value
        return max(over, 0.0) / (abs(self.limit) or 1.0)

    def ratio(self, value: float) -> float:
        """MnasNet's LAT / T, oriented so that above 1 means past the limit."""
        if self.limit <= 0 or value <= 0:
            raise ValueError(f"a MnasNet-style target needs positive values: {self.metric} = {value}, "
                             f"target {self.limit}")
        return value / self.limit if self.op == "<=" else self.limit / value

    def describe(self, value: float) -> str:
        return f"{self.metric} = {value:g} violates {self}"

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.limit:g}"


_CONSTRAINT_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.\-]*)\s*([<>=!~]+)\s*(.*?)\s*$")


def parse_constraint(text: str, known: Optional[Iterable[str]] = None) -> Constraint:
    """``"latency_ms<=2"`` -> Constraint("latency_ms", "<=", 2.0), for the CLI and config files.

    ``known`` lists the acceptable metric names (default: the registry ``METRICS``).
    """
    match = _CONSTRAINT_RE.match(text)
    if not match:
        raise ValueError(f"constraint {text!r}: expected METRIC<=LIMIT or METRIC>=LIMIT, e.g. latency_ms<=2")
    metric, op, limit_text = match.groups()
    if op not in OPERATORS:
        raise ValueError(f"constraint {text!r}: unknown operator {op!r}; use <= or >=")
    _check_metric(metric, known)
    try:
        limit = float(limit_text)
    except ValueError:
        raise ValueError(f"constraint {text!r}: limit {limit_text!r} is not a number") from None
    if not math.isfinite(limit):
        raise ValueError(f"constraint {text!r}: limit must be finite, got {limit_text!r}")
    return Constraint(metric, op, limit)


# ---- MnasNet ---------------------------------------------------------------------------------------------
def mnasnet_reward(accuracy: float, latency: float, target: float, alpha: float, beta: float) -> float:
    """Tan et al. (2019): ACC · (LAT / T)^w with w = alpha if LAT <= T else beta.

    Soft constraint: alpha = beta = -0.07; hard: alpha = 0, beta = -1.
    """
    if target <= 0 or latency <= 0:
        raise ValueError(f"MnasNet reward needs positive latency and target, got {latency} and {target}")
    ratio = latency / target
    return float(accuracy * ratio ** (alpha if ratio <= 1 else beta))


@dataclass(frozen=True)
class MnasNetTerm:
    """A multiplicative factor (metric / target)^w on the objective, for any metric as LAT.

    For a metric that is better large, the ratio is target / metric, so above 1 still means
    "worse than the target".
    """

    constraint: Constraint
    alpha: float
    beta: float

    @classmethod
    def soft(cls, metric: str, target: float, op: str = "<=") -> "MnasNetTerm":
        return cls(Constraint(metric, op, target), -0.07, -0.07)

    @classmethod
    def hard(cls, metric: str, target: float, op: str = "<=") -> "MnasNetTerm":
        return cls(Constraint(metric, op, target), 0.0, -1.0)

    def factor(self, metrics: Dict[str, Any]) -> float:
        ratio = self.constraint.ratio(self.constraint.value(metrics))
        return float(ratio ** (self.alpha if ratio <= 1 else self.beta))

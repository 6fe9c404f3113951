"""Turning a trial's metrics into the controller's reward.

The objective is one named metric with an explicit direction; the reward is a transform of it.
Zoph & Le (2017) cube the maximum validation accuracy of the last 5 epochs, which sharpens the
difference between good and very good children; that is the default here.

Hardware-aware search adds, through :class:`Scorer`: hard constraints (``latency_ms<=2``: a trial
over the limit is infeasible), MnasNet's reward ACC · (LAT / T)^w (Tan et al., 2019) for any metric
as LAT, weighted sums of metrics and arbitrary functions of the metrics.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Set

from .registry import METRICS

TRANSFORMS: Dict[str, Callable[[float], float]] = {
    "identity": lambda x: x,
    "cube": lambda x: x ** 3,
    "square": lambda x: x ** 2,
}
DIRECTIONS = ("maximize", "minimize")  # the same as metrics.DIRECTIONS


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


# ---- constraints ---------------------------------------------------------------------------------------
OPERATORS = ("<=", ">=")
CONSTRAINT_MODES = ("hard", "soft", "mnasnet-hard")
MNASNET_EXPONENTS = {"soft": (-0.07, -0.07), "mnasnet-hard": (0.0, -1.0)}


def _check_metric(metric: str, known: Optional[Iterable[str]]) -> None:
    names = set(METRICS) if known is None else set(known)
    if metric not in names:
        raise ValueError(f"unknown metric {metric!r}; known metrics: {', '.join(sorted(names))}")


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
        if self.metric not in metrics:
            raise KeyError(f"constraint metric {self.metric!r} not among the measured metrics {sorted(metrics)}")
        value = float(metrics[self.metric])
        if not math.isfinite(value):
            raise ValueError(f"constraint metric {self.metric!r} is {value}")
        return value

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


# ---- objectives beyond one metric ------------------------------------------------------------------------
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

    def value(self, metrics: Dict[str, Any]) -> float:
        value = float(self.fn(metrics))
        if not math.isfinite(value):
            raise ValueError(f"objective {self.name!r} is {value}")
        return value


# ---- the scorer: metrics -> (objective value, reward, feasible, violations) -----------------------------
class Evaluation(NamedTuple):
    value: float  # the objective value (after MnasNet factors, if any), in the objective's direction
    reward: float  # what the strategy is told; larger is better
    feasible: bool  # every hard constraint met; an infeasible trial is never the best
    violations: List[str]  # one line per limit exceeded (soft ones prefixed "soft: ")


@dataclass
class Scorer:
    """Turns a trial's metrics into what the search records and the strategy learns from.

    ``objective``: an :class:`Objective` (one metric, transform), :class:`WeightedSum`,
    :class:`CallableObjective` or a plain function of the metrics (maximised).
    ``constraints`` follow ``mode``:

    * ``hard``: over a limit -> infeasible; reward = ``infeasible_reward`` (default: the
      objective's failure penalty) minus ``excess_weight`` × the summed relative excess, so a
      strategy can still tell "nearly feasible" from "far off" if you want it to.
    * ``soft``: each constraint becomes a MnasNet factor (value / limit)^-0.07 on the objective;
      the trial stays feasible.
    * ``mnasnet-hard``: MnasNet's hard factor, 1 under the limit, (value / limit)^-1 over it;
      the trial stays feasible.

    ``terms`` adds MnasNet factors with exponents of your choice, whatever the mode.  A factor f
    multiplies the signed objective s (s = value when maximising, -value when minimising) when
    s >= 0 and divides it otherwise, so a worse factor always means a worse score; the reward is
    the transform of that score.  With the identity transform and accuracy as the objective this is
    exactly MnasNet's ACC · (LAT / T)^w.
    """

    objective: Any = field(default_factory=Objective)
    constraints: Sequence[Constraint] = ()
    mode: str = "hard"
    terms: Sequence[MnasNetTerm] = ()
    infeasible_reward: Optional[float] = None
    excess_weight: float = 0.0

    def __post_init__(self):
        if callable(self.objective) and not hasattr(self.objective, "value"):
            self.objective = CallableObjective(self.objective)
        self.constraints = tuple(self.constraints)
        self.terms = tuple(self.terms)

    @property
    def direction(self) -> str:
        return getattr(self.objective, "direction", "maximize")

    @property
    def transform(self) -> str:
        return getattr(self.objective, "transform", "identity")

    @property
    def failure_penalty(self) -> float:
        return float(getattr(self.objective, "failure_penalty", 0.0))

    def check(self) -> None:
        if self.mode not in CONSTRAINT_MODES:
            raise ValueError(f"constraint mode must be one of {CONSTRAINT_MODES}, got {self.mode!r}")
        self.objective.check()
        if self.transform not in TRANSFORMS:
            raise ValueError(f"reward transform must be one of {sorted(TRANSFORMS)}, got {self.transform!r}")
        for c in self.constraints:
            if not isinstance(c, Constraint):
                raise ValueError(f"constraints must be Constraint objects, got {c!r} (see parse_constraint)")
            if self.mode != "hard" and c.limit <= 0:
                raise ValueError(f"{self.mode} mode turns {c} into a MnasNet target, which must be positive")
        for value in (self.infeasible_reward, self.excess_weight):
            if value is not None and not math.isfinite(value):
                raise ValueError("infeasible reward and excess weight must be finite numbers")
        if self.excess_weight < 0:
            raise ValueError(f"excess_weight must be non-negative, got {self.excess_weight}")

    def metric_names(self) -> Optional[Set[str]]:
        """Every metric the score reads; None when a callable objective reads unknown ones."""
        objective = self.objective
        if isinstance(objective, Objective):
            names = {objective.metric}
        elif isinstance(objective, WeightedSum):
            names = set(objective.weights)
        else:
            return None
        return names | {c.metric for c in self.constraints} | {t.constraint.metric for t in self.terms}

    def _factors(self) -> List[MnasNetTerm]:
        factors = list(self.terms)
        if self.mode != "hard":
            alpha, beta = MNASNET_EXPONENTS[self.mode]
            factors += [MnasNetTerm(c, alpha, beta) for c in self.constraints]
        return factors

    def evaluate(self, metrics: Dict[str, Any]) -> Evaluation:
        """Missing or non-finite metrics raise (KeyError / ValueError): the trial fails."""
        value = self.objective.value(metrics)
        violations: List[str] = []
        excess = 0.0
        for c in self.constraints:
            v = c.value(metrics)
            if not c.satisfied(v):
                violations.append(("" if self.mode == "hard" else "soft: ") + c.describe(v))
                excess += c.excess(v)
        signed = value if self.direction == "maximize" else -value
        for term in self._factors():
            f = term.factor(metrics)
            signed = signed * f if signed >= 0 else signed / f
        value = signed if self.direction == "maximize" else -signed
        feasible = self.mode != "hard" or not violations
        if feasible:
            reward = float(TRANSFORMS[self.transform](signed))
        else:
            base = self.failure_penalty if self.infeasible_reward is None else float(self.infeasible_reward)
            reward = base - self.excess_weight * excess
        return Evaluation(float(value), float(reward), feasible, violations)

    def better(self, a: Evaluation, b: Optional[Evaluation]) -> bool:
        """Is ``a`` a better trial than ``b``: feasible beats infeasible, then the objective value."""
        if b is None:
            return True
        if a.feasible != b.feasible:
            return a.feasible
        return a.value > b.value if self.direction == "maximize" else a.value < b.value

    @classmethod
    def from_config(cls, reward: Dict[str, Any]) -> "Scorer":
        """Build from a ``[reward]`` config section: the keys ``Objective`` takes plus
        ``constraints`` (list of "metric<=limit" strings), ``constraint_mode``, ``weights``
        ({metric: weight}: a weighted sum instead of one metric), ``infeasible_reward`` and
        ``excess_weight``."""
        reward = dict(reward)
        constraints = [c if isinstance(c, Constraint) else parse_constraint(str(c))
                       for c in reward.pop("constraints", None) or ()]
        mode = reward.pop("constraint_mode", "hard")
        infeasible = reward.pop("infeasible_reward", None)
        excess_weight = float(reward.pop("excess_weight", 0.0))
        weights = reward.pop("weights", None)
        objective: Any
        if weights:
            reward.pop("metric", None)  # the weights replace the single metric
            if reward.pop("direction", "maximize") != "maximize":
                raise ValueError("[reward]: a weighted sum is maximised; give each metric's direction "
                                 "in 'directions' instead")
            unknown = set(reward) - {"transform", "failure_penalty", "directions"}
            if unknown:
                raise ValueError(f"[reward]: {sorted(unknown)} do not apply to a weighted sum")
            objective = WeightedSum(dict(weights), dict(reward.get("directions") or {}),
                                    reward.get("transform", "identity"), float(reward.get("failure_penalty", 0.0)))
        else:
            try:
                objective = Objective(**reward)
            except TypeError as exc:
                raise ValueError(f"[reward]: {exc}") from None
        scorer = cls(objective, constraints, mode, (), infeasible, excess_weight)
        scorer.check()
        return scorer


def evaluate_metrics(metrics: Dict[str, Any], objective: Any = None, constraints: Sequence[Constraint] = (),
                     mode: str = "hard", **options: Any) -> Evaluation:
    """One call: (objective value, reward, feasible, violations) of a trial's metrics."""
    scorer = Scorer(objective if objective is not None else Objective(), constraints, mode, **options)
    scorer.check()
    return scorer.evaluate(metrics)

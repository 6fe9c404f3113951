"""Turning a trial's metrics into the controller's reward.

The objective (:mod:`.objective`) is one named metric with an explicit direction, a weighted sum or
a function; the reward is a transform of its value. Hardware-aware search adds, through
:class:`Scorer`: hard constraints (``latency_ms<=2``: a trial over the limit is infeasible),
MnasNet's reward ACC · (LAT / T)^w (Tan et al., 2019) for any metric as LAT (:mod:`.constraints`),
weighted sums of metrics and arbitrary functions of the metrics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Set

from .constraints import CONSTRAINT_MODES, MNASNET_EXPONENTS, Constraint, MnasNetTerm, parse_constraint
from .objective import TRANSFORMS, CallableObjective, Objective, ObjectiveLike, WeightedSum


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
        if not isinstance(self.objective, ObjectiveLike) and callable(self.objective):
            self.objective = CallableObjective(self.objective)
        self.constraints = tuple(self.constraints)
        self.terms = tuple(self.terms)

    @property
    def direction(self) -> str:
        return self.objective.direction

    @property
    def transform(self) -> str:
        return self.objective.transform

    @property
    def failure_penalty(self) -> float:
        return float(self.objective.failure_penalty)

    @property
    def label(self) -> str:
        """The objective's name where its value is shown (progress lines, tables); marked when
        MnasNet factors weight it, since the value shown is then not the metric itself."""
        return f"{self.objective.label}*MnasNet" if self._factors() else self.objective.label

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

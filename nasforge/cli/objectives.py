"""The search command's objective and constraint flags: ``--objective``, ``--direction``,
``--constraint`` (repeatable) and ``--constraint-mode``.

They are checked here, before any store is created, so a typo in a metric name or a malformed
limit ends the command with status 2 and a message naming the problem. Constraints are written
in their normal form (``latency_ms<=2``), so a resumed search compares equal settings equally.
A trained child measures only what it is asked to; the metrics named by the objective and the
constraints that child training can measure are added to ``training.measure``.
"""

from __future__ import annotations

import argparse
from typing import Any, Dict, List, Optional

from ..config import ConfigError
from ..objectives.constraints import CONSTRAINT_MODES
from ..objectives.registry import DIRECTIONS



def add_objective_flags(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--objective", metavar="METRIC",
                       help="metric to optimise, e.g. val_acc or latency_ms; its direction comes from the "
                            "metric registry unless --direction is given")
    group.add_argument("--direction", help=f"{' or '.join(DIRECTIONS)} (default: the metric's own)")
    group.add_argument("--constraint", action="append", metavar="METRIC<=LIMIT",
                       help="a limit such as latency_ms<=2 or val_acc>=0.9 (repeatable; added to the "
                            "config file's [reward] constraints)")
    group.add_argument("--constraint-mode",
                       help="hard (default: over a limit = infeasible, never the best), soft (MnasNet "
                            "factor (value/limit)^-0.07) or mnasnet-hard (1 under the limit, "
                            "(value/limit)^-1 over it)")


def _check_direction(direction: Any, source: str) -> str:
    if direction not in DIRECTIONS:
        raise ConfigError(f"{source}: direction must be {' or '.join(DIRECTIONS)}, got {direction!r}")
    return direction


def normal_form(constraint) -> str:
    """``latency_ms<=2.5``: no spaces, the limit exactly (``repr``, without a trailing ``.0``)."""
    limit = repr(float(constraint.limit))
    return f"{constraint.metric}{constraint.op}{limit[:-2] if limit.endswith('.0') else limit}"


def reward_overrides(args: argparse.Namespace, file_reward: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """The ``[reward]`` settings these flags give (only what was given), checked.

    ``file_reward`` is the config file's ``[reward]`` section: flags' constraints are added to its
    list, and its metric decides ``--direction`` alone.
    """
    from ..objectives.registry import METRICS, unknown_metric
    from ..objectives.constraints import parse_constraint

    file_reward = dict(file_reward or {})
    out: Dict[str, Any] = {}
    objective = getattr(args, "objective", None)
    metric_flag = getattr(args, "metric", None)
    if objective is not None:
        if metric_flag is not None and metric_flag != objective:
            raise ConfigError(f"--objective {objective} and --metric {metric_flag} disagree; give one of them")
        if objective not in METRICS:
            flag = "--metric" if metric_flag == objective else "--objective"
            raise ConfigError(f"{flag}: {unknown_metric(objective)}")
        out["metric"] = objective
        out["direction"] = METRICS[objective].direction
    if getattr(args, "direction", None) is not None:
        out["direction"] = _check_direction(args.direction, "--direction")
    mode = getattr(args, "constraint_mode", None)
    if mode is not None:
        if mode not in CONSTRAINT_MODES:
            raise ConfigError(f"--constraint-mode must be one of {', '.join(CONSTRAINT_MODES)}, got {mode!r}")
        out["constraint_mode"] = mode
    flags: List[str] = getattr(args, "constraint", None) or []
    if flags:
        existing = file_reward.get("constraints") or []
        if not isinstance(existing, list):
            raise ConfigError(f"[reward] constraints must be a list of strings like \"latency_ms<=2\", "
                              f"got {existing!r}")
        normal: List[str] = []
        for text, source in [(c, "[reward] constraints") for c in existing] + [(c, "--constraint") for c in flags]:
            try:
                constraint = normal_form(parse_constraint(str(text)))
            except ValueError as exc:
                raise ConfigError(f"{source}: {exc}") from None
            if constraint not in normal:
                normal.append(constraint)
        out["constraints"] = normal
    return out

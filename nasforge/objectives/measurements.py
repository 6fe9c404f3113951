"""Which metrics a trained child must measure for a given ``[reward]`` section.

A child measures latency, peak memory and the like only when asked (each costs time), so the
search adds to ``training.measure`` what its objective and constraints name.
"""

from __future__ import annotations

from typing import Any, Dict, List


def measured_by_training(reward: Dict[str, Any]) -> List[str]:
    """The metrics named by a ``[reward]`` section that a trained child measures only on request."""
    from ..estimators.train import MEASURABLE
    from .constraints import parse_constraint

    weights = reward.get("weights") or {}
    names = [reward.get("metric"), *(weights if isinstance(weights, dict) else ())]
    constraints = reward.get("constraints") or []
    names += [str(c) for c in ([constraints] if isinstance(constraints, str) else constraints)]
    wanted: List[str] = []
    for name in map(str, filter(None, names)):
        metric = parse_constraint(name).metric if any(op in name for op in "<>") else name
        if metric in MEASURABLE and metric not in wanted:
            wanted.append(metric)
    return wanted


def strategy_objectives(strategy: Dict[str, Any]) -> List[str]:
    """The metrics a multi-objective strategy ranks by: ``objectives = ["val_acc:max", ...]``."""
    objectives = strategy.get("objectives") or []
    if isinstance(objectives, str):
        objectives = [objectives]
    return [str(o).split(":")[0].strip() for o in objectives if str(o).strip()]


def request_measurements(given: Dict[str, Any]) -> None:
    """Add to ``given["training"]["measure"]`` what the given ``[reward]`` and the strategy's own
    objectives (a multi-objective strategy ranks by them) need a child to measure."""
    from ..estimators.train import MEASURABLE
    from ..spaces.base import SPACES, is_tabular

    space = (given.get("space") or {}).get("name")
    if space in SPACES and is_tabular(space):
        return  # a table's rows hold their measurements: nothing is trained, nothing to ask a child for
    wanted = measured_by_training(given.get("reward") or {})
    wanted += [m for m in strategy_objectives(given.get("strategy") or {}) if m in MEASURABLE and m not in wanted]
    if not wanted:
        return
    training = dict(given.get("training") or {})
    measure = training.get("measure") or []
    measure = [measure] if isinstance(measure, str) else list(measure)
    training["measure"] = measure + [m for m in wanted if m not in measure]
    given["training"] = training

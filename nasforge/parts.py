"""The wired components of one search, built and checked from its settings before any trial.

Bad input fails here, before the store is created: every section is checked, the objective is
parsed, the metrics it names are ones the estimator produces, and the executor suits the estimator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

from .build import build_estimator, build_space, estimator_name, is_tabular
from .config import ConfigError, SearchConfig
from .data.datasets import Dataset, load_dataset
from .estimators.base import Estimator
from .execution import Executor, create_executor
from .objectives.measurements import request_measurements, strategy_objectives
from .objectives.rewards import Scorer
from .spaces.base import SearchSpace
from .strategies.base import Strategy, create_strategy


@dataclass
class Parts:
    """The wired components of one search."""

    config: SearchConfig
    data: Optional[Dataset]
    space: SearchSpace
    estimator: Estimator
    strategy: Strategy
    objective: Scorer
    executor: Executor


def build_executor(config: SearchConfig, estimator: Estimator) -> Executor:
    """``auto``: inline for table lookups and for estimators that must stay in this process
    (shared weights: copies in workers would train apart), a local process pool otherwise."""
    settings = {k: v for k, v in config.execution.items() if k not in ("name", "retries")}
    name = config.execution["name"]
    in_process = estimator.in_process_only
    if in_process and name not in ("auto", "inline"):
        raise ConfigError(f"[execution] the {estimator.name} estimator keeps its state in the search process; "
                          f"use executor 'inline' (or 'auto'), not {name!r}")
    if name == "auto":
        tabular = is_tabular(config.space["name"])
        name = "inline" if (tabular or in_process) and settings.get("workers", 1) == 1 else "local"
    try:
        return create_executor(name, **settings)
    except TypeError as exc:
        raise ConfigError(f"[execution]: {exc}") from None


def retries_allowed(config: SearchConfig) -> int:
    retries = config.execution.get("retries", 1)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"[execution] retries must be a non-negative integer, got {retries!r}")
    return retries


def build_parts(config: SearchConfig, data: Optional[Dataset] = None) -> Parts:
    """Create and check every component before any trial runs (bad input fails here)."""
    config.check()
    try:
        objective = Scorer.from_config(config.reward)
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc) if str(exc).startswith("[reward]") else f"[reward]: {exc}") from None
    if estimator_name(config) == "train":
        given = {"reward": config.reward, "training": dict(config.training), "strategy": config.strategy}
        request_measurements(given)  # a child measures latency etc. only when the reward names them
        config.training = given["training"]
    if not is_tabular(config.space["name"]) and data is None:
        data = load_dataset(config.dataset)
    space = build_space(config, data)
    estimator = build_estimator(config, data, space)
    _check_metrics(objective, estimator, config.strategy)
    strategy_settings = {k: v for k, v in config.strategy.items() if k != "name"}
    try:
        strategy = create_strategy(config.strategy["name"], **strategy_settings)
    except TypeError as exc:
        raise ConfigError(f"[strategy]: {exc}") from None
    strategy.setup(space, config.seed)
    executor = build_executor(config, estimator)
    retries_allowed(config)
    return Parts(config, data, space, estimator, strategy, objective, executor)


def _check_metrics(objective: Scorer, estimator: Estimator, strategy: Dict[str, Any]) -> None:
    """Refuse an objective, a constraint or a strategy objective naming a metric the estimator
    never produces (every trial would fail, or be ranked by nothing)."""
    produced = estimator.produces()
    if produced is None:
        return
    for section, needed in (("[reward]", objective.metric_names()),
                            ("[strategy] objectives", set(strategy_objectives(strategy)))):
        missing = sorted((needed or set()) - produced)
        if missing:
            raise ConfigError(f"{section} names {', '.join(map(repr, missing))}, which the {estimator.name} "
                              f"estimator does not produce here; it produces: {', '.join(sorted(produced))}")

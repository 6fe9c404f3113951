"""What a strategy comparison runs: names resolved, harness settings, one ``RunSpec`` per search.

``BenchmarkPlan`` holds the strategies, benchmarks, seeds and budget and refuses bad ones before
any run starts; ``tasks()`` expands it into the runs ``runner.run_benchmark`` hands to workers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..config import ConfigError
from ..objectives.objective import Objective
from ..objectives.registry import METRICS
from ..objectives.rewards import Scorer
from ..spaces.base import SPACES, create_space
from ..strategies.base import STRATEGIES, create_strategy

DEFAULT_CHECKPOINTS = (50, 100, 300)
QUERIES, SECONDS = "queries", "seconds"
OWN_TABLE = "own-table"  # the benchmark of a user's own table file (``table``: ``nasforge benchmark --table``)

# Settings a tabular comparison uses unless ``settings`` (``--set``) says otherwise. The
# strategies' own defaults stay as published: REINFORCE keeps Zoph & Le's learning rate 0.0006
# and m = 8, made for thousands of children, with which a few hundred queries leave the policy
# near uniform (it ties random search). These were chosen on the tuning benchmarks only
# (nb201-cifar10, nbgraph-cora/citeseer/pubmed; docs/benchmarks-tabular.md, "Tuning").
TABULAR_DEFAULTS: Dict[str, Dict[str, Any]] = {
    "reinforce": {"learning_rate": 0.02, "batch_size": 4, "entropy_weight": 0.003},
}


# Registered, but left out unless named (or ``all``): not searches to compare on a table.
NOT_COMPARED = {
    "enumerate": "walks the space in order (for `nasforge tabulate`)",
    "predictor-filter": "refits its predictor for every batch of proposals (about 70 s per 300-query run)",
}


def compared_strategies() -> List[str]:
    """The strategies a comparison runs by default: every registered one but ``NOT_COMPARED``."""
    return [name for name in STRATEGIES.names() if name not in NOT_COMPARED]


def tabular_settings(strategy: str, given: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The settings a run of ``strategy`` gets: the harness defaults, overridden by ``given``."""
    return {**TABULAR_DEFAULTS.get(strategy, {}), **(given or {})}


# ---- names --------------------------------------------------------------------------------------
def tabular_benchmarks() -> List[str]:
    """Every registered benchmark space: nb201 first, then NAS-Bench-Graph in dataset order."""
    from ..tables import NBGRAPH_DATASETS, TabularSpace

    names = [n for n in SPACES.names()
             if isinstance(SPACES.get(n), type) and issubclass(SPACES.get(n), TabularSpace)]
    order = {"nb201-cifar10": -1, **{f"nbgraph-{d}": i for i, d in enumerate(NBGRAPH_DATASETS)}}
    return sorted(names, key=lambda n: (order.get(n, len(order)), n))


def _expand(names: Sequence[str], known: List[str], groups: Dict[str, List[str]], kind: str) -> List[str]:
    """Each name, or the members of a group name, once each in order; unknown names refused with
    the valid ones, and an empty choice refused."""
    result: List[str] = []
    for name in names:
        if name in groups:
            chosen = groups[name]
        elif name in known:
            chosen = [name]
        else:
            raise ConfigError(f"unknown {kind} {name!r}; choose from: {', '.join([*groups, *known])}")
        result.extend(n for n in chosen if n not in result)
    if not result:
        raise ConfigError(f"no {kind} chosen")
    return result


def resolve_benchmarks(names: Sequence[str], table: Optional[str] = None) -> List[str]:
    """Expand ``all`` and ``nbgraph-all``; refuse unknown names with the list of valid ones.

    ``all`` is the shipped tables, and ``own-table`` too when a ``table`` file is given (without
    one own-table has nothing to read); ``own-table`` named without a table is refused."""
    known = tabular_benchmarks()
    shipped = [n for n in known if n != OWN_TABLE]
    groups = {"all": shipped + ([OWN_TABLE] if table is not None and OWN_TABLE in known else []),
              "nbgraph-all": [n for n in known if n.startswith("nbgraph-")]}
    chosen = _expand(names, known, groups, "benchmark")
    if OWN_TABLE in chosen and table is None:
        raise ConfigError(f"{OWN_TABLE} needs a table file: give it with --table PATH (a file made by "
                          "`nasforge tabulate`; in Python, BenchmarkPlan(table=PATH))")
    if table is not None and OWN_TABLE not in chosen:
        raise ConfigError(f"the table {table} (--table) is read by the {OWN_TABLE} benchmark only, which is not "
                          f"among those run ({', '.join(chosen)}); add {OWN_TABLE} (or all) to --benchmarks")
    return chosen


def resolve_strategies(names: Sequence[str]) -> List[str]:
    """Expand ``all`` to every registered strategy; refuse unknown names."""
    known = STRATEGIES.names()
    return _expand(names, known, {"all": known}, "strategy")


@lru_cache(maxsize=None)
def _space(name: str, table: Optional[str] = None):
    """A benchmark's space, loaded once per process (tables take seconds to read); ``table``: the
    file own-table reads."""
    return create_space(name, table=table) if table is not None else create_space(name)


# ---- what to run --------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunSpec:
    """One search: everything a worker process needs (plain values, so it pickles)."""

    benchmark: str
    strategy: str
    seed: int
    settings: Dict[str, Any]
    budget: Optional[int]
    budget_seconds: Optional[float]
    failure_penalty: float = 0.0
    reward: Optional[Dict[str, Any]] = None  # Scorer.from_config settings; None: val_acc as it is
    record: Tuple[str, ...] = ()  # metrics kept for every query (Pareto fronts)
    table: Optional[str] = None  # own-table: the table file (absolute path)

    def scorer(self) -> Scorer:
        """What turns a query's metrics into the strategy's reward (identity transform by default)."""
        if self.reward is None:
            return Scorer(Objective(metric="val_acc", transform="identity", failure_penalty=self.failure_penalty))
        return Scorer.from_config({"transform": "identity", "failure_penalty": self.failure_penalty,
                                   **self.reward})


@dataclass
class BenchmarkPlan:
    """Which strategies, benchmarks and seeds, and the budget: queries or simulated seconds."""

    strategies: List[str]
    benchmarks: List[str]
    seeds: List[int]
    budget: Optional[int] = None
    budget_seconds: Optional[float] = None
    checkpoints: Optional[List[float]] = None
    settings: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    failure_penalty: float = 0.0
    reward: Optional[Dict[str, Any]] = None
    record: List[str] = field(default_factory=list)
    table: Optional[str] = None  # the file the own-table benchmark reads (made by `nasforge tabulate`)

    def table_for(self, benchmark: str) -> Optional[str]:
        """The table file a benchmark reads: ``table`` for own-table, None for the shipped ones."""
        return self.table if benchmark == OWN_TABLE else None

    @property
    def unit(self) -> str:
        return SECONDS if self.budget_seconds is not None else QUERIES

    @property
    def limit(self) -> float:
        return float(self.budget_seconds if self.budget_seconds is not None else self.budget)

    def resolved_checkpoints(self) -> List[float]:
        """The requested checkpoints within the budget, and the budget itself, ascending."""
        wanted = DEFAULT_CHECKPOINTS if self.checkpoints is None else self.checkpoints
        points = sorted({float(c) for c in wanted if 0 < c <= self.limit} | {self.limit})
        return [int(c) if c.is_integer() else c for c in points]

    def check(self) -> None:
        """Refuse bad names, budgets and settings before any run starts."""
        self.strategies = resolve_strategies(self.strategies)
        if self.table is not None:  # by absolute path, so that runs.json names it from any folder
            self.table = str(Path(self.table).expanduser().resolve())
        self.benchmarks = resolve_benchmarks(self.benchmarks, self.table)
        if (self.budget is None) == (self.budget_seconds is None):
            raise ConfigError("give exactly one budget: queries (--budget) or simulated seconds (--budget-seconds)")
        if self.budget is not None and (int(self.budget) != self.budget or self.budget < 1):
            raise ConfigError(f"budget must be a positive number of queries, got {self.budget}")
        if self.budget_seconds is not None and not (math.isfinite(self.budget_seconds) and self.budget_seconds > 0):
            raise ConfigError(f"budget in seconds must be positive, got {self.budget_seconds}")
        if not self.seeds:
            raise ConfigError("no seeds given")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds repeat: {self.seeds}")
        if any(c <= 0 for c in self.checkpoints or []):
            raise ConfigError(f"checkpoints must be positive, got {self.checkpoints}")
        for name in self.settings:
            if name not in self.strategies:
                raise ConfigError(f"settings given for strategy {name!r}, which is not among those run "
                                  f"({', '.join(self.strategies)})")
        for name in self.strategies:
            try:
                create_strategy(name, **tabular_settings(name, self.settings.get(name)))  # constructors check
            except TypeError as exc:
                raise ConfigError(f"strategy {name}: {exc}") from None
        try:
            scorer = RunSpec("", "", 0, {}, 1, None, self.failure_penalty, self.reward).scorer()
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"reward: {exc}") from None
        needed = set(self.record) | {c.metric for c in scorer.constraints}
        unknown = sorted(m for m in self.record if m not in METRICS)
        if unknown:
            raise ConfigError(f"record: unknown metrics {unknown}")
        for b in self.benchmarks:
            missing = sorted(needed - set(_space(b, self.table_for(b)).all_metrics()))
            if missing:
                raise ConfigError(f"benchmark {b} has no {missing} (constraints and record must name its columns)")

    def tasks(self) -> List[RunSpec]:
        return [RunSpec(b, s, int(seed), tabular_settings(s, self.settings.get(s)), self.budget, self.budget_seconds,
                        self.failure_penalty, self.reward, tuple(self.record), self.table_for(b))
                for b in self.benchmarks for s in self.strategies for seed in self.seeds]



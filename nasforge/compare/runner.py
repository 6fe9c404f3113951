"""Strategies x tabular benchmarks x seeds: many short searches, in parallel, with anytime curves.

Each run is a tight in-process loop (ask -> table lookup -> reward -> tell) with no store: a
lookup costs microseconds, so writing trials would dominate. After every query the run records
the best-by-validation architecture so far (the first query that reached the highest validation
metric; later ties do not replace it) and its test metric. Regret is measured against the best
test metric of the whole table::

    regret(t) = max over all rows of test_acc  -  test_acc of the best-by-validation found by t

so it is >= 0 and reaches 0 only when the search holds a test-optimal architecture. Where
validation and test differ (NAS-Bench-Graph) even a perfect validation search keeps a floor: the
``oracle`` (test metric of the table's best-validation row) is reported beside it, and regret can
rise when a better validation architecture has a worse test metric. On nb201-cifar10 the table
has one accuracy per cell (val_acc = test_acc), so regret curves never rise there.

Hardware-aware runs: a plan's ``reward`` (the keys of ``Scorer.from_config``: constraints,
constraint_mode, weights, ...) decides what the strategy is told, and the strategy's ``tell`` gets
the query's full metrics as ``info["metrics"]`` and its feasibility as ``info["feasible"]``. The
best-by-validation architecture is then the best among those that meet every constraint (in any
mode: a soft-penalised architecture over the limit is never reported as best), and regret is
measured against the best test metric among the table's rows that meet them. ``record`` keeps
the named metrics of every query, for Pareto fronts and hypervolumes.

Runs go to a spawn-based process pool (safe on every platform, and no forked torch state);
each worker loads a table once and keeps it.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ..config import ConfigError
from ..estimators.base import TrialFailed, create_estimator
from ..objectives.registry import METRICS
from ..objectives.objective import Objective
from ..objectives.rewards import Scorer
from ..loop import trial_seed
from ..spaces.base import SPACES, InvalidArchitectureError, create_space
from ..strategies.base import STRATEGIES, create_strategy

DEFAULT_CHECKPOINTS = (50, 100, 300)
MAX_QUERIES = 1_000_000  # a budget in simulated seconds on free queries would never end
QUERIES, SECONDS = "queries", "seconds"

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


def resolve_benchmarks(names: Sequence[str]) -> List[str]:
    """Expand ``all`` and ``nbgraph-all``; refuse unknown names with the list of valid ones."""
    known = tabular_benchmarks()
    result: List[str] = []
    for name in names:
        if name == "all":
            chosen = known
        elif name == "nbgraph-all":
            chosen = [n for n in known if n.startswith("nbgraph-")]
        elif name in known:
            chosen = [name]
        else:
            raise ConfigError(f"unknown benchmark {name!r}; choose from: all, nbgraph-all, {', '.join(known)}")
        result.extend(n for n in chosen if n not in result)
    if not result:
        raise ConfigError("no benchmark chosen")
    return result


def resolve_strategies(names: Sequence[str]) -> List[str]:
    """Expand ``all`` to every registered strategy; refuse unknown names."""
    known = STRATEGIES.names()
    result: List[str] = []
    for name in names:
        if name == "all":
            chosen = known
        elif name in known:
            chosen = [name]
        else:
            raise ConfigError(f"unknown strategy {name!r}; choose from: all, {', '.join(known)}")
        result.extend(n for n in chosen if n not in result)
    if not result:
        raise ConfigError("no strategy chosen")
    return result


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
        self.benchmarks = resolve_benchmarks(self.benchmarks)
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
            missing = sorted(needed - set(_space(b).all_metrics()))
            if missing:
                raise ConfigError(f"benchmark {b} has no {missing} (constraints and record must name its columns)")

    def tasks(self) -> List[RunSpec]:
        return [RunSpec(b, s, int(seed), tabular_settings(s, self.settings.get(s)), self.budget, self.budget_seconds,
                        self.failure_penalty, self.reward, tuple(self.record))
                for b in self.benchmarks for s in self.strategies for seed in self.seeds]


# ---- one run ------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _space(name: str):
    return create_space(name)


def _meets(table: Dict[str, np.ndarray], constraints) -> np.ndarray:
    """Rows of a table that meet every constraint."""
    ok = np.ones(len(table["val_acc"]), dtype=bool)
    for c in constraints:
        ok &= table[c.metric] <= c.limit if c.op == "<=" else table[c.metric] >= c.limit
    return ok


@lru_cache(maxsize=None)
def reference(name: str, constraints: Tuple[str, ...] = ()) -> Dict[str, Any]:
    """What regrets are measured against, and what a report must say about the table.

    With ``constraints`` ("latency_ms<=3", ...) only the rows that meet them count.
    """
    from ..objectives.constraints import parse_constraint

    space = _space(name)
    table = space.all_metrics()
    if constraints:
        ok = _meets(table, [parse_constraint(c) for c in constraints])
        if not ok.any():
            raise ValueError(f"no architecture of {name} meets {list(constraints)}")
        table = {k: v[ok] for k, v in table.items()}
    val, test = table["val_acc"], table["test_acc"]
    row = int(np.argmax(val))
    oracle = {"test_acc": float(test[row]), "tokens": tuple(int(t) for t in table["tokens"][row])}
    tied = val == val.max()
    return {
        "constraints": list(constraints),
        "benchmark": name,
        "rows": int(len(val)),
        "max_test": float(test.max()),          # the best achievable: regret 0
        "max_val": float(val.max()),
        "oracle_test": float(oracle["test_acc"]),  # test metric of the best-validation row
        "oracle_tokens": list(oracle["tokens"]),
        "oracle_tied_rows": int(tied.sum()),
        "oracle_test_tied_mean": float(test[tied].mean()),
        "single_accuracy": bool(np.array_equal(val, test)),
        "seconds_per_query": float(space.seconds_per_query),
        "notes": space.notes,
    }


def run_one(spec: RunSpec) -> Dict[str, Any]:
    """One search on one table; a strategy that raises fails this run only (``error`` is set)."""
    start = time.perf_counter()
    result: Dict[str, Any] = {"benchmark": spec.benchmark, "strategy": spec.strategy, "seed": spec.seed,
                              "settings": spec.settings, "error": None}
    try:
        result.update(_search(spec))
    except Exception as exc:  # noqa: BLE001 - one broken strategy must not stop a whole sweep
        last = traceback.extract_tb(exc.__traceback__)[-1]
        result["error"] = f"{type(exc).__name__}: {exc} ({os.path.basename(last.filename)}:{last.lineno})"
    result["wall_s"] = time.perf_counter() - start
    return result


def _search(spec: RunSpec) -> Dict[str, Any]:
    space = _space(spec.benchmark)
    scorer = spec.scorer()
    ref = reference(spec.benchmark, tuple(str(c) for c in scorer.constraints))
    estimator = create_estimator("tabular")
    estimator.setup(space)
    strategy = create_strategy(spec.strategy, **spec.settings)
    strategy.setup(space, spec.seed)

    best_val, best_test = -math.inf, math.nan
    curve_val: List[float] = []
    curve_test: List[float] = []
    seconds: List[float] = []
    failed: List[int] = []
    improvements: List[Dict[str, Any]] = []
    points: List[List[float]] = []  # the recorded metrics of every successful query
    infeasible = 0  # queries over a limit
    first_failure: Optional[str] = None  # why the first failed query failed: a user must see it
    spent = 0.0
    while (len(seconds) < spec.budget) if spec.budget is not None else (spent < spec.budget_seconds):
        query = len(seconds) + 1
        proposal = strategy.ask()
        metrics: Dict[str, Any] = {}
        try:
            metrics = estimator.evaluate(proposal.tokens, trial_seed(spec.seed, query - 1))
            evaluation = scorer.evaluate(metrics)
            reward, cost = evaluation.reward, float(metrics["simulated_seconds"])
            meets = all(c.satisfied(c.value(metrics)) for c in scorer.constraints)
            value: Optional[float] = float(metrics["val_acc"]) if meets else None
            feasible = evaluation.feasible
            infeasible += not meets
            if spec.record:
                points.append([float(metrics[m]) for m in spec.record])
        except (TrialFailed, InvalidArchitectureError, KeyError, ValueError, TypeError) as exc:
            value, reward, cost, feasible = None, scorer.failure_penalty, space.seconds_per_query, False
            failed.append(query)
            if first_failure is None:
                first_failure = f"query {query}: {type(exc).__name__}: {exc}"
        strategy.tell(proposal.tokens, reward, {**proposal.info, "metrics": metrics, "feasible": feasible})
        if value is not None and value > best_val:
            best_val, best_test = value, float(metrics["test_acc"])
            improvements.append({"query": query, "tokens": [int(t) for t in proposal.tokens],
                                 "val": best_val, "test": best_test})
        spent += cost
        if len(seconds) >= MAX_QUERIES:
            raise RuntimeError(f"stopped after {MAX_QUERIES} queries: queries cost no simulated time")
        curve_val.append(best_val if improvements else math.nan)
        curve_test.append(best_test)
        seconds.append(spent)
    regret = [ref["max_test"] - t for t in curve_test]
    return {"queries": len(seconds), "failures": len(failed), "failed_queries": failed, "first_failure": first_failure,
            "simulated_seconds": spent, "improvements": improvements, "infeasible": infeasible,
            "record": list(spec.record), "points": points,
            "curve": {"best_val": curve_val, "best_test": curve_test, "regret": regret, "seconds": seconds}}


# ---- reading runs -------------------------------------------------------------------------------
def queries_by(run: Dict[str, Any], budget: float, unit: str) -> int:
    """How many queries the run had made when ``budget`` (queries or simulated seconds) was spent."""
    return int(_queries_by(run, np.array([budget], dtype=float), unit)[0])


def _queries_by(run: Dict[str, Any], budgets: np.ndarray, unit: str) -> np.ndarray:
    if unit == QUERIES:
        return np.minimum(np.floor(budgets).astype(int), run["queries"])
    # a query counts once its cumulative cost is within the budget (with slack for float sums)
    return np.searchsorted(np.asarray(run["curve"]["seconds"]), budgets * (1 + 1e-12) + 1e-9, side="right")


def at_checkpoint(run: Dict[str, Any], budget: float, unit: str) -> Dict[str, Any]:
    """The run's state after ``budget``: best-by-validation tokens, metrics and regret."""
    n = queries_by(run, budget, unit)
    best = [i for i in run["improvements"] if i["query"] <= n]
    curve = run["curve"]
    return {
        "checkpoint": budget, "queries": n,
        "simulated_seconds": curve["seconds"][n - 1] if n else 0.0,
        "failures": sum(q <= n for q in run["failed_queries"]),
        "best_val": curve["best_val"][n - 1] if n else math.nan,
        "best_test": curve["best_test"][n - 1] if n else math.nan,
        "regret": curve["regret"][n - 1] if n else math.nan,
        "best_query": best[-1]["query"] if best else None,
        "best_tokens": best[-1]["tokens"] if best else None,
    }


def curve_matrix(runs: Sequence[Dict[str, Any]], grid: Sequence[float], unit: str,
                 key: str = "regret") -> np.ndarray:
    """Runs x grid points of a curve (NaN before a run's first successful query)."""
    grid = np.asarray(grid, dtype=float)
    out = np.full((len(runs), len(grid)), np.nan)
    for i, run in enumerate(runs):
        values = np.asarray(run["curve"][key], dtype=float)
        n = _queries_by(run, grid, unit)
        out[i, n > 0] = values[n[n > 0] - 1]
    return out


def _stats(values: Sequence[float]) -> Dict[str, float]:
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    std = float(x.std(ddof=1)) if n > 1 else math.nan
    return {"n": n, "mean": float(x.mean()) if n else math.nan, "std": std,
            "se": std / math.sqrt(n) if n > 1 else math.nan}


# ---- the whole benchmark ------------------------------------------------------------------------
@dataclass
class BenchmarkResult:
    plan: BenchmarkPlan
    runs: List[Dict[str, Any]]
    references: Dict[str, Dict[str, Any]]
    wall_s: float
    workers: int

    def ok_runs(self, benchmark: str, strategy: str) -> List[Dict[str, Any]]:
        return [r for r in self.runs if r["benchmark"] == benchmark and r["strategy"] == strategy and not r["error"]]

    def errors(self) -> List[Dict[str, Any]]:
        return [r for r in self.runs if r["error"]]

    def query_failures(self) -> List[Dict[str, Any]]:
        """Per benchmark x strategy with failed queries: how many of how many, over how many runs,
        and the first failure's message (runs that raised are ``errors``, not counted here)."""
        out = []
        for b in self.plan.benchmarks:
            for s in self.plan.strategies:
                runs = self.ok_runs(b, s)
                failed = sum(r["failures"] for r in runs)
                if not failed:
                    continue
                queries = sum(r["queries"] for r in runs)
                first = next((f"seed {r['seed']}, {r['first_failure']}" for r in runs if r.get("first_failure")),
                             None)
                out.append({"benchmark": b, "strategy": s, "runs": len(runs), "failed": failed,
                            "queries": queries, "all_failed": failed == queries, "first_failure": first})
        return out

    def all_failed(self) -> List[Dict[str, Any]]:
        """The benchmark x strategy pairs none of whose queries was answered: they found nothing."""
        return [f for f in self.query_failures() if f["all_failed"]]

    def summary(self) -> List[Dict[str, Any]]:
        """Mean, std and standard error over seeds per benchmark x strategy x checkpoint."""
        rows = []
        for b in self.plan.benchmarks:
            for s in self.plan.strategies:
                runs = self.ok_runs(b, s)
                for c in self.plan.resolved_checkpoints():
                    points = [at_checkpoint(r, c, self.plan.unit) for r in runs]
                    test = _stats([p["best_test"] for p in points])
                    regret = _stats([p["regret"] for p in points])
                    rows.append({
                        "benchmark": b, "strategy": s, "checkpoint": c, "unit": self.plan.unit, "runs": len(runs),
                        "test_mean": test["mean"], "test_std": test["std"],
                        "regret_mean": regret["mean"], "regret_std": regret["std"], "regret_se": regret["se"],
                        "failures_mean": float(np.mean([p["failures"] for p in points])) if points else math.nan,
                    })
        return rows


def _init_worker() -> None:
    """One thread per process: the pool already uses every core, and tiny LSTMs run best on one."""
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


@contextmanager
def _one_torch_thread() -> Iterator[None]:
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_benchmark(plan: BenchmarkPlan, workers: Optional[int] = None,
                  on_run: Optional[Callable[[Dict[str, Any]], None]] = None) -> BenchmarkResult:
    """Check the plan, run every (benchmark, strategy, seed), return the runs in plan order.

    ``workers``: processes (default: CPU count); 1 runs everything in this process.
    ``on_run`` is called with each finished run, in completion order (for progress displays).
    """
    plan.check()
    specs = plan.tasks()
    workers = max(1, min(int(workers or os.cpu_count() or 1), len(specs)))
    start = time.perf_counter()
    constraints = tuple(str(c) for c in specs[0].scorer().constraints) if specs else ()
    references = {b: reference(b, constraints) for b in plan.benchmarks}  # also loads every table before timing runs
    results: List[Optional[Dict[str, Any]]] = [None] * len(specs)
    if workers == 1:
        with _one_torch_thread():
            for i, spec in enumerate(specs):
                results[i] = run_one(spec)
                if on_run:
                    on_run(results[i])
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker) as pool:
            futures = {pool.submit(run_one, spec): i for i, spec in enumerate(specs)}
            try:
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    if on_run:
                        on_run(results[futures[future]])
            except BaseException:  # Ctrl+C or a dead worker: do not wait for the queued runs
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    return BenchmarkResult(plan, [r for r in results if r is not None], references,
                           time.perf_counter() - start, workers)

"""Strategies x tabular benchmarks x seeds: many short searches, in parallel, with anytime curves.

``plan.py`` says what to run, ``one_run.py`` runs one search (the regret it measures is defined
there); this module runs a whole plan and reads the runs: checkpoints, curves, summaries.

Runs go to a spawn-based process pool (safe on every platform, and no forked torch state);
each worker loads a table once and keeps it.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from ..strategies.base import one_torch_thread
from .one_run import MAX_QUERIES, reference, run_one  # noqa: F401  (re-exported: the names users import)
from .plan import (DEFAULT_CHECKPOINTS, NOT_COMPARED, QUERIES, SECONDS, TABULAR_DEFAULTS,  # noqa: F401
                   BenchmarkPlan, RunSpec, compared_strategies, resolve_benchmarks, resolve_strategies,
                   tabular_benchmarks, tabular_settings)


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
    # also loads every table before timing runs
    references = {b: reference(b, constraints, plan.table_for(b)) for b in plan.benchmarks}
    results: List[Optional[Dict[str, Any]]] = [None] * len(specs)
    if workers == 1:
        with one_torch_thread():
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

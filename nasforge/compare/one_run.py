"""One search on one tabular benchmark, and what its regret is measured against.

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
"""

from __future__ import annotations

import math
import os
import time
import traceback
from functools import lru_cache
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..estimators.base import TrialFailed, create_estimator
from ..loop import trial_seed
from ..spaces.base import InvalidArchitectureError
from ..strategies.base import create_strategy
from .plan import RunSpec, _space

MAX_QUERIES = 1_000_000  # a budget in simulated seconds on free queries would never end


def _meets(table: Dict[str, np.ndarray], constraints) -> np.ndarray:
    """Rows of a table that meet every constraint."""
    ok = np.ones(len(table["val_acc"]), dtype=bool)
    for c in constraints:
        ok &= table[c.metric] <= c.limit if c.op == "<=" else table[c.metric] >= c.limit
    return ok


@lru_cache(maxsize=None)
def reference(name: str, constraints: Tuple[str, ...] = (), table_file: Optional[str] = None) -> Dict[str, Any]:
    """What regrets are measured against, and what a report must say about the table.

    With ``constraints`` ("latency_ms<=3", ...) only the rows that meet them count; ``table_file`` is
    the file own-table reads (named in the result).
    """
    from ..objectives.constraints import parse_constraint

    space = _space(name, table_file)
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
        **({"table": table_file} if table_file is not None else {}),
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
    space = _space(spec.benchmark, spec.table)
    scorer = spec.scorer()
    ref = reference(spec.benchmark, tuple(str(c) for c in scorer.constraints), spec.table)
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



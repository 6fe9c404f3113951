"""The comparison of ``nasforge benchmark`` (its runs.json) for the HTML report: the same curves as
its anytime.png (test and validation regret, mean ± standard error over seeds, strategies labelled
with their settings, failures named), thinned to at most ``POINTS`` points per curve."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List

POINTS = 120


def _plain(values) -> List[Any]:
    return [None if not math.isfinite(float(v)) else round(float(v), 5) for v in values]


def benchmark_data(path: Path) -> Dict[str, Any]:
    import numpy as np

    from ..compare.curves import CURVE_KINDS, curve_grid, curve_stats, strategy_label
    from ..compare.report import load_result
    from ..compare.runner import QUERIES

    file = path / "runs.json" if path.is_dir() else path
    if not file.is_file():
        raise ValueError(f"--benchmark {path}: no runs.json there (write one with nasforge benchmark --format json "
                         "or both)")
    try:
        result = load_result(file)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"--benchmark {file} is not a nasforge benchmark result ({type(exc).__name__}: {exc})") \
            from None
    plan = result.plan
    grid = curve_grid(result)
    keep = np.arange(len(grid)) if len(grid) <= POINTS else \
        np.unique(np.round(np.geomspace(1, len(grid), POINTS)).astype(int) - 1)  # even on the log axis
    failures = {(f["benchmark"], f["strategy"]): f for f in result.query_failures()}
    panels = []
    for kind, ylabel in CURVE_KINDS:
        for b in plan.benchmarks:
            curves, failed = [], []
            for s in plan.strategies:
                f = failures.get((b, s))
                if f and f["all_failed"]:
                    failed.append(f"{s} ({f['failed']} of {f['queries']} queries)")
                stats = curve_stats(result, b, s, grid, kind)
                if stats is None:
                    curves.append({"label": strategy_label(plan, s), "x": [], "mean": [], "low": [], "high": []})
                    continue
                mean, se = stats["mean"][keep], stats["se"][keep]
                curves.append({"label": strategy_label(plan, s), "x": _plain(grid[keep]), "mean": _plain(mean),
                               "low": _plain(mean - se), "high": _plain(mean + se)})
            panels.append({"title": f"{b}: {'test' if kind == 'regret' else 'validation'} regret",
                           "xlabel": "queries" if plan.unit == QUERIES else "simulated seconds",
                           "ylabel": ylabel, "curves": curves, "failed": failed})
    note = (f"nasforge benchmark {file}: {len(plan.strategies)} strategies on {len(plan.benchmarks)} benchmark(s), "
            f"{len(plan.seeds)} seeds; regret of the best-by-validation architecture, mean ± standard error.")
    return {"note": note, "panels": panels}

"""The strategy comparison in the docs: the search strategies on every tabular benchmark.

Each strategy runs with the harness's settings (``runner.TABULAR_DEFAULTS`` over its own
defaults), on seeds 100-119 by default: the defaults were tuned on seeds 0-19.

Three steps, each saved under ``--out`` (runs.csv, summary.csv, runs.json, anytime.png):

1. ``nb201/``: the strategies x nb201-cifar10 x 20 seeds x 300 queries, timed as a whole
   (process start-up and table loading included; target: <= 2 minutes on 2 cores);
2. ``nbgraph/``: the same on the nine NAS-Bench-Graph datasets;
3. ``analytic.json``: random search against its exact expected regret
   (``nasforge.compare.analytic``): the runner's ``random`` with ``dedup=False`` (what the
   formula models) over ``--analytic-seeds`` seeds, and the default ``random`` of steps 1-2.

``summary.md`` collects the tables for docs/benchmarks-tabular.md.

    .venv/bin/python benchmarks/search/strategies_tabular.py [--seeds 20] [--budget 300] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from nasforge.compare import analytic, report
from nasforge.compare.runner import (BenchmarkPlan, BenchmarkResult, at_checkpoint, compared_strategies,
                                          resolve_benchmarks, run_benchmark)
from nasforge.spaces import create_space
from nasforge.strategies import STRATEGIES

CHECKPOINTS = [50, 100, 300]


def machine() -> str:
    return f"{report.machine()}, Python {platform.python_version()}"


def load_average() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def sweep(name: str, benchmarks: List[str], args, out: Path, extra_curves=None) -> BenchmarkResult:
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    plan = BenchmarkPlan(args.strategies, benchmarks, seeds, budget=args.budget,
                         checkpoints=CHECKPOINTS)
    done = [0]

    def progress(run: Dict[str, Any]) -> None:
        done[0] += 1
        if run["error"]:
            print(f"  failed: {run['benchmark']} {run['strategy']} {run['seed']}: {run['error']}", flush=True)
        if done[0] % 50 == 0:
            print(f"  {name}: {done[0]} runs", flush=True)

    load = load_average()
    result = run_benchmark(plan, workers=args.workers, on_run=progress)
    print(f"{name}: {len(result.runs)} runs in {result.wall_s:.1f} s on {result.workers} workers "
          f"(load average before: {load})", flush=True)
    report.save(result, out / name, "both", command=" ".join([sys.executable, *map(shlex.quote, sys.argv)]),
                extra_json={"load_average_before": load}, extra_curves=extra_curves)
    return result


def markdown_table(result: BenchmarkResult) -> str:
    """Mean ± std over seeds (points) per benchmark x strategy, the regret also with its std error."""
    rows = {(r["benchmark"], r["strategy"], r["checkpoint"]): r for r in result.summary()}
    checkpoints = result.plan.resolved_checkpoints()
    head = ["benchmark", "strategy"] + [f"test @{c}" for c in checkpoints] + [f"regret @{c}" for c in checkpoints]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for b in result.plan.benchmarks:
        for s in result.plan.strategies:
            cells = [b, s]
            for c in checkpoints:
                r = rows[(b, s, c)]
                cells.append(f"{100 * r['test_mean']:.2f} ± {100 * r['test_std']:.2f}")
            for c in checkpoints:
                r = rows[(b, s, c)]
                cells.append(f"{100 * r['regret_mean']:.2f} ± {100 * r['regret_std']:.2f} "
                             f"(se {100 * r['regret_se']:.2f})")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cost_table(results: List[BenchmarkResult]) -> str:
    """Where the time goes: seconds of run time per strategy (all runs, summed, and per run)."""
    lines = ["| sweep | " + " | ".join(results[0].plan.strategies) + " |",
             "|---|" + "---|" * len(results[0].plan.strategies)]
    for result in results:
        cells = []
        for s in result.plan.strategies:
            times = [r["wall_s"] for r in result.runs if r["strategy"] == s]
            cells.append(f"{sum(times):.1f} s ({sum(times) / len(times):.2f} s/run)")
        name = result.plan.benchmarks[0] if len(result.plan.benchmarks) == 1 else "nbgraph (9 datasets)"
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def references_table(results: List[BenchmarkResult]) -> str:
    lines = ["| benchmark | rows | best test % | oracle test % (tied rows) | oracle regret | one accuracy per arch |",
             "|---|---|---|---|---|---|"]
    for result in results:
        for b in result.plan.benchmarks:
            ref = result.references[b]
            lines.append(f"| {b} | {ref['rows']} | {100 * ref['max_test']:.2f} | {100 * ref['oracle_test']:.2f} "
                         f"({ref['oracle_tied_rows']}) | {100 * (ref['max_test'] - ref['oracle_test']):.2f} | "
                         f"{'yes' if ref['single_accuracy'] else 'no'} |")
    return "\n".join(lines)


def mean_se(values) -> Dict[str, float]:
    x = np.asarray(values, dtype=float)
    return {"n": len(x), "mean": float(x.mean()), "se": float(x.std(ddof=1) / math.sqrt(len(x)))}


def analytic_check(args, results: List[BenchmarkResult], out: Path) -> Dict[str, Any]:
    """Random search against the exact expectation; nb201 also with many seeds and no de-duplication."""
    check: Dict[str, Any] = {"ks": CHECKPOINTS, "benchmarks": {}}
    plan = BenchmarkPlan(["random"], ["nb201-cifar10"], list(range(args.analytic_seeds)), budget=max(CHECKPOINTS),
                         checkpoints=CHECKPOINTS, settings={"random": {"dedup": False}})
    nodedup = run_benchmark(plan, workers=args.workers)
    space = create_space("nb201-cifar10")
    table = space.all_metrics()
    from nasforge.tables.nb201 import _canonical_rows

    mc_dedup = {k: mean_se(analytic.simulate_random_search(table["val_acc"], table["test_acc"], k, runs=4000, seed=k,
                                                           classes=_canonical_rows()))
                for k in CHECKPOINTS}
    for result in results:
        for b in result.plan.benchmarks:
            if "random" not in result.plan.strategies:
                continue
            expected = analytic.random_search_regret(create_space(b), CHECKPOINTS)["expected_regret"]
            entry = {"expected_regret": expected,
                     "random_default": [mean_se([at_checkpoint(r, k, "queries")["regret"]
                                                 for r in result.ok_runs(b, "random")]) for k in CHECKPOINTS]}
            if b == "nb201-cifar10":
                entry["random_nodedup"] = [mean_se([at_checkpoint(r, k, "queries")["regret"] for r in nodedup.runs])
                                           for k in CHECKPOINTS]
                entry["dedup_monte_carlo_4000"] = [mc_dedup[k] for k in CHECKPOINTS]
            check["benchmarks"][b] = entry
    (out / "analytic.json").write_text(json.dumps(check, indent=1))
    return check


def validation_table(result: BenchmarkResult, checkpoints=(100, 300)) -> str:
    """Mean best-found validation metric (points, standard error in brackets): what the
    strategies optimise, and what the NAS-Bench-Graph target compares with TPE's."""
    head = [f"{s} @{c}" for c in checkpoints for s in result.plan.strategies]
    lines = ["| benchmark | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
    for b in result.plan.benchmarks:
        cells = []
        for c in checkpoints:
            for s in result.plan.strategies:
                e = mean_se([at_checkpoint(r, c, "queries")["best_val"] for r in result.ok_runs(b, s)])
                cells.append(f"{100 * e['mean']:.2f} ({100 * e['se']:.2f})")
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def analytic_markdown(check: Dict[str, Any]) -> str:
    ks = check["ks"]
    lines = ["| benchmark | k | analytic (i.i.d.) | runner random, default (dedup) | "
             "runner random, dedup=false | Monte Carlo with dedup (4000 runs) |", "|---|---|---|---|---|---|"]

    def fmt(e):
        return f"{100 * e['mean']:.3f} ± {100 * e['se']:.3f} (n={e['n']})" if e else "-"

    for b, entry in check["benchmarks"].items():
        for i, k in enumerate(ks):
            nodedup = entry.get("random_nodedup", [None] * len(ks))[i]
            mc = entry.get("dedup_monte_carlo_4000", [None] * len(ks))[i]
            lines.append(f"| {b} | {k} | {100 * entry['expected_regret'][i]:.3f} | {fmt(entry['random_default'][i])} | "
                         f"{fmt(nodedup)} | {fmt(mc)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strategies", nargs="+", default=None,
                        help="default: runner.compared_strategies() (`all`: every registered one)")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=100,
                        help="seeds first-seed ... first-seed + seeds - 1; the default keeps them apart from the "
                             "seeds 0-19 that the defaults were tuned on")
    parser.add_argument("--budget", type=int, default=300)
    parser.add_argument("--workers", type=int, default=None, help="default: CPU count")
    parser.add_argument("--analytic-seeds", type=int, default=1000)
    parser.add_argument("--skip-nbgraph", action="store_true")
    parser.add_argument("--out", default="benchmarks/results/strategies-tabular")
    parser.add_argument("--tables-only", action="store_true",
                        help="rewrite summary.md from the runs and analytic check already saved under --out")
    args = parser.parse_args()
    if args.strategies is None:
        args.strategies = compared_strategies()
    elif args.strategies == ["all"]:
        args.strategies = STRATEGIES.names()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = "?"
    print(f"strategies: {', '.join(args.strategies)}; machine: {machine()}; commit {commit}", flush=True)

    if args.tables_only:
        results = [report.load_result(out / name / "runs.json") for name in ("nb201", "nbgraph")
                   if (out / name / "runs.json").exists()]
        check = json.loads((out / "analytic.json").read_text())
        write_summary(args, out, results, check, commit)
        return

    space = create_space("nb201-cifar10")
    table = space.all_metrics()
    ks = np.arange(1, args.budget + 1)
    curve = {"x": ks, "y": analytic.expected_regret(table["val_acc"], table["test_acc"], ks),
             "label": "random, analytic (i.i.d.)"}
    results = [sweep("nb201", ["nb201-cifar10"], args, out, {"nb201-cifar10": curve})]
    if not args.skip_nbgraph:
        graphs = resolve_benchmarks(["nbgraph-all"])
        curves = {}
        for b in graphs:
            sp = create_space(b)
            t = sp.all_metrics()
            curves[b] = {"x": ks, "y": analytic.expected_regret(t["val_acc"], t["test_acc"], ks,
                                                                analytic.row_weights(sp)),
                         "label": "random, analytic (i.i.d.)"}
        results.append(sweep("nbgraph", graphs, args, out, curves))
    check = analytic_check(args, results, out)
    write_summary(args, out, results, check, commit)


def write_summary(args, out: Path, results: List[BenchmarkResult], check: Dict[str, Any], commit: str) -> None:
    when = "tables rewritten" if args.tables_only else "date"
    text = [f"{when}: {time.strftime('%Y-%m-%d %H:%M %z')}; commit {commit} (plus uncommitted work); "
            f"machine: {machine()}",
            f"strategies: {', '.join(args.strategies)}; {args.seeds} seeds from {args.first_seed} "
            f"x {args.budget} queries",
            *(f"{r.plan.benchmarks[0] if len(r.plan.benchmarks) == 1 else 'nbgraph (9 datasets)'}: "
              f"{len(r.runs)} runs, wall {r.wall_s:.1f} s on {r.workers} workers" for r in results),
            "", "run time per strategy (summed over runs; the sweep's wall time is about this over the workers):",
            "", cost_table(results), "", references_table(results), "", *(markdown_table(r) + "\n" for r in results),
            "best-found validation metric, mean (standard error):", "",
            *(validation_table(r) + "\n" for r in results), analytic_markdown(check)]
    (out / "summary.md").write_text("\n".join(text) + "\n")
    print("\n".join(text))


if __name__ == "__main__":
    main()

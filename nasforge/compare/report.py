"""Writing a benchmark's results: CSV and JSON of every run, a printed table, a PNG of curves.

Files keep metrics as fractions, exactly as the tables hold them; the printed table and the plot
show percentage points (accuracy 0.9407 -> 94.07, regret 0.0056 -> 0.56 points).
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .curves import plot_curves
from .runner import QUERIES, BenchmarkPlan, BenchmarkResult, at_checkpoint

RUN_COLUMNS = ("benchmark", "strategy", "seed", "unit", "checkpoint", "queries", "simulated_seconds", "failures",
               "best_val", "best_test", "regret", "max_test", "oracle_test", "best_query", "best_tokens",
               "settings", "error", "first_failure")
SUMMARY_COLUMNS = ("benchmark", "strategy", "unit", "checkpoint", "runs", "test_mean", "test_std", "regret_mean",
                   "regret_std", "regret_se", "failures_mean", "max_test", "oracle_test")


def _plain(value: Any) -> Any:
    """JSON without NaN (which is not JSON): NaN and infinities become null."""
    if isinstance(value, float):
        return round(value, 10) if math.isfinite(value) else None  # rounding drops float noise
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return _plain(value.item())
    return value


def _cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, float):
        return round(value, 10)  # drops float noise such as 0.9406640000000001
    return value


def run_rows(result: BenchmarkResult) -> List[Dict[str, Any]]:
    """One row per run x checkpoint (one row with the error for a run that failed)."""
    rows = []
    unit = result.plan.unit
    for run in result.runs:
        ref = result.references[run["benchmark"]]
        base = {"benchmark": run["benchmark"], "strategy": run["strategy"], "seed": run["seed"], "unit": unit,
                "max_test": ref["max_test"], "oracle_test": ref["oracle_test"], "settings": run["settings"],
                "error": run["error"], "first_failure": run.get("first_failure")}
        if run["error"]:
            rows.append(base)
            continue
        for c in result.plan.resolved_checkpoints():
            rows.append({**base, **at_checkpoint(run, c, unit)})
    return rows


def summary_rows(result: BenchmarkResult) -> List[Dict[str, Any]]:
    return [{**row, "max_test": result.references[row["benchmark"]]["max_test"],
             "oracle_test": result.references[row["benchmark"]]["oracle_test"]} for row in result.summary()]


def write_csv(rows: Sequence[Dict[str, Any]], columns: Sequence[str], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(row.get(k)) for k in columns})


def machine() -> str:
    """CPU model and count: timings mean little without them."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}"


def metadata(result: BenchmarkResult, command: Optional[str] = None) -> Dict[str, Any]:
    import nasforge

    return {"command": command, "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "machine": machine(),
            "python": platform.python_version(), "nasforge": nasforge.__version__,
            "workers": result.workers, "wall_s": result.wall_s, "runs": len(result.runs),
            "errors": len(result.errors())}


def write_json(result: BenchmarkResult, path: Path, command: Optional[str] = None,
               extra: Optional[Dict[str, Any]] = None) -> None:
    plan = result.plan
    data = {
        "meta": metadata(result, command),
        "plan": {"strategies": plan.strategies, "benchmarks": plan.benchmarks, "seeds": plan.seeds,
                 "unit": plan.unit, "budget": plan.limit, "checkpoints": plan.resolved_checkpoints(),
                 "settings": plan.settings, "failure_penalty": plan.failure_penalty, "table": plan.table,
                 "objective": {"metric": "val_acc", "transform": "identity"}},
        "regret": "max test metric over all rows of the table minus the test metric of the best-by-validation "
                  "architecture found so far (first found on validation ties)",
        "references": result.references,
        "summary": summary_rows(result),
        "query_failures": result.query_failures(),
        **(extra or {}),
        "runs": result.runs,
    }
    path.write_text(json.dumps(_plain(data), separators=(",", ":")))


def load_result(path: Path) -> BenchmarkResult:
    """A result back from its runs.json (to re-plot or re-tabulate without running again)."""
    data = json.loads(Path(path).read_text())
    plan = data["plan"]
    queries = plan["unit"] == QUERIES
    result_plan = BenchmarkPlan(plan["strategies"], plan["benchmarks"], plan["seeds"],
                                budget=int(plan["budget"]) if queries else None,
                                budget_seconds=None if queries else plan["budget"],
                                checkpoints=plan["checkpoints"], settings=plan["settings"],
                                failure_penalty=plan["failure_penalty"], table=plan.get("table"))
    for run in data["runs"]:
        if "curve" in run:  # JSON has null where the files had NaN
            run["curve"] = {k: [math.nan if v is None else v for v in values] for k, values in run["curve"].items()}
    return BenchmarkResult(result_plan, data["runs"], data["references"], data["meta"]["wall_s"],
                           data["meta"]["workers"])


def _pm(mean: float, std: float, scale: float = 100.0) -> str:
    if not math.isfinite(mean):
        return "-"
    return f"{scale * mean:.2f} ± {scale * std:.2f}" if math.isfinite(std) else f"{scale * mean:.2f}"


def failure_warnings(result: BenchmarkResult) -> List[str]:
    """One line per benchmark x strategy whose queries failed: the count and the first message.

    Failed queries are rewarded with the failure penalty and count against the budget, so a run
    can end with nothing found; the numbers beside it would otherwise read as a result."""
    lines = []
    for f in result.query_failures():
        runs = f"{f['runs']} run{'s' if f['runs'] != 1 else ''}"
        what = ("none was answered, so it found nothing" if f["all_failed"]
                else f"{100 * f['failed'] / f['queries']:.2g}% of its budget spent on them")
        lines.append(f"{f['strategy']} on {f['benchmark']}: {f['failed']} of {f['queries']} queries failed "
                     f"({runs}); {what}. First failure: {f['first_failure']}")
    return lines


def print_report(result: BenchmarkResult, console) -> None:
    """The table of mean ± std over seeds (percentage points), then what the tables are; then a
    warning for every benchmark x strategy whose queries failed."""
    from rich.table import Table

    plan = result.plan
    failures = {(f["benchmark"], f["strategy"]): f for f in result.query_failures()}
    checkpoints = plan.resolved_checkpoints()
    unit = "q" if plan.unit == QUERIES else "s"
    table = Table(title=f"best-by-validation test metric and regret (points; mean ± std over "
                        f"{len(plan.seeds)} seeds; @ {'queries' if unit == 'q' else 'simulated seconds'})")
    for col in ("benchmark", "strategy"):
        table.add_column(col)
    for c in checkpoints:
        table.add_column(f"test @{c}{unit}", justify="right")
        table.add_column(f"regret @{c}{unit}", justify="right")
    if failures:
        table.add_column("failed queries", justify="right")
    rows = {(r["benchmark"], r["strategy"], r["checkpoint"]): r for r in result.summary()}
    for b in plan.benchmarks:
        for s in plan.strategies:
            failed = failures.get((b, s))
            cells = []
            for c in checkpoints:
                r = rows[(b, s, c)]
                if failed and failed["all_failed"]:
                    cells += ["[red]all failed[/]"] * 2
                else:
                    cells += [_pm(r["test_mean"], r["test_std"]), _pm(r["regret_mean"], r["regret_std"])]
            if failures:
                cells.append(f"[red]{failed['failed']} of {failed['queries']}[/]" if failed else "0")
            table.add_row(b, s, *cells)
        table.add_section()
    console.print(table)

    refs = Table(title="reference points (percent); regret = best test - test of the best-by-validation found")
    for col in ("benchmark", "rows", "best test", "oracle test", "oracle regret", "one accuracy per arch"):
        refs.add_column(col, justify="left" if col == "benchmark" else "right")
    for b in plan.benchmarks:
        ref = result.references[b]
        refs.add_row(b, str(ref["rows"]), f"{100 * ref['max_test']:.2f}", f"{100 * ref['oracle_test']:.2f}"
                     + (f" ({ref['oracle_tied_rows']} tied)" if ref["oracle_tied_rows"] > 1 else ""),
                     f"{100 * (ref['max_test'] - ref['oracle_test']):.2f}", "yes" if ref["single_accuracy"] else "no")
    console.print(refs)
    console.print("oracle test: the test metric of the table's best-validation row (the first one on ties); "
                  "oracle regret is what a search that found it would still report.")
    for b in plan.benchmarks:
        if result.references[b].get("table"):
            console.print(f"[bold]{b}[/]: the table {result.references[b]['table']}", highlight=False, soft_wrap=True)
    for b in plan.benchmarks:
        ref = result.references[b]
        if ref["single_accuracy"]:
            console.print(f"[bold]{b}[/]: the table has a single accuracy per architecture (val_acc = test_acc), "
                          f"so the 'test' metric is the number the search optimised. Table notes: {ref['notes']}",
                          highlight=False)
    for run in result.errors():
        console.print(f"[red]run failed[/]: {run['benchmark']} {run['strategy']} seed {run['seed']}: {run['error']}")
    for line in failure_warnings(result):
        console.print(f"[bold red]warning[/]: {line}", highlight=False, soft_wrap=True)  # one line to grep


def save(result: BenchmarkResult, out: Path, formats: str = "both", command: Optional[str] = None,
         extra_json: Optional[Dict[str, Any]] = None,
         extra_curves: Optional[Dict[str, Dict[str, Any]]] = None) -> Dict[str, Path]:
    """Write runs.csv + summary.csv (csv), runs.json (json) and anytime.png into ``out``."""
    if formats not in ("csv", "json", "both"):
        raise ValueError(f"format must be csv, json or both, got {formats!r}")
    out.mkdir(parents=True, exist_ok=True)
    written: Dict[str, Path] = {}
    if formats in ("csv", "both"):
        write_csv(run_rows(result), RUN_COLUMNS, out / "runs.csv")
        write_csv(summary_rows(result), SUMMARY_COLUMNS, out / "summary.csv")
        written.update(runs_csv=out / "runs.csv", summary_csv=out / "summary.csv")
    if formats in ("json", "both"):
        write_json(result, out / "runs.json", command, extra_json)
        written["json"] = out / "runs.json"
    plot_curves(result, out / "anytime.png", extra_curves)
    written["png"] = out / "anytime.png"
    return written

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

from .runner import QUERIES, BenchmarkPlan, BenchmarkResult, at_checkpoint, curve_matrix

RUN_COLUMNS = ("benchmark", "strategy", "seed", "unit", "checkpoint", "queries", "simulated_seconds", "failures",
               "best_val", "best_test", "regret", "max_test", "oracle_test", "best_query", "best_tokens",
               "settings", "error", "first_failure")
Y_TICKS = (0, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100)  # regret in points
Y_TICKS_FINE = (0, 0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 4, 5, 7, 10, 15, 20, 30, 50, 70, 100)
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
                 "settings": plan.settings, "failure_penalty": plan.failure_penalty,
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
                                failure_penalty=plan["failure_penalty"])
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
        ref = result.references[b]
        if ref["single_accuracy"]:
            console.print(f"[bold]{b}[/]: the table has a single accuracy per architecture (val_acc = test_acc), "
                          f"so the 'test' metric is the number the search optimised. Table notes: {ref['notes']}",
                          highlight=False)
    for run in result.errors():
        console.print(f"[red]run failed[/]: {run['benchmark']} {run['strategy']} seed {run['seed']}: {run['error']}")
    for line in failure_warnings(result):
        console.print(f"[bold red]warning[/]: {line}", highlight=False, soft_wrap=True)  # one line to grep


# Okabe & Ito's palette, safe for the common colour-vision deficiencies, and a dash per strategy as
# well, so that eight curves stay apart in grey print too
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#F0E442")
DASHES = ("-", "--", "-.", ":")
CURVE_KINDS = (("regret", "test regret (points)"), ("val_regret", "validation regret (points)"))


def strategy_label(plan: BenchmarkPlan, strategy: str) -> str:
    """The strategy's name with the settings its runs used (harness defaults and ``--set``), so a
    re-run with other settings is told apart in a legend."""
    from .runner import tabular_settings

    settings = tabular_settings(strategy, plan.settings.get(strategy))
    if not settings:
        return strategy
    return f"{strategy} ({', '.join(f'{k}={v}' for k, v in sorted(settings.items()))})"


def curve_stats(result: BenchmarkResult, benchmark: str, strategy: str, grid: np.ndarray,
                kind: str = "regret") -> Optional[Dict[str, np.ndarray]]:
    """Mean and standard error over seeds, in points, of the test regret (``regret``) or the
    validation regret (``val_regret``: the table's best validation accuracy minus the best found);
    None when no run answered a query."""
    runs = result.ok_runs(benchmark, strategy)
    if not runs:
        return None
    if kind == "regret":
        m = 100 * curve_matrix(runs, grid, result.plan.unit)
    else:
        best = result.references[benchmark].get("max_val")
        if best is None:
            return None
        m = 100 * (best - curve_matrix(runs, grid, result.plan.unit, key="best_val"))
    if not np.isfinite(m).any():
        return None
    count = np.isfinite(m).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, np.nansum(m, axis=0) / np.maximum(count, 1), np.nan)
        dev = np.sqrt(np.nansum((m - mean) ** 2, axis=0) / np.maximum(count - 1, 1))
        se = np.where(count > 1, dev / np.sqrt(np.maximum(count, 1)), 0.0)
    return {"mean": mean, "se": se}


def curve_grid(result: BenchmarkResult) -> np.ndarray:
    plan = result.plan
    if plan.unit == QUERIES:
        return np.arange(1, int(plan.limit) + 1, dtype=float)
    return np.linspace(plan.limit / 200, plan.limit, 200)


def plot_curves(result: BenchmarkResult, path: Path,
                extra: Optional[Dict[str, Dict[str, Any]]] = None) -> None:
    """Mean regret vs budget, one panel per benchmark, one line per strategy, shaded ± std error.

    ``extra``: per benchmark, an additional dotted line ``{"x": [...], "y": [...], "label": ...}``
    (for example the analytic expectation of random search), y in fractions.
    """
    import matplotlib.pyplot as plt

    fig = curve_figure(result, extra)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def curve_figure(result: BenchmarkResult, extra: Optional[Dict[str, Dict[str, Any]]] = None):
    """The figure :func:`plot_curves` saves: per benchmark a test-regret panel and, below, a
    validation-regret panel (graph benchmarks are judged on validation); one colour-blind-safe
    colour and dash per strategy, labelled with its settings. A strategy with no answered query has
    no line, so it is not in the legend; its panel says how many of its queries failed instead (as
    for any strategy whose queries failed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullLocator

    plan = result.plan
    grid = curve_grid(result)
    n = len(plan.benchmarks)
    cols = min(n, 5)
    bench_rows = math.ceil(n / cols)
    rows = 2 * bench_rows  # the test regret panels, then the validation regret panels
    floors = {b: 100 * (result.references[b]["max_test"] - result.references[b]["oracle_test"])
              for b in plan.benchmarks}
    n_labels = len(plan.strategies) + bool(extra) + any(f > 0 for f in floors.values())
    labels_of = {s: strategy_label(plan, s) for s in plan.strategies}
    longest = max([len(label) for label in labels_of.values()] + [12])
    ncol = max(1, min(n_labels, (4 if cols <= 2 else 8), int(max(4.2 * cols, 6.5) * 14 // (longest + 6))))
    legend_h = 0.28 * math.ceil(n_labels / ncol) + 0.15  # inches below the panels
    height = 3.4 * rows + legend_h + 0.45
    fig, axes = plt.subplots(rows, cols, figsize=(max(4.2 * cols, 6.5), height), squeeze=False)
    failures = {(f["benchmark"], f["strategy"]): f for f in result.query_failures()}
    panels = [(k, b, kind) for kind, _ in CURVE_KINDS for k, b in enumerate(plan.benchmarks)]
    spots = [axes[(0 if kind == "regret" else bench_rows) + k // cols, k % cols] for k, b, kind in panels]
    for ax, (_, b, kind) in zip(spots, panels):
        ref = result.references[b]
        notes = []
        for i, s in enumerate(plan.strategies):
            failed = failures.get((b, s))
            if failed:
                notes.append(f"{s}: {failed['failed']} of {failed['queries']} queries failed"
                             + (", no line" if failed["all_failed"] else ""))
            stats = curve_stats(result, b, s, grid, kind)
            if stats is None:
                continue  # nothing answered: a legend entry would name a line that is not there
            mean, se = stats["mean"], stats["se"]
            colour = PALETTE[i % len(PALETTE)]
            ax.plot(grid, mean, label=labels_of[s], lw=1.5, color=colour, ls=DASHES[i % len(DASHES)])
            ax.fill_between(grid, mean - se, mean + se, color=colour, alpha=0.15, lw=0)
        if extra and b in extra and kind == "regret":
            e = extra[b]
            ax.plot(e["x"], 100 * np.asarray(e["y"]), ":", color="black", lw=1.2, label=e["label"])
        if floors[b] > 0 and kind == "regret":
            ax.axhline(floors[b], color="grey", ls="--", lw=0.8, label="oracle (best val row)")
        if notes:
            ax.text(0.98, 0.98, "\n".join(notes), transform=ax.transAxes, ha="right", va="top", fontsize=7,
                    color="firebrick", bbox={"facecolor": "white", "alpha": 0.8, "lw": 0})
        ax.set_xlim(grid[0], grid[-1])  # also when no line is drawn (log scale needs positive limits)
        ax.set_xscale("log")
        ax.set_yscale("symlog", linthresh=0.1, linscale=0.5)  # log above 0.1 points, so 0 stays visible
        top = ax.get_ylim()[1]
        lows = [np.nanmin(line.get_ydata()) for line in ax.get_lines() if np.isfinite(line.get_ydata()).any()]
        low = min(lows, default=0.0)
        bottom = 0 if low < 0.15 else 0.8 * low  # show 0 only where a curve comes close to it
        ax.set_ylim(bottom, top)
        ticks = [t for t in Y_TICKS if bottom <= t <= top]
        if len(ticks) < 3:
            ticks = [t for t in Y_TICKS_FINE if bottom <= t <= top]
        ax.yaxis.set_major_locator(FixedLocator(ticks))
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.set_title(f"{b}: {'test' if kind == 'regret' else 'validation'}"
                     + (" (val = test)" if ref["single_accuracy"] else ""), fontsize=10)
        ax.set_xlabel("queries" if plan.unit == QUERIES else "simulated seconds")
        ax.set_ylabel(dict(CURVE_KINDS)[kind])
        ax.grid(alpha=0.3, which="both")
    used = {id(ax) for ax in spots}
    for ax in axes.flat:
        if id(ax) not in used:
            ax.axis("off")
    legend: Dict[str, Any] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    handles, labels = list(legend.values()), list(legend)
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=ncol, frameon=False)
    fig.suptitle(f"regret of the best-by-validation architecture (top: test, bottom: validation): mean ± std "
                 f"error, {len(plan.seeds)} seeds", fontsize=11)
    fig.tight_layout(rect=(0, legend_h / height, 1, 1 - 0.35 / height))
    return fig


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

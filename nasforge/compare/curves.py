"""The anytime plot of a strategy comparison: mean regret against budget, per benchmark a test and a
validation panel, one line per strategy with its standard error shaded; and the curve statistics
behind it, which the HTML report draws too. In percentage points (regret 0.0056 -> 0.56).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np

from .runner import QUERIES, BenchmarkPlan, BenchmarkResult, curve_matrix

Y_TICKS = (0, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100)  # regret in points
Y_TICKS_FINE = (0, 0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 4, 5, 7, 10, 15, 20, 30, 50, 70, 100)

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

    plan = result.plan
    grid = curve_grid(result)
    floors = {b: 100 * (result.references[b]["max_test"] - result.references[b]["oracle_test"])
              for b in plan.benchmarks}
    labels_of = {s: strategy_label(plan, s) for s in plan.strategies}
    other_labels = bool(extra) + any(f > 0 for f in floors.values())  # the extra line, the oracle's floor
    cols, bench_rows, ncol, legend_h, height = _layout(plan, labels_of, other_labels)
    fig, axes = plt.subplots(2 * bench_rows, cols, figsize=(max(4.2 * cols, 6.5), height), squeeze=False)
    failures = {(f["benchmark"], f["strategy"]): f for f in result.query_failures()}
    panels = [(k, b, kind) for kind, _ in CURVE_KINDS for k, b in enumerate(plan.benchmarks)]
    spots = [axes[(0 if kind == "regret" else bench_rows) + k // cols, k % cols] for k, b, kind in panels]
    for ax, (_, b, kind) in zip(spots, panels):
        _draw_panel(ax, result, b, kind, grid, failures, labels_of, (extra or {}).get(b), floors[b])
        _finish_axes(ax, grid, b, kind, result)
    used = {id(ax) for ax in spots}
    for ax in axes.flat:
        if id(ax) not in used:
            ax.axis("off")
    _add_legend(fig, axes, ncol)
    fig.suptitle(f"regret of the best-by-validation architecture (top: test, bottom: validation): mean ± std "
                 f"error, {len(plan.seeds)} seeds", fontsize=11)
    fig.tight_layout(rect=(0, legend_h / height, 1, 1 - 0.35 / height))
    return fig


def _layout(plan: BenchmarkPlan, labels_of: Dict[str, str], other_labels: int):
    """(columns, rows of benchmarks, legend columns, legend height, figure height in inches): up to
    five benchmarks a row, test panels above validation panels, the legend below them."""
    n = len(plan.benchmarks)
    cols = min(n, 5)
    bench_rows = math.ceil(n / cols)
    rows = 2 * bench_rows  # the test regret panels, then the validation regret panels
    n_labels = len(plan.strategies) + other_labels
    longest = max([len(label) for label in labels_of.values()] + [12])
    ncol = max(1, min(n_labels, (4 if cols <= 2 else 8), int(max(4.2 * cols, 6.5) * 14 // (longest + 6))))
    legend_h = 0.28 * math.ceil(n_labels / ncol) + 0.15  # inches below the panels
    height = 3.4 * rows + legend_h + 0.45
    return cols, bench_rows, ncol, legend_h, height


def _draw_panel(ax, result: BenchmarkResult, b: str, kind: str, grid: np.ndarray, failures, labels_of,
                extra: Optional[Dict[str, Any]], floor: float) -> None:
    """One benchmark's curves of one kind, the extra line and the oracle's floor on test panels, and a
    note for each strategy whose queries failed."""
    notes = []
    for i, s in enumerate(result.plan.strategies):
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
    if extra and kind == "regret":
        ax.plot(extra["x"], 100 * np.asarray(extra["y"]), ":", color="black", lw=1.2, label=extra["label"])
    if floor > 0 and kind == "regret":
        ax.axhline(floor, color="grey", ls="--", lw=0.8, label="oracle (best val row)")
    if notes:
        ax.text(0.98, 0.98, "\n".join(notes), transform=ax.transAxes, ha="right", va="top", fontsize=7,
                color="firebrick", bbox={"facecolor": "white", "alpha": 0.8, "lw": 0})


def _finish_axes(ax, grid: np.ndarray, b: str, kind: str, result: BenchmarkResult) -> None:
    """Log budget axis; symlog regret axis from 0 (or just under the lowest curve) with readable
    ticks; titles and labels."""
    from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullLocator

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
                 + (" (val = test)" if result.references[b]["single_accuracy"] else ""), fontsize=10)
    ax.set_xlabel("queries" if result.plan.unit == QUERIES else "simulated seconds")
    ax.set_ylabel(dict(CURVE_KINDS)[kind])
    ax.grid(alpha=0.3, which="both")


def _add_legend(fig, axes, ncol: int) -> None:
    """One legend below the panels: each label once, from whichever panel drew it first."""
    legend: Dict[str, Any] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    handles, labels = list(legend.values()), list(legend)
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=ncol, frameon=False)

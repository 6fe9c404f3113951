"""``nasforge pareto``: the trade-off front of an experiment's completed trials.

Reads the store, keeps completed (and, unless asked otherwise, feasible) trials that report every
requested metric, prints the non-dominated ones as a table with the front's hypervolume, and can
draw every trial with the front highlighted. Directions come from the metric registry
(``nasforge.objectives.registry.METRICS``); ``--directions`` covers metrics it does not know.

Reference point of the hypervolume, unless ``--reference`` gives one: each metric's worst value
among the trials shown, pushed a further 10% of its range (so the front's extreme points still
count). The number is only comparable between experiments with the same reference point, so it
is always printed with it.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..config import ConfigError

OBJECTIVE = "objective"


def _split(text: str) -> List[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _directions(metrics: Sequence[str], given: Optional[str], objective_metric: str,
                objective_direction: str) -> List[str]:
    from ..objectives.registry import DIRECTION_ALIASES, METRICS

    if given:
        names = _split(given)
        if len(names) != len(metrics) or any(n not in DIRECTION_ALIASES for n in names):
            raise ConfigError(f"--directions {given!r}: give one of max/min per metric ({len(metrics)})")
        return [DIRECTION_ALIASES[n] for n in names]
    out = []
    for m in metrics:
        if m in (OBJECTIVE, objective_metric):
            out.append(objective_direction)
        elif m in METRICS:
            out.append(METRICS[m].direction)
        else:
            raise ConfigError(f"metric {m!r} has no known direction; add --directions (e.g. max,min) "
                              f"or use a registered metric: {', '.join(sorted(METRICS))}")
    return out


def _value(trial, name: str, objective_metric: str) -> Optional[float]:
    """A metric of a trial: from its metrics, or the stored objective for the objective's name."""
    raw: Any = trial.metrics.get(name)
    if raw is None and name in (OBJECTIVE, objective_metric):
        raw = trial.objective
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
        return None
    return float(raw)


def collect(trials, metrics: Sequence[str], objective_metric: str,
            include_infeasible: bool = False) -> Tuple[list, List[List[float]], Dict[str, int]]:
    """The trials usable for the front, their metric values, and why the others were left out."""
    kept, values, skipped = [], [], {"infeasible": 0, "missing a metric": 0}
    for t in trials:
        if not t.feasible and not include_infeasible:  # a hard limit broken, as the loop stored it
            skipped["infeasible"] += 1
            continue
        row = [_value(t, m, objective_metric) for m in metrics]
        if any(v is None for v in row):
            skipped["missing a metric"] += 1
            continue
        kept.append(t)
        values.append(row)
    return kept, values, skipped


def _fmt(x: float) -> str:
    if x != 0 and (abs(x) >= 1e5 or abs(x) < 1e-3):
        return f"{x:.4g}"
    return f"{x:.4f}".rstrip("0").rstrip(".") if not float(x).is_integer() else str(int(x))


def plot_front(path: Path, values, front, metrics: Sequence[str], directions: Sequence[str], title: str) -> None:
    """Every trial grey, the front in colour, on the first two metrics (a wide range gets a log axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    v = np.asarray(values, dtype=float)
    on = np.zeros(len(v), dtype=bool)
    on[front] = True
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    ax.scatter(v[~on, 0], v[~on, 1], s=14, c="0.65", label="trials")
    f = v[on][np.argsort(v[on, 0], kind="stable")]
    ax.scatter(f[:, 0], f[:, 1], s=30, c="tab:red", zorder=3, label="Pareto front")
    if len(metrics) == 2:
        # the edge of the dominated region: each point's y holds towards the worse x side
        ax.step(f[:, 0], f[:, 1], where="pre" if directions[0] == "maximize" else "post",
                c="tab:red", lw=1, alpha=0.6)
    for axis, col in (("x", 0), ("y", 1)):
        data = v[:, col]
        if (data > 0).all() and data.max() / data.min() > 100:
            getattr(ax, f"set_{axis}scale")("log")
    arrow = {"maximize": "higher is better", "minimize": "lower is better"}
    ax.set_xlabel(f"{metrics[0]} ({arrow[directions[0]]})")
    ax.set_ylabel(f"{metrics[1]} ({arrow[directions[1]]})")
    if len(metrics) > 2:
        title += f"\nfront over {', '.join(metrics)}; shown on the first two"
    ax.set_title(title, fontsize=10)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


PLOT_FORMATS = ("png", "pdf", "svg", "jpg", "jpeg")


def _plot_path(given: str) -> Path:
    """--plot as the file that will be written (``front`` is ``front.png``, as matplotlib would
    write it), checked before the front is computed."""
    from .common import check_output_file

    path = Path(given)
    if not path.suffix and not path.is_dir():
        path = path.with_name(path.name + ".png")
    elif path.suffix and path.suffix[1:].lower() not in PLOT_FORMATS:
        raise ConfigError(f"--plot {given}: give a file ending in .{', .'.join(PLOT_FORMATS)}")
    check_output_file(path, "--plot", "front.png")
    return path


def _load_space(config: Dict[str, Any]) -> None:
    """Import the searched space's module: a table registers the metrics it reports there (with
    their directions: nb201's ``*_acc_drop``), which the front needs."""
    from ..registry import SPACES

    name = config.get("space", {}).get("name")
    if name in SPACES:
        SPACES.get(name)


def cmd_pareto(args: argparse.Namespace) -> int:
    from ..stored_config import read_config
    from .common import _open_store, make_console

    plot = _plot_path(args.plot) if args.plot else None
    experiment, store = _open_store(args.experiment, readonly=True)
    with store:
        config = read_config(store) or {}
        _load_space(config)
        reward = config.get("reward", {})
        objective_metric = reward.get("metric", "val_acc")
        trials = store.trials(["COMPLETE"])
        if not trials:
            raise ConfigError(f"{experiment} has no completed trial to draw a front from (`nasforge trials` "
                              "shows what happened)")
        searched = _searched_objectives(config)
        metrics = _chosen_metrics(args.metrics, trials, objective_metric, experiment, searched[0] if searched else None)
        if searched and metrics == searched[0] and not args.directions:
            directions = searched[1]  # as the search ranked them, ":max" / ":min" included
        else:
            directions = _directions(metrics, args.directions, objective_metric, reward.get("direction", "maximize"))
        kept, values, skipped = collect(trials, metrics, objective_metric, args.include_infeasible)
        if not kept:
            raise ConfigError(f"no completed trial of {experiment} reports all of {', '.join(metrics)}")
        summary, front, order = _front_summary(experiment, kept, values, skipped, metrics, directions,
                                               args.reference)
        if plot is not None:
            plot_front(plot, values, front, metrics, directions,
                       f"{experiment.name}: {len(front)} of {len(kept)} trials on the front")
            summary["plot"] = str(plot)
        if args.json:
            print(json.dumps(summary, indent=1))
            return 0
        _print_front(make_console(), summary, kept, values, order, given_reference=bool(args.reference),
                     describe=_describer(config))
    return 0


def _describer(config):
    """The space's one-line summary of an architecture, as the other tables show it; the raw tokens
    where the stored space cannot be built here."""
    from ..spaces.base import space_of_section

    try:
        space = space_of_section(config["space"])
    except Exception:  # noqa: BLE001 - any reason: the tokens still say which trial it is
        return lambda tokens: str(list(tokens))
    return space.summary


def _searched_objectives(config) -> Optional[Tuple[List[str], List[str]]]:
    """(metrics, directions) a multi-objective search ranked by (``strategy.objectives``), or None."""
    objectives = (config.get("strategy") or {}).get("objectives")
    if not objectives:
        return None
    from ..strategies.evolution import parse_objectives

    try:
        names, directions = parse_objectives(objectives)
    except ValueError:
        return None
    return (names, directions) if len(names) >= 2 else None


#: The cost a front weighs the search's metric against by default: the first of these the trials
#: report (a tabular benchmark may store no parameter count, but what a child costs to train).
DEFAULT_COSTS = ("params", "flops", "latency_ms", "weight_bits", "simulated_seconds", "train_seconds")


def default_pair(objective_metric: str, distinct: Dict[str, int]) -> Tuple[List[str], bool]:
    """The metrics a plain `pareto` draws, from how many distinct values each metric takes: the
    objective and the first of DEFAULT_COSTS that varies (a constant weighs nothing), and True; else
    the objective and the first other metric that varies, to suggest, and False."""
    cost = next((m for m in DEFAULT_COSTS if distinct.get(m, 0) > 1), None)
    if cost is not None:
        return [objective_metric, cost], True
    other = next((m for m in sorted(distinct) if m != objective_metric and distinct[m] > 1), "METRIC")
    return [objective_metric, other], False


def pareto_command(space, metric: str) -> str:
    """`nasforge pareto`, with the metrics to name when the table has no cost that varies (as
    NAS-Bench-201's, whose plain front would be refused)."""
    import numpy as np

    table = space.all_metrics() if callable(getattr(space, "all_metrics", None)) else {}
    distinct = {k: len(np.unique(v)) for k, v in table.items()
                if k != "tokens" and np.issubdtype(np.asarray(v).dtype, np.number)}
    pair, plain = default_pair(metric, distinct)
    return "`nasforge pareto`" if plain or not table else f"`nasforge pareto --metrics {','.join(pair)}`"


def _chosen_metrics(given: Optional[str], trials, objective_metric: str, experiment: Path,
                    searched: Optional[List[str]] = None) -> List[str]:
    """--metrics (default: the objectives a multi-objective search ranked by, else the search's
    metric and the first cost of DEFAULT_COSTS that varies over its trials), refused unless the
    trials report each."""
    values: Dict[str, set] = {}
    for t in trials:
        for k, v in t.metrics.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                values.setdefault(k, set()).add(v)
    available = sorted(set(values) | {objective_metric})
    if not given and not searched:
        pair, found = default_pair(objective_metric, {k: len(v) for k, v in values.items()})
        if not found:
            raise ConfigError(f"the trials of {experiment} report no cost that varies ({', '.join(DEFAULT_COSTS)}) "
                              f"to weigh {objective_metric} against: name two metrics, e.g. --metrics "
                              f"{','.join(pair)}")
    metrics = _split(given) if given else list(searched or pair)
    if len(metrics) < 2 or len(set(metrics)) != len(metrics):
        raise ConfigError(f"--metrics {given!r}: give at least two different metrics")
    missing = [m for m in metrics if m not in available and m != OBJECTIVE]
    if missing:
        raise ConfigError(f"no completed trial of {experiment} reports {', '.join(missing)}; "
                          f"they report: {', '.join(available)}")
    return metrics


def _reference(given: Optional[str], values, directions: Sequence[str]):
    """--reference as numbers, one per metric, or the worst value + 10% of the range."""
    import numpy as np

    from ..objectives.pareto import reference_point

    if not given:
        return reference_point(values, directions)
    try:
        ref = np.array([float(x) for x in _split(given)])
    except ValueError:
        raise ConfigError(f"--reference {given!r}: expected comma-separated numbers") from None
    if len(ref) != len(directions):
        raise ConfigError(f"--reference has {len(ref)} values for {len(directions)} metrics")
    return ref


def _front_summary(experiment: Path, kept, values, skipped, metrics, directions, reference: Optional[str]):
    """The front, its hypervolume and its trials best-first on the first metric, as the JSON summary;
    also the front's indices into ``values`` and their printing order."""
    import numpy as np

    from ..objectives.pareto import hypervolume, pareto_front

    front = pareto_front(values, directions)
    ref = _reference(reference, values, directions)
    hv = hypervolume(np.asarray(values)[front], ref, directions)
    order = front[np.argsort([values[i][0] for i in front], kind="stable")]
    if directions[0] == "maximize":
        order = order[::-1]
    summary = {
        "experiment": str(experiment), "metrics": metrics, "directions": directions,
        "reference": [float(r) for r in ref], "hypervolume": hv,
        "trials": len(kept), "skipped": skipped,
        "front": [{"trial": kept[i].number, "tokens": kept[i].tokens,
                   **{m: values[i][k] for k, m in enumerate(metrics)}} for i in order],
    }
    return summary, front, order


def _print_front(console, summary: Dict[str, Any], kept, values, order, given_reference: bool,
                 describe=lambda tokens: str(list(tokens))) -> None:
    """The front as a table, what was left out, and the hypervolume with its reference point."""
    from rich.table import Table

    from .common import format_metric

    front_size = len(summary["front"])
    table = Table(title=f"{summary['experiment']}: Pareto front, {front_size} of {len(kept)} trials")
    table.add_column("trial", justify="right")
    for m, d in zip(summary["metrics"], summary["directions"]):
        table.add_column(f"{m} {'↑' if d == 'maximize' else '↓'}", justify="right")
    table.add_column("architecture")
    for i in order:
        cells = [format_metric(m, x) if m.endswith("acc") else _fmt(x) for m, x in zip(summary["metrics"], values[i])]
        table.add_row(str(kept[i].number), *cells, describe(kept[i].tokens))
    console.print(table)
    left_out = ", ".join(f"{n} {why}" for why, n in summary["skipped"].items() if n)
    if left_out:
        console.print(f"left out: {left_out}")
    reference = ", ".join(_fmt(r) for r in summary["reference"])
    console.print(f"hypervolume {summary['hypervolume']:.6g} (reference {reference}"
                  f"{'' if given_reference else ': worst value + 10% of the range'})")
    if "plot" in summary:
        console.print(f"plot: {summary['plot']}")


def add_pareto_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "pareto", help="the trade-off front of an experiment over several metrics",
        description="Non-dominated completed trials over the given metrics, their hypervolume, "
                    "and optionally a scatter plot with the front highlighted.")
    p.add_argument("--experiment", help="experiment directory (default: the latest search)")
    p.add_argument("--metrics", help="comma-separated metrics, e.g. val_acc,params "
                                     "(default: a multi-objective search's objectives, else the search's "
                                     "metric and the first of params, flops, latency_ms, weight_bits, "
                                     "simulated_seconds, train_seconds that varies over its trials)")
    p.add_argument("--directions", help="max/min per metric, for metrics the registry does not know")
    p.add_argument("--reference", help="hypervolume reference point, one value per metric "
                                       "(default: worst value + 10%% of the range)")
    p.add_argument("--plot", metavar="PNG", help="write a scatter plot of all trials, front highlighted")
    p.add_argument("--include-infeasible", action="store_true",
                   help="also use trials marked infeasible by a hard constraint")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_pareto)
    return p

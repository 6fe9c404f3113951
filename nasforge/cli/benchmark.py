"""``nasforge benchmark``: compare search strategies on tabular benchmarks in seconds.

Every (strategy, benchmark, seed) is a full search against a lookup table; the command prints
the test metric of the best-by-validation architecture and its regret at a few budgets, and
writes every run (CSV, JSON) and the anytime curves (PNG) to the output folder.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..config import ConfigError, parse_value

NOT_COMPARED_HELP = "enumerate and predictor-filter"  # runner.NOT_COMPARED, without importing torch for --help


def _names(values: Optional[List[str]]) -> List[str]:
    """``a,b c`` -> [a, b, c]: lists may be comma- or space-separated."""
    return [n.strip() for v in values or [] for n in v.split(",") if n.strip()]


def _numbers(text: str, kind: type, flag: str) -> List[Any]:
    try:
        return [kind(v) for v in _names([text])]
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: expected comma-separated {kind.__name__} values") from None


def parse_settings(items: Optional[List[str]]) -> Dict[str, Dict[str, Any]]:
    """``--set reinforce.learning_rate=0.005`` -> {"reinforce": {"learning_rate": 0.005}}
    (``strategy.KEY``, for every strategy run, stays under "strategy": see :func:`plan_from_args`)."""
    settings: Dict[str, Dict[str, Any]] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        strategy, dot, name = key.partition(".")
        if not sep or not dot or not strategy or not name:
            raise ConfigError(f"--set {item!r}: use STRATEGY.KEY=VALUE, for example reinforce.learning_rate=0.005")
        settings.setdefault(strategy.strip(), {})[name.strip()] = parse_value(value)
    return settings


def plan_from_args(args: argparse.Namespace):
    from ..compare.runner import BenchmarkPlan, compared_strategies

    if args.seed_list is not None:
        seeds = _numbers(args.seed_list, int, "--seed-list")
    else:
        if args.seeds < 1:
            raise ConfigError(f"--seeds must be at least 1, got {args.seeds}")
        seeds = list(range(args.seeds))
    budget = None if args.budget_seconds is not None else (args.budget if args.budget is not None else 300)
    checkpoints = _numbers(args.checkpoints, float, "--checkpoints") if args.checkpoints else None
    limit = budget if budget is not None else args.budget_seconds
    beyond = [c for c in checkpoints or [] if isinstance(limit, (int, float)) and c > limit]
    if beyond:  # refused, not dropped: a checkpoint asked for and missing from the table reads as a result lost
        unit = "queries" if budget is not None else "simulated seconds"
        raise ConfigError(f"--checkpoints {', '.join(f'{c:g}' for c in beyond)} beyond the budget of {limit:g} {unit}; "
                          "give checkpoints within it (the full budget is always reported), or a larger budget")
    strategies = _names(args.strategies) or compared_strategies()
    settings = parse_settings(args.set)
    space = settings.pop("space", None)
    if space is not None and "space" not in strategies:  # as on `search --set space.table=...`
        raise ConfigError(f"--set {', '.join('space.' + k for k in space)}: benchmark runs its tables as they are "
                          "(--set takes STRATEGY.KEY=VALUE); give your own table with "
                          f"--table PATH{' (not --set space.table)' if 'table' in space else ''}")
    shared = settings.pop("strategy", None)  # --set strategy.KEY=VALUE: as on `search`, for every strategy run
    if shared:
        from ..compare.runner import resolve_strategies

        strategies = resolve_strategies(strategies)
        for name in strategies:
            settings[name] = {**shared, **settings.get(name, {})}
    default = ["own-table"] if args.table is not None else ["nb201-cifar10"]  # --table alone: that table
    if args.table is not None and not Path(args.table).expanduser().is_file():
        raise ConfigError(f"--table {args.table}: no such file" if not Path(args.table).expanduser().exists()
                          else f"--table {args.table} is not a file; give a table made by `nasforge tabulate`")
    plan = BenchmarkPlan(
        strategies=strategies,
        benchmarks=_names(args.benchmarks) or default,
        seeds=seeds, budget=budget, budget_seconds=args.budget_seconds,
        checkpoints=checkpoints,
        settings=settings, failure_penalty=args.failure_penalty, table=args.table,
    )
    plan.check()
    return plan


def check_out(out: Path) -> None:
    """The output folder must be a folder that exists or can be made, said before any run."""
    from .common import check_writable_folder

    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; benchmark writes a folder of results (runs.csv, runs.json, "
                          "anytime.png): choose a folder name")
    if any((out / name).exists() for name in ("runs.csv", "runs.json")):
        raise ConfigError(f"{out} already holds benchmark results; choose another --out")
    check_writable_folder(out, out)


def cmd_benchmark(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..compare import report
    from ..compare.runner import run_benchmark
    from .common import make_console

    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    plan = plan_from_args(args)
    out = Path(args.out) if args.out else Path("runs") / f"benchmark-{time.strftime('%Y%m%d-%H%M%S')}"
    check_out(out)
    console = make_console()
    total = len(plan.strategies) * len(plan.benchmarks) * len(plan.seeds)
    console.print(f"[bold]nasforge benchmark[/] -> {out}: {len(plan.strategies)} strategies "
                  f"({', '.join(plan.strategies)}) x {len(plan.benchmarks)} benchmarks x {len(plan.seeds)} seeds, "
                  f"budget {plan.limit:g} {plan.unit}")
    progress = Progress(TextColumn("[bold]runs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console, transient=True)

    def finished(run: Dict[str, Any]) -> None:
        progress.advance(task)
        if run["error"]:
            progress.console.print(f"[red]failed[/] {run['benchmark']} {run['strategy']} seed {run['seed']}: "
                                   f"{run['error']}")

    with progress:
        task = progress.add_task("runs", total=total)
        result = run_benchmark(plan, workers=args.workers, on_run=finished)
    command = "nasforge " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["benchmark"] else None
    written = report.save(result, out, args.format, command=command)
    report.print_report(result, console)
    console.print(f"{len(result.runs)} runs in {result.wall_s:.1f}s on {result.workers} worker(s); wrote "
                  + ", ".join(str(p) for p in written.values()))
    # a strategy none of whose queries was answered found nothing: as much a failure as a run that raised
    return 1 if result.errors() or result.all_failed() else 0


def add_benchmark_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``benchmark`` to the ``nasforge`` command's subparsers."""
    from ..registry import STRATEGIES

    p = subparsers.add_parser(
        "benchmark", help="compare search strategies on tabular benchmarks",
        description="Run strategies x tabular benchmarks x seeds (table lookups, no training) and report "
                    "the test metric of the best-by-validation architecture and its regret against the best "
                    "test metric in the table, at a few budgets. Reward: val_acc, identity transform.")
    p.add_argument("--strategies", nargs="+", metavar="NAME",
                   help=f"strategy names, comma- or space-separated: {', '.join(STRATEGIES.names())}, or all "
                        f"(default: every strategy except {NOT_COMPARED_HELP})")
    p.add_argument("--benchmarks", nargs="+", metavar="NAME",
                   help="tabular spaces (see `nasforge search --help`): nb201-cifar10 (default), "
                        "nbgraph-<dataset>, nbgraph-all, mnist1d-chain, own-table (the --table file), or all "
                        "(the shipped tables, and own-table when --table is given)")
    p.add_argument("--table", metavar="PATH",
                   help="your own table (made by `nasforge tabulate`), run as the own-table benchmark; "
                        "alone, it is the only benchmark run")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 per strategy and benchmark (10)")
    seeds.add_argument("--seed-list", metavar="S1,S2,...", help="explicit seeds instead of --seeds")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--budget", type=int, help="queries per run (default 300)")
    budget.add_argument("--budget-seconds", type=float,
                        help="simulated seconds per run instead (each query costs the table's seconds per query)")
    p.add_argument("--checkpoints", metavar="B1,B2,...",
                   help="budgets reported in the table and the CSV, in the budget's unit (50,100,300; "
                        "the full budget is always added)")
    p.add_argument("--workers", type=int, help="processes (default: the number of CPUs; 1 runs in this process)")
    p.add_argument("--out", help="output folder (default runs/benchmark-<time>)")
    p.add_argument("--set", action="append", metavar="STRATEGY.KEY=VALUE",
                   help="a setting of one strategy run, named before the dot: --set reinforce.learning_rate=0.005; "
                        "or, as on `search`, strategy.KEY=VALUE for every strategy run (each must take KEY; "
                        "a strategy's own setting wins). VALUE is read as JSON, else as a string (repeatable)")
    p.add_argument("--format", choices=("csv", "json", "both"), default="both",
                   help="run files to write: runs.csv + summary.csv, runs.json, or both (default); "
                        "anytime.png always")
    p.add_argument("--failure-penalty", type=float, default=0.0,
                   help="reward of a query the table cannot answer (0); it still counts as a query")
    p.set_defaults(func=cmd_benchmark)
    return p

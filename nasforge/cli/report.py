"""``nasforge report``: one self-contained HTML file with the dashboard's views of an experiment
(plotly and the data inline), which opens offline, without a server, from an e-mail attachment."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import List, Optional

from ..config import ConfigError


def experiments_of(args_experiments: Optional[List[str]]) -> List[Path]:
    """The ``--experiment`` folders given, or the latest search's."""
    from .common import _resolve_experiment

    return [Path(e) for e in args_experiments] if args_experiments else [_resolve_experiment(None)]


def cmd_report(args: argparse.Namespace) -> int:
    from .common import make_console
    from ..report.html import plotly_js_path, report_page
    from ..report.background import InBackground
    from ..report.views import NothingToShow, experiment_data

    console = make_console()
    plotly_js_path()  # a missing plotly is said before any work
    if args.benchmark and not args.experiment:  # a comparison alone, or with the latest search if there is one
        try:
            experiments = experiments_of(None)
        except ConfigError:
            experiments = []
    else:
        experiments = experiments_of(args.experiment)
    for experiment in experiments:
        if not experiment.is_dir():
            raise ConfigError(f"no experiment folder {experiment}" if not experiment.exists() else
                              f"--experiment {experiment} is a file, not an experiment folder")
    out = Path(args.out) if args.out else (experiments[0] if experiments else Path(args.benchmark)) / "report.html"
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; give a file name such as {out / 'report.html'}")
    if not out.parent.exists():
        raise ConfigError(f"cannot write {out}: the folder {out.parent} does not exist")
    start = time.perf_counter()
    data = []
    background = InBackground() if experiments else None  # importance and policy beside this process
    try:
        for experiment in experiments:
            try:
                one = experiment_data(experiment, background=background)
            except NothingToShow as exc:
                raise ConfigError(f"nothing to report: {exc}") from None
            if not one["trials"]:
                raise ConfigError(f"nothing to report: experiment {experiment} has no trials yet")
            data.append(one)
    finally:
        if background is not None:
            background.close()
    benchmark = None
    if args.benchmark:
        from ..report.benchmark_view import benchmark_data

        benchmark = benchmark_data(Path(args.benchmark))
    names = [d["name"] for d in data] + ([f"benchmark {Path(args.benchmark).name}"] if benchmark else [])
    html = report_page("nasforge report: " + ", ".join(names), data, benchmark)
    try:
        out.write_text(html, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {out}: {exc.strerror or exc}") from None
    trials = sum(len(d["trials"]) for d in data)
    running = sum(d["counts"]["RUNNING"] for d in data)
    note = f"; {running} trial(s) were still running, the report shows the search as it was" if running else ""
    console.print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, {trials} trials"
                  f"{', a benchmark comparison' if benchmark else ''}, "
                  f"{time.perf_counter() - start:.1f} s){note}")
    return 0


def add_report_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "report", help="a self-contained HTML report of an experiment (works offline, no server)",
        description="Write one HTML file with the views of `nasforge dashboard`: the trials table, the objective "
                    "over trials, the workers' time line, Pareto fronts with hypervolume, every trial's "
                    "architecture drawing, the controller's policy (or the population), decision importance, "
                    "and the retrain and export results. Plotly and the data are inside the file.")
    p.add_argument("--experiment", action="append", metavar="DIR",
                   help="experiment directory; repeat to put several side by side (default: the latest search)")
    p.add_argument("--out", help="the HTML file to write (default: <experiment>/report.html)")
    p.add_argument("--benchmark", metavar="DIR",
                   help="also show a `nasforge benchmark` comparison: its output folder (runs.json)")
    p.set_defaults(func=cmd_report)
    return p

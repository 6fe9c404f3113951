"""``nasforge dashboard``: a live web view of one or more experiments on this machine.

A reader only: each store is opened read-only and never locked, so a running search neither waits
for it nor notices it; new trials appear in the open page without reloading it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def cmd_dashboard(args: argparse.Namespace) -> int:
    from .common import _resolve_experiment, make_console
    from ..config import ConfigError
    from ..report.dashboard import serve

    console = make_console()
    experiments = [Path(e) for e in args.experiment] if args.experiment else [_resolve_experiment(None)]
    for e in experiments:
        if e.exists() and not e.is_dir():
            raise ConfigError(f"--experiment {e} is a file, not an experiment folder")
        if not e.exists():
            console.print(f"[yellow]{e} does not exist yet; it is shown once a search starts there[/]")
    if args.interval <= 0:
        raise ConfigError(f"--interval must be positive, got {args.interval}")
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be 0 to 65535 (0: any free port), got {args.port}")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        console.print(f"[yellow]listening on {args.host}: anyone who can reach this machine can read these "
                      "experiments[/]")

    def announce(url: str) -> None:
        console.print(f"nasforge dashboard: {url}  ({len(experiments)} experiment(s): "
                      f"{', '.join(map(str, experiments))}; Ctrl+C to stop)")
        sys.stdout.flush()

    try:
        serve(experiments, args.host, args.port, args.interval, args.heavy_every, announce)
    except KeyboardInterrupt:
        console.print("dashboard stopped")
    return 0


def add_dashboard_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "dashboard", help="a live web view of experiments (reads only; new trials appear as they finish)",
        description="Serve the experiment views on this machine: trials, objective over trials, workers, Pareto "
                    "fronts, architecture drawings, the controller's policy or the population, decision "
                    "importance, retrain and export. The page follows a running search without reloading; the "
                    "stores are only read (no lock), so the search is not slowed by waiting.")
    p.add_argument("--experiment", action="append", metavar="DIR",
                   help="experiment directory; repeat for several side by side (default: the latest search). "
                        "A folder where no search has started yet is shown once one does")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free port)")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between the page's checks (default 2)")
    p.add_argument("--heavy-every", type=float, default=10.0,
                   help="redo the policy and importance views at most this often, in seconds (default 10)")
    p.set_defaults(func=cmd_dashboard)
    return p

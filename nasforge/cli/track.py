"""``nasforge track --log-to mlflow|tensorboard``: an experiment's trials copied to MLflow or
TensorBoard, once or (``--follow``) while its search runs. A reader of the store like the
dashboard: the search never waits for the tracking side."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _count(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def cmd_track(args: argparse.Namespace) -> int:
    from .common import _resolve_experiment, make_console
    from ..config import ConfigError
    from ..report.tracking import check_destination, make_logger, require

    console = make_console()
    experiment = Path(args.experiment) if args.experiment else _resolve_experiment(None)
    if args.interval <= 0:
        raise ConfigError(f"--interval must be positive, got {args.interval}")
    require(args.log_to)
    check_destination(args.log_to, experiment, args.to, "--to")  # before anything is logged, or waited for
    if experiment.exists() and not experiment.is_dir():
        raise ConfigError(f"--experiment {experiment} is a file, not an experiment folder")
    try:
        config = _settings(console, experiment, args)
    except KeyboardInterrupt:
        console.print("stopped waiting")
        return 0
    try:
        logger = make_logger(args.log_to, experiment, config, args.to)
    except Exception as exc:  # noqa: BLE001 - e.g. a tracking server that does not answer: one line, exit 2
        raise ValueError(f"cannot log to {args.log_to} at {args.to or 'its default place'}: "
                         f"{type(exc).__name__}: {exc}") from None
    return _mirror_until_done(console, logger, experiment, args)


def _settings(console, experiment: Path, args: argparse.Namespace):
    """The search's settings from its store; with --follow, a search about to start (no folder, or no
    settings written yet) is waited for, as the dashboard does."""
    from ..config import ConfigError
    from ..report.views import NothingToShow, open_readonly
    from ..stored_config import read_config

    waiting = False
    while True:
        config = None
        if experiment.is_dir():
            try:
                with open_readonly(experiment) as store:  # bad stores are refused before anything is logged
                    config = read_config(store)
            except NothingToShow:
                if not args.follow:
                    raise
        elif not args.follow:
            raise ConfigError(f"no experiment folder {experiment}")
        if config is not None:
            return config
        if not args.follow:
            raise NothingToShow(f"{experiment}: the search has not written its settings yet; try again in a moment")
        if not waiting:
            console.print(f"waiting for a search to start in {experiment} (Ctrl+C to stop)")
            waiting = True
        time.sleep(args.interval)


def _mirror_until_done(console, logger, experiment: Path, args: argparse.Namespace) -> int:
    """Log what is new, once or (--follow) until the search is done or no search writes the
    experiment any more (stopped, or killed: its lock went with it). MLflow's search run ends
    FINISHED, KILLED (stopped before its budget) or FAILED (logging failed), else stays RUNNING."""
    from ..report.tracking import mirror

    where = getattr(logger, "uri", None) or getattr(logger, "logdir", "")
    end, before = None, len(logger.logged)
    try:
        while True:
            try:
                result = mirror(logger, experiment)
            except Exception as exc:  # noqa: BLE001 - a tracker that fails mid-way: said in one line
                end = "FAILED"
                console.print(f"{args.log_to}: {_count(len(logger.logged) - before, 'new trial')} logged before "
                              f"logging failed ({where})")
                print(f"nasforge track: error: logging to {args.log_to} failed: {type(exc).__name__}: {exc}",
                      file=sys.stderr)
                return 1
            if result["new"] or not args.follow:
                console.print(f"{args.log_to}: {_count(result['new'], 'new trial')} logged, "
                              f"{result['trials']} in the experiment ({where})")
            end = "FINISHED" if result["done"] else "KILLED" if result["writer"] is None else None
            if not args.follow or end is not None:
                break
            time.sleep(args.interval)
        if args.follow and end == "KILLED":
            left = result["running"]
            console.print(f"no search is writing {experiment} any more and it stopped before its budget: "
                          f"{_count(result['trials'] - left, 'finished trial')} logged"
                          + (f" ({_count(left, 'trial')} it left unfinished cannot be)" if left else "")
                          + f"; a search resumed with `nasforge search --resume --experiment {experiment}` "
                            "can be followed again")
    except KeyboardInterrupt:
        console.print("stopped following")
    finally:
        try:
            logger.close(end)
        except Exception:  # noqa: BLE001 - after a failure the store may refuse this too; said above
            if end != "FAILED":
                raise
    return 0


def add_track_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "track", help="copy an experiment's trials to MLflow or TensorBoard (--follow: while it runs)",
        description="Log every finished trial of an experiment to MLflow (a run for the search, a nested run per "
                    "trial: decisions as parameters, metrics, state and architecture as tags) or TensorBoard "
                    "(scalars per trial number, the architecture as text). The store stays the source of truth; "
                    "trials already logged are skipped, so running it again adds only what is new.")
    p.add_argument("--log-to", required=True, choices=("mlflow", "tensorboard"), help="where to log")
    p.add_argument("--experiment", help="experiment directory (default: the latest search)")
    p.add_argument("--to", metavar="URI_OR_DIR",
                   help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///<experiment>/mlflow.db) "
                        "or TensorBoard log folder (default: <experiment>/tensorboard)")
    p.add_argument("--follow", action="store_true", help="keep logging new trials until the search has finished")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between checks with --follow (default 5)")
    p.set_defaults(func=cmd_track)
    return p


def add_log_to_flags(parser) -> None:
    """``--log-to`` / ``--log-uri`` on ``nasforge search``: the same targets as ``track``, logged while
    the search runs."""
    g = parser.add_argument_group("tracking")
    g.add_argument("--log-to", choices=("mlflow", "tensorboard"),
                   help="also log each trial as it finishes to MLflow or TensorBoard (optional extras: "
                        "pip install 'nasforge[mlflow]' or 'nasforge[tensorboard]')")
    g.add_argument("--log-uri", metavar="URI_OR_DIR",
                   help="with --log-to: MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else "
                        "sqlite:///<experiment>/mlflow.db) or TensorBoard log folder (default: <experiment>/tensorboard)")


def search_tracker(args: argparse.Namespace, experiment: Path):
    """The search's tracking hook for ``--log-to`` (None without it); a missing extra is refused
    here, before the search starts."""
    from ..config import ConfigError

    if args.log_uri and not args.log_to:
        raise ConfigError("--log-uri needs --log-to mlflow or --log-to tensorboard")
    if not args.log_to:
        return None
    from ..report.tracking import FollowSearch

    return FollowSearch(args.log_to, experiment, args.log_uri, "--log-uri")  # the destination checked here


def with_tracker(update, tracker):
    """One ``on_progress`` that shows the progress, then logs the trial."""
    if tracker is None:
        return update

    def both(progress) -> None:
        update(progress)
        tracker(progress)

    return both


def finish_tracker(console, tracker, finished: bool) -> None:
    """Close the tracker (MLflow: the search's run marked finished when it was) and say what it did."""
    if tracker is None:
        return
    tracker.close(finished)
    console.print(f"{tracker.target}: {_count(tracker.logged, 'trial')} logged ({tracker.where})"
                  + (f"; logging stopped: {tracker.error}" if tracker.error else ""))

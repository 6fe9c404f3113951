"""``nasforge track --log-to mlflow|tensorboard``: an experiment's trials copied to MLflow or
TensorBoard, once or (``--follow``) while its search runs. A reader of the store like the
dashboard: the search never waits for the tracking side."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def cmd_track(args: argparse.Namespace) -> int:
    from .common import _resolve_experiment, make_console
    from ..config import ConfigError
    from ..report.tracking import make_logger, mirror

    console = make_console()
    experiment = Path(args.experiment) if args.experiment else _resolve_experiment(None)
    if not experiment.is_dir():
        raise ConfigError(f"no experiment folder {experiment}")
    if args.interval <= 0:
        raise ConfigError(f"--interval must be positive, got {args.interval}")
    from ..stored_config import read_config
    from ..report.views import NothingToShow, open_readonly

    with open_readonly(experiment) as store:  # bad stores are refused before anything is logged
        config = read_config(store)
    if config is None:
        raise NothingToShow(f"{experiment}: the search has not written its settings yet; try again in a moment")
    logger = make_logger(args.log_to, experiment, config, args.to)
    where = getattr(logger, "uri", None) or getattr(logger, "logdir", "")
    done = False
    try:
        while True:
            result = mirror(logger, experiment)
            if result["new"] or not args.follow:
                console.print(f"{args.log_to}: {result['new']} new trial(s) logged, {result['trials']} in the "
                              f"experiment ({where})")
            done = result["done"]
            if not args.follow or done:
                break
            time.sleep(args.interval)
    except KeyboardInterrupt:
        console.print("stopped following")
    finally:
        logger.close(finished=done)
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

    return FollowSearch(args.log_to, experiment, args.log_uri)


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
    where = getattr(tracker.logger, "uri", None) or getattr(tracker.logger, "logdir", "")
    console.print(f"{tracker.target}: {tracker.logged} trial(s) logged ({where})"
                  + (f"; logging stopped: {tracker.error}" if tracker.error else ""))

"""``nasforge trials`` and ``nasforge best``: read a search's store (never write it)."""

from __future__ import annotations

import argparse
import json
from typing import Optional

from ..config import ConfigError
from .common import _open_store, _pct, _space_of, _trial_table, format_metric, make_console, reward_labels


def cmd_trials(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be at least 1 (the last N trials), got {args.limit}")
    experiment, store = _open_store(args.experiment, readonly=True)
    with store:
        config, space = _space_of(store)
        trials = store.trials([args.state] if args.state else None)
        if args.limit:
            trials = trials[-args.limit:]
        if args.json:
            print(json.dumps([t.__dict__ for t in trials], indent=1))
            return 0
        make_console().print(_trial_table(f"{experiment}: {len(trials)} trials", trials, space, show_error=True,
                                          reward=config["reward"]))
    return 0


def no_best(store) -> ConfigError:
    """Why a search has no best trial: nothing completed yet, or every completed trial broke a
    hard limit (then the way on is a looser limit, not waiting)."""
    done = store.trials(["COMPLETE"])
    if not done:
        return ConfigError("no completed trial in this experiment yet")
    return ConfigError(f"none of the {len(done)} completed trials meets the search's hard constraints; "
                       "`nasforge trials` shows each one's metrics (search again with a looser limit)")


def _pick_trial(store, trial_number: Optional[int], direction: str, final: bool = True):
    """Trial ``trial_number``, or by default the search's best (``final``: the winner of the
    final selection, when `nasforge retrain` made one)."""
    if trial_number is None:
        from ..final_selection import final_choice

        best = [final_choice(store, direction)] if final else store.best(1, direction)
        if not best or best[0] is None:
            raise no_best(store)
        return best[0]
    for t in store.trials(["COMPLETE"]):
        if t.number == trial_number:
            return t
    raise ConfigError(f"no completed trial number {trial_number}")


def _chain_cnn_summary(space) -> bool:
    """Whether the table's architectures are chain-cnn shorthand (own tables wrap a chain-cnn space)."""
    from ..spaces.chain_cnn import ChainCNNSpace

    return isinstance(getattr(space, "base", space), ChainCNNSpace)


def cmd_best(args: argparse.Namespace) -> int:
    from ..final_selection import final_choice

    if args.top < 1:
        raise ConfigError(f"--top must be at least 1, got {args.top}")
    experiment, store = _open_store(args.experiment, readonly=True)
    with store:
        config, space = _space_of(store)
        direction = config["reward"].get("direction", "maximize")
        best = store.best(args.top, direction)
        if not best:
            raise no_best(store)
        chosen = final_choice(store, direction)
        if args.json:
            print(json.dumps([{"trial": t.number, "tokens": t.tokens, "objective": t.objective,
                               "architecture": space.encode(t.tokens), "metrics": t.metrics,
                               "final_choice": t.id == chosen.id} for t in best], indent=1))
            return 0
        console = make_console()
        metric, _ = reward_labels(config["reward"])
        console.print(_trial_table(f"{experiment}: best {len(best)}", best, space, reward=config["reward"]))
        if _chain_cnn_summary(space):
            console.print(CHAIN_CNN_LEGEND, style="dim")
        top = best[0]
        console.print(f"best: trial {top.number}, {metric} {format_metric(metric, top.objective)}")
        if chosen.id != top.id:
            console.print(f"final selection (`nasforge retrain`, the search's top trained with the final recipe): "
                          f"trial {chosen.number}, search {metric} {format_metric(metric, chosen.objective)}")
            top = chosen
        console.print(f"tokens: {top.tokens}")
        console.print("layers:\n  " + "\n  ".join(space.describe(top.tokens)))
        for ev in store.evaluations("retrain"):
            if ev["trial_id"] == top.id:
                m = ev["metrics"]
                console.print(f"retrained (seed {m['seed']}, {m['epochs']} epochs): test acc {_pct(m['test_acc'])}%, "
                              f"AP {_pct(m['test_average_precision'])}")
    return 0


# the states a stored trial can be in (store.STATES; named here so that --help does not import the
# store; tests/test_cli_help.py checks that the two agree)
TRIAL_STATES = ("WAITING", "RUNNING", "COMPLETE", "FAILED", "PRUNED")
# how to read the one-line architectures of chain-cnn (spaces/chain_cnn.py summary()) in the tables
CHAIN_CNN_LEGEND = (
    "legend: C7x24/2 = conv, kernel 7 (2-D: C3x5x24), 24 filters, stride 2 (/1 not shown); M3, A3 = max, avg "
    "pool, kernel 3 (2-D: M3x5); I = identity; <0+1 = reads layers 0 and 1, <in = reads the input (no < : the layer "
    "before); | avg or flatten = readout; fc64 = hidden dense layer of 64 units, then the classifier; @w4a8 = "
    "4-bit weights, 8-bit activations (mixed precision; after the head: all its layers)")


def _state(text: str) -> str:
    """``--state failed`` as well as ``FAILED``."""
    state = text.upper()
    if state not in TRIAL_STATES:
        raise argparse.ArgumentTypeError(f"{text!r} is not a trial state; choose one of {', '.join(TRIAL_STATES)}")
    return state


def add_trials_parser(subparsers) -> None:
    """Add ``trials``."""
    t = subparsers.add_parser(
        "trials", help="list the stored trials",
        description="List an experiment's trials in the order they started: number (.attempt for a retry), "
                    "state, the search's metric, reward, size, time, architecture and, for failed trials, the "
                    "error. Reads the store, never writes it, so it can run while the search does.",
        epilog=CHAIN_CNN_LEGEND)
    t.add_argument("--experiment", help="experiment directory (default: the latest search)")
    t.add_argument("--state", type=_state, metavar="STATE",
                   help=f"only trials in this state, in any case: {', '.join(TRIAL_STATES)}")
    t.add_argument("--limit", type=int, help="show only the last N")
    t.add_argument("--json", action="store_true", help="machine-readable output")
    t.set_defaults(func=cmd_trials)


def add_best_parser(subparsers) -> None:
    """Add ``best``."""
    b = subparsers.add_parser(
        "best", help="show the best architecture (tokens and layers)",
        description="The experiment's best completed trials by the search's objective, then the tokens and "
                    "layers of the best one (or of the final selection, once `nasforge retrain` made one) and "
                    "its retrained test accuracy, if any.",
        epilog=CHAIN_CNN_LEGEND)
    b.add_argument("--experiment", help="experiment directory (default: the latest search)")
    b.add_argument("--top", type=int, default=5, help="how many to list (5)")
    b.add_argument("--json", action="store_true", help="machine-readable output")
    b.set_defaults(func=cmd_best)

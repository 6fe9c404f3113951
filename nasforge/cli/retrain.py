"""``nasforge retrain``: the final selection among the search's top trials, then the chosen one
trained from scratch on train+validation and tested."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from rich.console import Console
from rich.table import Table

from ..config import RERANK_CANDIDATES, RETRAIN_EPOCHS, RETRAIN_LABEL_SMOOTHING, ConfigError
from .common import _human, _open_store, _pct, _space_of, make_console
from .inspect import _pick_trial


def load_search_data(config: Dict[str, Any], dataset: Optional[str] = None):
    """The data the search ran on: the stored dataset, or ``dataset`` (the file moved), checked
    by the fingerprint stored with the search either way."""
    from ..data.datasets import load_dataset
    from ..stored_config import dataset_reference, stored_data_missing

    name = dataset_reference(dataset) if dataset else config["dataset"]
    if not dataset and stored_data_missing(name):
        raise ConfigError(f"the data file this experiment searched on, {name}, is not there; if it moved, "
                          "pass --dataset NEW_PATH (it is checked against the stored fingerprint)")
    data = load_dataset(name)
    if config.get("data_fingerprint") and data.fingerprint() != config["data_fingerprint"]:
        raise ConfigError(f"dataset {name} is not the data this experiment searched on (its fingerprint is "
                          f"{data.fingerprint()}, the search's {config['data_fingerprint']})")
    return data


def _final_setup(store, recipe_overrides: Optional[Dict[str, Any]] = None, dataset: Optional[str] = None):
    """What the final training needs: (config, space, data, recipe); ``recipe_overrides`` are
    :func:`retrain_recipe`'s keyword arguments (None keeps its default); ``dataset`` points to
    data that moved."""
    from ..build import no_network, unsavable_network
    from ..estimators.train import retrain_recipe

    config, space = _space_of(store)
    refusal = no_network(config["space"]["name"], space)
    if refusal:
        raise ConfigError(refusal)
    data = load_search_data(config, dataset)
    best = store.best(1, config["reward"].get("direction", "maximize"))
    if best:  # a network the final training could not save is refused before any training
        refusal = unsavable_network(config["space"]["name"], space, best[0].tokens, data.input_shape,
                                    data.num_classes)
        if refusal:
            raise ConfigError(refusal)
    try:
        recipe = retrain_recipe(config["training"], **(recipe_overrides or {}))
    except ValueError as exc:
        raise ConfigError(f"retrain: {exc}") from None
    return config, space, data, recipe


def _retrain(experiment: Path, store, trial, seeds: Sequence[int], console: Console, device: Optional[str],
             setup=None):
    """Retrain ``trial`` once per seed on train+validation and test it; ``setup`` is
    :func:`_final_setup`'s result (default: the stored search's, with the default recipe)."""
    import numpy as np

    from ..estimators.train import retrain_and_test
    from ..report.model_files import save_model

    config, space, data, recipe = setup or _final_setup(store)
    device = device or config["training"].get("device", "auto")
    results = []
    first_dir = None
    for seed in seeds:
        console.print(f"retraining trial {trial.number} on train+validation ({len(data.y_train)} samples), "
                      f"{recipe.epochs} epochs, shift {recipe.shift}, label smoothing {recipe.label_smoothing}, "
                      f"mixup {recipe.mixup}, weight average {recipe.ema}, seed {seed} ...")
        model, metrics = retrain_and_test(space, tuple(trial.tokens), data, recipe, seed, device)
        out = experiment / "retrain" / f"trial-{trial.number}-seed-{seed}"
        save_model(model, out, {"trial": trial.number, "tokens": trial.tokens, **metrics},
                   preprocessing=data.preprocessing)  # what an export must replay on raw inputs
        metrics["model_dir"] = str(out.resolve())  # readable from any folder
        store.add_evaluation(trial.id, "retrain", metrics)
        results.append(metrics)
        first_dir = first_dir or out
        console.print(f"  test accuracy {_pct(metrics['test_acc'])}%  average precision "
                      f"{_pct(metrics['test_average_precision'])}%  params {_human(metrics['params'])}  "
                      f"FLOPs {_human(metrics['flops'])}  ({metrics['train_seconds']:.0f}s)")
    accs = np.array([r["test_acc"] for r in results])
    return results, accs, first_dir


def _rerank(store, candidates: int, seed: int, console: Console, device: Optional[str], setup):
    """Choose among the search's top ``candidates`` with the final recipe on the validation split
    (:mod:`nasforge.final_selection`; ``setup`` is :func:`_final_setup`'s result); returns the
    chosen trial, or None to keep the search's best."""
    from ..final_selection import rerank

    config, space, data, recipe = setup
    device = device or config["training"].get("device", "auto")
    ranking = rerank(store, space, data, recipe, candidates, seed, device, log=console.print)
    if not ranking:
        return None
    table = Table(title=f"final selection: the search's top {len(ranking)}, trained {recipe.epochs} epochs "
                        f"on the training split (seed {seed})")
    for col in ("trial", "search val acc %", "final-recipe val acc %", "params", "train s"):
        table.add_column(col, justify="right")
    for trial, result in ranking:
        table.add_row(str(trial.number), _pct(trial.metrics.get("val_acc")),
                      _pct(result["val_acc"]) if "val_acc" in result else f"failed: {result.get('error', '?')}",
                      _human(trial.metrics.get("params")),
                      f"{result['train_seconds']:.0f}" if "train_seconds" in result else "-")
    console.print(table)
    console.print(f"chosen: trial {ranking[0][0].number}")
    return ranking[0][0]


def cmd_retrain(args: argparse.Namespace) -> int:
    from ..experiment_lock import ExperimentLock

    experiment, store = _open_store(args.experiment, readonly=True)
    store.close()  # checked that it is there; now as its one writer (retrain records its results)
    console = make_console()
    with ExperimentLock(experiment):
        _, store = _open_store(str(experiment))
        with store:
            return _retrain_under_lock(args, experiment, store, console)


def _retrain_under_lock(args: argparse.Namespace, experiment: Path, store, console: Console) -> int:
    """The retrain proper: the store is this process's to write while the lock is held."""
    config, space = _space_of(store)
    direction = config["reward"].get("direction", "maximize")
    overrides = {name: getattr(args, name) for name in ("epochs", "shift", "label_smoothing", "mixup", "ema")}
    if args.rerank < 1:
        raise ConfigError(f"--rerank must be at least 1 (1 retrains the search's best as it is), got {args.rerank}")
    if args.seeds < 1 or args.seed < 0:
        raise ConfigError(f"--seeds must be at least 1 and --seed at least 0, got {args.seeds} and {args.seed}")
    from ..estimators.device import resolve_device

    resolve_device(args.device or config["training"].get("device", "auto"))  # a missing GPU, before any training
    setup = _final_setup(store, overrides, args.dataset)
    chosen = None
    if args.trial is None and args.rerank > 1:
        chosen = _rerank(store, args.rerank, args.seed, console, args.device, setup)
    trial = chosen or _pick_trial(store, args.trial, direction, final=False)
    seeds = list(range(args.seed, args.seed + args.seeds))
    results, accs, _ = _retrain(experiment, store, trial, seeds, console, args.device, setup)
    table = Table(title=f"retrained trial {trial.number} ({space.summary(trial.tokens)})")
    for col in ("seed", "test acc %", "avg precision %", "top-3 %", "params", "FLOPs", "train s"):
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(str(r["seed"]), _pct(r["test_acc"]), _pct(r["test_average_precision"]),
                      _pct(r["test_top3_acc"]), _human(r["params"]), _human(r["flops"]), f"{r['train_seconds']:.0f}")
    console.print(table)
    if len(accs) > 1:
        console.print(f"test accuracy over {len(accs)} seeds: mean {100 * accs.mean():.2f}%, "
                      f"std {100 * accs.std(ddof=1):.2f}, min {100 * accs.min():.2f}, max {100 * accs.max():.2f}")
    return 0


def add_retrain_parser(subparsers) -> None:
    """Add ``retrain``."""
    r = subparsers.add_parser("retrain", help="train the best architecture from scratch and test it")
    r.add_argument("--experiment", help="experiment directory (default: the latest search)")
    r.add_argument("--trial", type=int, help="trial number (default: the best)")
    r.add_argument("--epochs", type=int, help=f"epochs (default {RETRAIN_EPOCHS})")
    r.add_argument("--shift", type=int, help="augmentation: shift each training example by up to N samples/pixels "
                                             "along each axis, wrapping around (default: the search's, 0)")
    r.add_argument("--label-smoothing", type=float,
                   help=f"label smoothing of the training loss; 0 turns it off (default {RETRAIN_LABEL_SMOOTHING})")
    r.add_argument("--mixup", type=float, help="mixup's Beta(a, a) parameter a; 0 turns it off (default: the search's, 0)")
    r.add_argument("--ema", type=float, help="decay per step of an exponential average of the weights that becomes "
                                             "the model; 0 turns it off (default: the search's, 0)")
    r.add_argument("--rerank", type=int, default=RERANK_CANDIDATES,
                   help="first choose among the search's top N: each is trained with this recipe on the search's "
                        "training split and scored on its validation split, and the best is retrained "
                        f"(default {RERANK_CANDIDATES}; 1 retrains the search's best as it is; ignored with --trial)")
    r.add_argument("--seed", type=int, default=0, help="first seed (0); the final selection trains with it too")
    r.add_argument("--seeds", type=int, default=1, help="number of seeds, for a spread (1)")
    r.add_argument("--device", help="auto, cpu or cuda (default: the search's)")
    r.add_argument("--dataset", metavar="PATH", help="the search's data file, if it moved since the search "
                                                     "(checked against the fingerprint stored with the search)")
    r.set_defaults(func=cmd_retrain)

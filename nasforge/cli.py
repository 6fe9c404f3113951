"""The ``nasforge`` command: search, and inspect, retrain and export what a search found.

Bad input (unknown names, malformed config, unusable data) exits with status 2 and a one-line
message before any trial runs; nothing stored is touched.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from rich.console import Console
from rich.table import Table

from .cli_objectives import add_objective_flags, request_measurements, reward_overrides
from .config import RERANK_CANDIDATES, RETRAIN_EPOCHS, RETRAIN_LABEL_SMOOTHING, ConfigError, SearchConfig, load_config_file, parse_value
from .data.datasets import DataError
from .registry import UnknownNameError
from .store import StoreError

RUNS = Path("runs")
LATEST = RUNS / "latest"

USER_ERRORS = (ConfigError, DataError, UnknownNameError, StoreError, ValueError, KeyError)


# ---- experiment directories ---------------------------------------------------------------------
def _new_experiment_dir(config: SearchConfig) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = Path(config.dataset).stem if config.space["name"] == "chain-cnn" else config.space["name"]
    base = RUNS / f"{stamp}-{name}-{config.strategy['name']}"
    path, i = base, 1
    while path.exists():
        i += 1
        path = base.with_name(f"{base.name}-{i}")
    return path


def _remember_latest(path: Path) -> None:
    RUNS.mkdir(parents=True, exist_ok=True)
    LATEST.write_text(str(path) + "\n")


def _resolve_experiment(arg: Optional[str]) -> Path:
    if arg:
        return Path(arg)
    if LATEST.exists():
        return Path(LATEST.read_text().strip())
    raise ConfigError("no experiment given and no earlier search found here; pass --experiment DIR")


def _open_store(arg: Optional[str]):
    from .search import store_path
    from .store import Store

    experiment = _resolve_experiment(arg)
    path = store_path(experiment)
    if not path.exists():
        raise ConfigError(f"no experiment store at {path}")
    return experiment, Store(path, create=False)


# ---- formatting ---------------------------------------------------------------------------------
def _pct(x: Optional[float]) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def _human(n: Optional[float]) -> str:
    if n is None:
        return "-"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f}{unit}"
    return str(int(n))


def _duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


def make_console() -> Console:
    """Wide output when not on a terminal (logs, CI), so tables do not wrap."""
    console = Console()
    return console if console.is_terminal else Console(width=200)


def _trial_table(title: str, trials, space, show_error: bool = False) -> Table:
    table = Table(title=title)
    for col in ("trial", "state", "val acc %", "reward", "params", "FLOPs", "time s", "architecture"):
        table.add_column(col, justify="right" if col not in ("state", "architecture") else "left")
    if show_error:
        table.add_column("error")
    for t in trials:
        number = f"{t.number}" + (f".{t.attempt}" if t.attempt else "")
        row = [number, t.state, _pct(t.objective), "-" if t.reward is None else f"{t.reward:.4f}",
               _human(t.metrics.get("params")), _human(t.metrics.get("flops")),
               "-" if t.duration is None else f"{t.duration:.1f}", space.summary(t.tokens)]
        if show_error:
            row.append(t.error or "")
        table.add_row(*row)
    return table


# ---- search -------------------------------------------------------------------------------------
def _overrides_from_args(args: argparse.Namespace) -> Dict[str, Any]:
    """Only what the user gave (config file, then flags), as a partial config dict."""
    given: Dict[str, Any] = {}
    if args.config:
        given = load_config_file(args.config)
        SearchConfig().update(given, source=args.config)  # check names and types early
    for key in ("dataset", "budget", "seed", "max_consecutive_failures"):
        if getattr(args, key) is not None:
            given[key] = getattr(args, key)
    sections: Dict[str, Dict[str, Any]] = {"space": {}, "strategy": {}, "training": {}, "reward": {},
                                           "execution": {}}
    for attr, target in FLAG_TARGETS.items():
        value = getattr(args, attr)
        if value is not None:
            section, key = target.split(".")
            sections[section][key] = value
    sections["reward"].update(reward_overrides(args, given.get("reward")))
    for item in args.set or []:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ConfigError(f"--set {item!r}: use SECTION.KEY=VALUE, for example strategy.batch_size=4")
        key, value = item.split("=", 1)
        section, name = key.split(".", 1)
        if section not in sections:
            raise ConfigError(f"--set {item!r}: section must be one of {', '.join(sections)}")
        sections[section][name] = parse_value(value)
    for section, values in sections.items():
        if values:
            merged = dict(given.get(section) or {})
            if "name" in values and values["name"] != merged.get("name"):
                merged = {}  # a new space or strategy: the file's settings for another one do not apply
            merged.update(values)
            given[section] = merged
    request_measurements(given)  # a child measures latency etc. only when the reward names them
    return given


FLAG_TARGETS = {
    "space": "space.name", "layers": "space.num_layers", "strategy": "strategy.name",
    "controller_lr": "strategy.learning_rate", "controller_hidden": "strategy.hidden_size",
    "controller_layers": "strategy.num_layers", "controller_batch": "strategy.batch_size",
    "controller_init": "strategy.init_range", "baseline_decay": "strategy.baseline_decay",
    "entropy_weight": "strategy.entropy_weight", "epochs": "training.epochs",
    "batch_size": "training.batch_size", "optimizer": "training.optimizer", "lr": "training.learning_rate",
    "weight_decay": "training.weight_decay", "schedule": "training.schedule",
    "shift": "training.shift", "label_smoothing": "training.label_smoothing", "mixup": "training.mixup",
    "ema": "training.ema",
    "val_fraction": "training.val_fraction", "score_epochs": "training.score_epochs",
    "max_params": "training.max_params", "device": "training.device", "metric": "reward.metric",
    "reward_transform": "reward.transform", "failure_penalty": "reward.failure_penalty",
    "executor": "execution.name", "workers": "execution.workers", "threads_per_worker": "execution.threads_per_worker",
    "trial_timeout": "execution.trial_timeout", "memory_limit": "execution.memory_limit_mb",
    "retries": "execution.retries", "address": "execution.address",
}


def cmd_search(args: argparse.Namespace) -> int:
    from .search import SearchStopped, run_search, store_path
    from .spaces.base import create_space
    from .store import Store

    console = make_console()
    if args.resume:
        experiment = _resolve_experiment(args.experiment)
        path = store_path(experiment)
        if not path.exists():
            raise ConfigError(f"nothing to resume: no store at {path}")
        with Store(path, create=False) as store:
            stored = store.config()
        if stored is None:
            raise ConfigError(f"{path} holds no search settings to resume")
        stored.pop("data_fingerprint", None)
        config = SearchConfig.from_dict(stored)
        config.update(_overrides_from_args(args), source="flags")  # must agree, except the budget
    else:
        config = SearchConfig()
        config.update(_overrides_from_args(args), source="flags")
        experiment = Path(args.experiment) if args.experiment else _new_experiment_dir(config)

    display = _ProgressDisplay(console, quiet=args.quiet)
    console.print(f"[bold]nasforge search[/] -> {experiment}  (dataset {config.dataset}, "
                  f"space {config.space['name']}, strategy {config.strategy['name']}, budget {config.budget})")
    try:
        with display:
            result = run_search(config, experiment, resume=args.resume, on_progress=display.update)
    except KeyboardInterrupt:
        console.print(f"\n[yellow]stopped.[/] the store is consistent; continue with "
                      f"`nasforge search --resume --experiment {experiment}`")
        return 130
    except SearchStopped as exc:
        console.print(f"[red]search stopped:[/] {exc}")
        return 1
    finally:
        if store_path(experiment).exists():
            _remember_latest(experiment)
    space = create_space(config.space["name"], **{k: v for k, v in config.space.items() if k != "name"})
    pruned = f", {result.pruned} pruned" if result.pruned else ""
    console.print(_trial_table(f"best architectures ({result.completed} completed{pruned}, {result.failed} failed, "
                               f"{_duration(result.elapsed)})", result.best, space))
    if result.best:
        console.print("best architecture:\n  " + "\n  ".join(space.describe(result.best[0].tokens)))
    console.print(f"next: `nasforge retrain` (first chooses among the top {RERANK_CANDIDATES} with the final training "
                  f"recipe) then `nasforge export` (experiment {experiment})")
    return 0


class _ProgressDisplay:
    """Live bar (trials / budget, best validation accuracy, last reward, elapsed, ETA) plus a line per trial."""

    def __init__(self, console: Console, quiet: bool = False):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.console = console
        self.quiet = quiet
        self.progress = Progress(
            TextColumn("[bold]search"), BarColumn(), MofNCompleteColumn(),
            TextColumn("best val {task.fields[best]}%  last reward {task.fields[last]}  "
                       "elapsed {task.fields[elapsed]}  ETA {task.fields[eta]}"),
            console=console, transient=False,
        )
        self.task = None

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()

    def update(self, p) -> None:
        fields = dict(best=_pct(p.best.objective) if p.best else "-",
                      last="-" if p.last is None or p.last.reward is None else f"{p.last.reward:.4f}",
                      elapsed=_duration(p.elapsed), eta=_duration(p.eta) if p.eta is not None else "?")
        if self.task is None:
            self.task = self.progress.add_task("search", total=p.budget, completed=p.done, **fields)
        else:
            self.progress.update(self.task, total=p.budget, completed=p.done, **fields)
        t = p.last
        if t is not None and not self.quiet:
            if t.state == "COMPLETE":
                msg = (f"trial {t.number:>4}: val acc {_pct(t.objective)}%  reward {t.reward:.4f}  "
                       f"params {_human(t.metrics.get('params'))}  {t.duration:.1f}s")
            elif t.state == "PRUNED":
                msg = (f"trial {t.number:>4}: [yellow]pruned[/] after {t.metrics.get('pruned_at')} epochs, "
                       f"val acc {_pct(t.objective)}%  {t.duration:.1f}s")
            else:
                msg = f"trial {t.number:>4}: [red]{t.state}[/] {t.error}"
            self.progress.console.print(msg)


# ---- inspection ---------------------------------------------------------------------------------
def _space_of(store):
    from .spaces.base import space_of_section

    config = store.config()
    if config is None:
        raise ConfigError(f"{store.path} holds no search settings")
    return config, space_of_section(config["space"])


def cmd_trials(args: argparse.Namespace) -> int:
    experiment, store = _open_store(args.experiment)
    with store:
        config, space = _space_of(store)
        trials = store.trials([args.state] if args.state else None)
        if args.limit:
            trials = trials[-args.limit:]
        if args.json:
            print(json.dumps([t.__dict__ for t in trials], indent=1))
            return 0
        make_console().print(_trial_table(f"{experiment}: {len(trials)} trials", trials, space, show_error=True))
    return 0


def _pick_trial(store, trial_number: Optional[int], direction: str, final: bool = True):
    """Trial ``trial_number``, or by default the search's best (``final``: the winner of the
    final selection, when `nasforge retrain` made one)."""
    if trial_number is None:
        from .final_selection import final_choice

        best = [final_choice(store, direction)] if final else store.best(1, direction)
        if not best or best[0] is None:
            raise ConfigError("no completed trial in this experiment yet")
        return best[0]
    for t in store.trials(["COMPLETE"]):
        if t.number == trial_number:
            return t
    raise ConfigError(f"no completed trial number {trial_number}")


def cmd_best(args: argparse.Namespace) -> int:
    from .final_selection import final_choice

    experiment, store = _open_store(args.experiment)
    with store:
        config, space = _space_of(store)
        direction = config["reward"].get("direction", "maximize")
        best = store.best(args.top, direction)
        if not best:
            raise ConfigError("no completed trial in this experiment yet")
        chosen = final_choice(store, direction)
        if args.json:
            print(json.dumps([{"trial": t.number, "tokens": t.tokens, "objective": t.objective,
                               "architecture": space.encode(t.tokens), "metrics": t.metrics,
                               "final_choice": t.id == chosen.id} for t in best], indent=1))
            return 0
        console = make_console()
        console.print(_trial_table(f"{experiment}: best {len(best)}", best, space))
        top = best[0]
        console.print(f"best: trial {top.number}, validation accuracy {_pct(top.objective)}%")
        if chosen.id != top.id:
            console.print(f"final selection (`nasforge retrain`, the search's top trained with the final recipe): "
                          f"trial {chosen.number}, search validation accuracy {_pct(chosen.objective)}%")
            top = chosen
        console.print(f"tokens: {top.tokens}")
        console.print("layers:\n  " + "\n  ".join(space.describe(top.tokens)))
        for ev in store.evaluations("retrain"):
            if ev["trial_id"] == top.id:
                m = ev["metrics"]
                console.print(f"retrained (seed {m['seed']}, {m['epochs']} epochs): test acc {_pct(m['test_acc'])}%, "
                              f"AP {_pct(m['test_average_precision'])}")
    return 0


def _final_setup(store, recipe_overrides: Optional[Dict[str, Any]] = None):
    """What the final training needs: (config, space, data, recipe); ``recipe_overrides`` are
    :func:`retrain_recipe`'s keyword arguments (None keeps its default)."""
    from .data.datasets import load_dataset
    from .estimators.train import retrain_recipe
    from .search import is_tabular

    config, space = _space_of(store)
    if is_tabular(config["space"]["name"]):
        raise ConfigError(f"{config['space']['name']} is a tabular benchmark: its architectures are looked up, "
                          "not trained, so there is nothing to retrain or export")
    data = load_dataset(config["dataset"])
    if config.get("data_fingerprint") and data.fingerprint() != config["data_fingerprint"]:
        raise ConfigError(f"dataset {config['dataset']} is not the data this experiment searched on")
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

    from .estimators.train import retrain_and_test
    from .report.model_files import save_model

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
        save_model(model, out, {"trial": trial.number, "tokens": trial.tokens, **metrics})
        metrics["model_dir"] = str(out)
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
    from .final_selection import rerank

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
    experiment, store = _open_store(args.experiment)
    console = make_console()
    with store:
        config, space = _space_of(store)
        direction = config["reward"].get("direction", "maximize")
        overrides = {name: getattr(args, name) for name in ("epochs", "shift", "label_smoothing", "mixup", "ema")}
        if args.rerank < 1:
            raise ConfigError(f"--rerank must be at least 1 (1 retrains the search's best as it is), got {args.rerank}")
        setup = _final_setup(store, overrides)
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


def cmd_export(args: argparse.Namespace) -> int:
    from .report.export import export_model
    from .report.model_files import load_model_dir

    experiment, store = _open_store(args.experiment)
    console = make_console()
    with store:
        config, space = _space_of(store)
        trial = _pick_trial(store, args.trial, config["reward"].get("direction", "maximize"))
        runs = [e for e in store.evaluations("retrain") if e["trial_id"] == trial.id]
        if runs:
            model_dir = Path(runs[-1]["metrics"]["model_dir"])
        else:
            console.print(f"trial {trial.number} has not been retrained yet; retraining it now "
                          "(use `nasforge retrain` to choose epochs and seeds)")
            _, _, model_dir = _retrain(experiment, store, trial, [0], console, None)
        model, meta = load_model_dir(model_dir)
        import torch

        example = torch.zeros((2, model.spec["in_channels"], *model.spec["input_size"]))
        out = Path(args.out) if args.out else experiment / "export"
        written = export_model(model, out, example, metadata={**meta, "experiment": str(experiment)},
                               overwrite=args.overwrite)
        console.print(f"exported trial {trial.number} to {out}:")
        for name, path in written.items():
            console.print(f"  {name}: {path}")
    return 0


# ---- parser -------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nasforge",
        description="Neural architecture search with an RL controller (Zoph & Le, 2017) and friends.")
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("search", help="run (or resume) a search",
                       description="Search architectures. Settings come from defaults, then --config, then flags.")
    s.add_argument("--config", help="YAML or TOML file with settings (sections: space, strategy, training, reward)")
    s.add_argument("--experiment", help="directory for this search's store (default: runs/<time>-<dataset>-<strategy>)")
    s.add_argument("--resume", action="store_true", help="continue the experiment (default: the latest one)")
    s.add_argument("--quiet", action="store_true", help="no line per trial, only the progress bar")
    g = s.add_argument_group("search")
    g.add_argument("--dataset", help="mnist1d (default), mnist5k, digits, or a path to your .npz file")
    g.add_argument("--budget", type=int, help="number of trials (default 300)")
    g.add_argument("--seed", type=int, help="seed of the whole search (default 0)")
    g.add_argument("--max-consecutive-failures", type=int, help="stop after this many failed trials in a row (20)")
    g = s.add_argument_group("space")
    g.add_argument("--space", help="search space (default chain-cnn)")
    g.add_argument("--layers", type=int, help="chain-cnn: number of layers (default 6)")
    g = s.add_argument_group("strategy")
    g.add_argument("--strategy", help="reinforce (default) or random")
    g.add_argument("--controller-lr", type=float, help="controller Adam learning rate (0.0006)")
    g.add_argument("--controller-hidden", type=int, help="LSTM hidden units (35)")
    g.add_argument("--controller-layers", type=int, help="LSTM layers (2)")
    g.add_argument("--controller-batch", type=int, help="children per controller update, m (8)")
    g.add_argument("--controller-init", type=float, help="uniform initialisation range (0.08)")
    g.add_argument("--baseline-decay", type=float, help="exponential moving average decay of the baseline (0.95)")
    g.add_argument("--entropy-weight", type=float, help="entropy bonus weight (0.0001)")
    g = s.add_argument_group("child training")
    g.add_argument("--epochs", type=int, help="epochs per child (8)")
    g.add_argument("--batch-size", type=int, help="minibatch size (64)")
    g.add_argument("--optimizer", help="adamw (default), adam or sgd")
    g.add_argument("--lr", type=float, help="child learning rate (0.003)")
    g.add_argument("--weight-decay", type=float, help="weight decay (0.01)")
    g.add_argument("--schedule", help="onecycle (default), cosine or constant")
    g.add_argument("--shift", type=int, help="augmentation: random circular shift of up to N samples/pixels (0: off)")
    g.add_argument("--label-smoothing", type=float, help="label smoothing of the training loss (0)")
    g.add_argument("--mixup", type=float, help="mixup's Beta(a, a) parameter a (0: off)")
    g.add_argument("--ema", type=float, help="decay per step of a weight average that becomes the model (0: off)")
    g.add_argument("--val-fraction", type=float, help="share of the training data held out for rewards (0.2)")
    g.add_argument("--score-epochs", type=int, help="reward uses the best of the last N epochs (5)")
    g.add_argument("--max-params", type=int, help="children with more parameters fail (5000000)")
    g.add_argument("--device", help="auto (default: CUDA when present), cpu or cuda")
    g = s.add_argument_group("execution")
    g.add_argument("--executor", help="auto (default: inline for tabular benchmarks, local otherwise), inline, "
                                      "local (process pool) or ray")
    g.add_argument("--workers", type=int, help="trials evaluated at once (1)")
    g.add_argument("--threads-per-worker", type=int, help="torch threads per local worker (cores // workers)")
    g.add_argument("--trial-timeout", type=float, help="seconds a trial may run before it fails (no limit)")
    g.add_argument("--memory-limit", type=float, help="MiB a local worker may use before its trial fails (no limit)")
    g.add_argument("--retries", type=int, help="times a trial whose worker died is run again (1)")
    g.add_argument("--address", help="ray: address of an existing cluster (default: start Ray on this machine)")
    g = s.add_argument_group("reward")
    g.add_argument("--metric", help="metric the search optimises (val_acc)")
    g.add_argument("--reward-transform", help="cube (default, as in the paper), square or identity")
    g.add_argument("--failure-penalty", type=float, help="reward given for a failed child (0)")
    add_objective_flags(g)
    s.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                   help="any other setting, e.g. --set strategy.dedup=false (repeatable)")
    s.set_defaults(func=cmd_search)

    t = sub.add_parser("trials", help="list the stored trials")
    t.add_argument("--experiment", help="experiment directory (default: the latest search)")
    t.add_argument("--state", choices=("RUNNING", "COMPLETE", "FAILED", "PRUNED", "WAITING"))
    t.add_argument("--limit", type=int, help="show only the last N")
    t.add_argument("--json", action="store_true", help="machine-readable output")
    t.set_defaults(func=cmd_trials)

    b = sub.add_parser("best", help="show the best architecture (tokens and layers)")
    b.add_argument("--experiment", help="experiment directory (default: the latest search)")
    b.add_argument("--top", type=int, default=5, help="how many to list (5)")
    b.add_argument("--json", action="store_true", help="machine-readable output")
    b.set_defaults(func=cmd_best)

    r = sub.add_parser("retrain", help="train the best architecture from scratch and test it")
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
    r.set_defaults(func=cmd_retrain)

    e = sub.add_parser("export", help="write the retrained model as standalone PyTorch + ONNX")
    e.add_argument("--experiment", help="experiment directory (default: the latest search)")
    e.add_argument("--trial", type=int, help="trial number (default: the best)")
    e.add_argument("--out", help="output directory (default: <experiment>/export)")
    e.add_argument("--overwrite", action="store_true", help="replace an existing export")
    e.set_defaults(func=cmd_export)

    from .cli_pareto import add_pareto_parser

    add_pareto_parser(sub)

    from .cli_benchmark import add_benchmark_parser

    add_benchmark_parser(sub)

    from .cli_tabulate import add_tabulate_parser

    add_tabulate_parser(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except USER_ERRORS as exc:
        if os.environ.get("NASFORGE_DEBUG"):
            raise
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"nasforge {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # outside a search's own handling (set-up, final report): nothing to save
        print(f"nasforge {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""``nasforge search``: run (or resume) a search from defaults, a config file and flags, with a
live progress display."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Dict

from rich.console import Console
from rich.progress import ProgressColumn
from rich.text import Text

from ..config import RERANK_CANDIDATES, ConfigError, SearchConfig, import_plugins, load_config_file, parse_value
from .common import _duration, _human, _new_experiment_dir, _remember_latest, _resolve_experiment, _restore_latest, \
    _trial_table, check_experiment_dir, format_metric, latest_text, make_console, nothing_recorded, \
    run_until_stopped
from ..objectives.measurements import request_measurements
from .objectives import add_objective_flags, reward_overrides
from .track import add_log_to_flags, finish_tracker, search_tracker, with_tracker


def _overrides_from_args(args: argparse.Namespace) -> Dict[str, Any]:
    """Only what the user gave (config file, then flags), as a partial config dict."""
    given: Dict[str, Any] = {}
    if args.config:
        given = load_config_file(args.config)
        SearchConfig().update(given, source=args.config)  # check names and types early
        import_plugins(given.get("plugins") or [])  # before any name in it is looked up: a plugin's, maybe
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
    if getattr(args, "metric", None) is not None and getattr(args, "objective", None) is None:
        args = argparse.Namespace(**{**vars(args), "objective": args.metric})  # --metric: an alias of --objective
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
            if "estimator" in values and values["estimator"] != merged.get("estimator", "train"):
                merged = {}  # nor the file's settings for another estimator
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
    "max_params": "training.max_params", "device": "training.device", "estimator": "training.estimator",
    "reward_transform": "reward.transform", "failure_penalty": "reward.failure_penalty",
    "executor": "execution.name", "workers": "execution.workers", "threads_per_worker": "execution.threads_per_worker",
    "trial_timeout": "execution.trial_timeout", "memory_limit": "execution.memory_limit_mb",
    "retries": "execution.retries", "address": "execution.address",
}


def cmd_search(args: argparse.Namespace) -> int:
    from ..search import run_search, settings_to_resume
    from ..stored_config import stored_data_missing

    console = make_console()
    if args.resume:
        experiment = _resolve_experiment(args.experiment)
        stored = settings_to_resume(experiment)  # a search that is starting on it is named, as one running is
        stored.pop("data_fingerprint", None)
        config = SearchConfig.from_dict(stored)
        config.update(_overrides_from_args(args), source="flags")  # must agree, except the budget
        if args.dataset is None and stored_data_missing(config.dataset):
            raise ConfigError(f"the data file this experiment searched on, {config.dataset}, is not there; if it "
                              "moved, pass --dataset NEW_PATH (checked against the stored fingerprint)")
    else:
        config = SearchConfig()
        config.update(_overrides_from_args(args), source="flags")
        experiment = Path(args.experiment) if args.experiment else _new_experiment_dir(config)

    header = _header(config, experiment, args.dataset)
    latest_before = latest_text()  # put back if this search ends having kept nothing

    def started():  # once every setting is checked and the store is this run's: a refusal prints no header
        console.print(header)
        _remember_latest(experiment)

    display = _ProgressDisplay(console, quiet=args.quiet, on_start=started)
    tracker = search_tracker(args, experiment)  # --log-to: a missing extra is refused before the search
    check_experiment_dir(experiment)

    def run():
        with display:
            return run_search(config, experiment, resume=args.resume, on_progress=with_tracker(display.update, tracker))

    code = None
    try:
        result, code = run_until_stopped(console, "search", run, "the store is consistent; continue with "
                                         f"`nasforge search --resume --experiment {experiment}`", experiment)
    finally:
        finish_tracker(console, tracker, finished=code == 0)
        if code != 0 and latest_text() != latest_before and nothing_recorded(experiment):
            _restore_latest(latest_before)  # runs/latest never names a folder that was removed (even half-written)
    return code or _report(console, result, config, experiment)


def _header(config: SearchConfig, experiment: Path, dataset_flag) -> str:
    """The line that opens a search; a table names no dataset, and --dataset with one is refused."""
    from ..build import is_tabular

    tabular = is_tabular(config.space["name"])
    if tabular and dataset_flag is not None:
        raise ConfigError(f"--dataset does not apply to {config.space['name']}: a tabular benchmark looks its "
                          "architectures up in its own table; leave --dataset out")
    data = "" if tabular else f"dataset {config.dataset}, "
    space_name = config.space["name"] + (" (a table)" if tabular else "")
    return (f"[bold]nasforge search[/] -> {experiment}  ({data}space {space_name}, "
            f"strategy {config.strategy['name']}, budget {config.budget})")


def _report(console: Console, result, config: SearchConfig, experiment: Path) -> int:
    """The finished search's best trials and the next step; exit 1 when there is no best to take on."""
    space = result.space
    pruned = f", {result.pruned} pruned" if result.pruned else ""
    title = (f"best architectures, one row each ({result.completed} completed{pruned}, {result.failed} failed, "
             f"{_duration(result.elapsed)})")
    console.print(_trial_table(title, result.best, space, reward=config.reward))
    if result.best:
        console.print("best architecture:\n  " + "\n  ".join(space.describe(result.best[0].tokens)))
    if result.completed == 0 and result.failed:
        console.print(f"[red]every trial failed[/] ({result.failed}); see `nasforge trials --experiment {experiment} "
                      "--state FAILED` for each error")
        return 1
    if result.completed and not result.best:
        console.print(f"[red]no trial meets the hard constraints[/]: all {result.completed} completed trials broke a "
                      f"limit; see `nasforge trials --experiment {experiment}`, and search again with a looser one")
        return 1
    console.print(_next_step(config.space["name"], space, experiment, config.reward.get("metric", "val_acc")))
    return 0


def _next_step(space_name: str, space, experiment: Path, metric: str = "val_acc") -> str:
    """What a user does after this search: retrain and export a network, export a rule, or (a
    table) read the results, since nothing was trained."""
    from ..build import is_rule_space, is_tabular
    from .pareto import pareto_command

    if is_rule_space(space):
        return (f"next: `nasforge export --optimizer` writes the best rule as a torch optimiser "
                f"(experiment {experiment})")
    if is_tabular(space_name):
        return (f"next: `nasforge best` and {pareto_command(space, metric)} read the results; {space_name} is "
                f"looked up in a table, so there is no network to retrain or export (experiment {experiment})")
    return (f"next: `nasforge retrain` (first chooses among the top {RERANK_CANDIDATES} with the final training "
            f"recipe) then `nasforge export` (experiment {experiment})")


class _ProgressDisplay:
    """A live line (trials / budget, the best value of the metric optimised, last reward, the
    trials running and for how long, elapsed, ETA) plus a line per finished trial. Elapsed time,
    the running trials' clocks and the ETA tick between trials (rich re-renders the columns)."""

    def __init__(self, console: Console, quiet: bool = False, on_start=None):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = console
        self.quiet = quiet
        self.progress = Progress(
            TextColumn("[bold]search"), BarColumn(), MofNCompleteColumn(),
            TextColumn("best {task.fields[metric]} {task.fields[best]}  last reward {task.fields[last]}"),
            _RunningColumn(), TextColumn("elapsed"), TimeElapsedColumn(), _EtaColumn(),
            console=console, transient=False,
        )
        self.task = None
        self.started = False  # set once the search has begun (its store exists and is this run's)
        self.on_start = on_start  # called then: `runs/latest` points to a search from its start (kill -9
        # included), and a refused command leaves it where it was

    def __enter__(self):
        return self  # the live line starts with the search: a refusal before it prints nothing but its error

    def __exit__(self, *exc):
        if self.started:
            self.progress.stop()

    def update(self, p) -> None:
        if not self.started:
            if self.on_start is not None:
                self.on_start()
            self.progress.start()
        self.started = True
        fields = dict(metric=p.metric, best=format_metric(p.metric, p.best.objective) if p.best else "-",
                      last="-" if p.last is None or p.last.reward is None else f"{p.last.reward:.4f}",
                      running=dict(p.running), eta=p.eta, eta_at=time.time())
        if self.task is None:
            self.task = self.progress.add_task("search", total=p.budget, completed=p.done, **fields)
        else:
            self.progress.update(self.task, total=p.budget, completed=p.done, **fields)
        t = p.last
        if t is not None and not self.quiet:
            if t.state == "COMPLETE":
                msg = (f"trial {t.number:>4}: {p.metric} {format_metric(p.metric, t.objective)}  "
                       f"reward {t.reward:.4f}  params {_human(t.metrics.get('params'))}  {t.duration:.1f}s"
                       + ("" if t.feasible else f"  [yellow]infeasible[/] ({'; '.join(t.metrics.get('violations', []))})"))
            elif t.state == "PRUNED":
                msg = (f"trial {t.number:>4}: [yellow]pruned[/] after {t.metrics.get('pruned_at')} epochs, "
                       f"{p.metric} {format_metric(p.metric, t.objective)}  {t.duration:.1f}s")
            else:
                msg = f"trial {t.number:>4}: [red]{t.state}[/] {t.error}"
            self.progress.console.print(msg)


def _running_text(running, now: float) -> str:
    if not running:
        return ""
    shown = [f"#{n} {_duration(now - started)}" for n, started in sorted(running.items())[:4]]
    return "running " + " ".join(shown) + (" ..." if len(running) > 4 else "")


class _RunningColumn(ProgressColumn):
    """The trials running now and how long each has run; recomputed at every refresh."""

    def render(self, task) -> Text:
        return Text(_running_text(task.fields.get("running") or {}, time.time()))


class _EtaColumn(ProgressColumn):
    """The estimate made when the last trial finished, counted down between trials."""

    def render(self, task) -> Text:
        eta = task.fields.get("eta")
        if eta is None:
            return Text("ETA ?")
        return Text("ETA " + _duration(max(eta - (time.time() - task.fields["eta_at"]), 0.0)))


def names_text(names, default=None) -> str:
    """``a, b (default), c``: a registry's names for a help text, so the help cannot go stale."""
    return ", ".join(f"{n} (default)" if n == default else n for n in names)


def add_search_parser(subparsers) -> None:
    """Add ``search`` to the ``nasforge`` command's subparsers. Every list of names comes from its
    registry (nasforge/registry.py: names without importing torch), every default from
    SearchConfig's, so the help cannot go stale (tests/test_cli_help.py)."""
    from ..config import SECTIONS, TOP_LEVEL
    from ..registry import PREDICTORS

    d = SearchConfig()
    s = subparsers.add_parser(
        "search", help="run (or resume) a search",
        description="Search architectures. Settings come from defaults, then --config, then flags. Each "
                    "section's keys are the settings of the component it names (the space, strategy, "
                    "estimator or executor class); a wrong key or type is refused before anything runs, "
                    "with the valid keys.")
    s.add_argument("--config", help=f"YAML or TOML file with settings: top-level {', '.join(TOP_LEVEL)}; "
                                    f"sections [{'], ['.join(SECTIONS)}]")
    s.add_argument("--experiment", help="directory for this search's store (default: runs/<time>-<dataset>-<strategy>)")
    s.add_argument("--resume", action="store_true", help="continue the experiment (default: the latest one)")
    s.add_argument("--quiet", action="store_true", help="no line per trial, only the progress bar")
    add_log_to_flags(s)
    for add_group in (_add_search_flags, _add_space_flags, _add_strategy_flags, _add_training_flags,
                      _add_execution_flags, _add_reward_flags):
        add_group(s, d)
    s.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                   help=f"any setting of a section ({', '.join(SECTIONS)}): KEY is a setting of the component "
                        "the section names, e.g. --set strategy.dedup=false or --set training.weight_decay=0; "
                        "VALUE is read as JSON (numbers, true/false, null, lists) or else as a string; a wrong "
                        "key is refused with the valid ones (repeatable). Predictors (for --strategy "
                        f"predictor-filter, --set strategy.predictor=NAME): {names_text(PREDICTORS.names())}")
    s.set_defaults(func=cmd_search)


def _add_search_flags(s, d: SearchConfig) -> None:
    """The top-level settings: data, budget, seed, when to give up."""
    from ..config import BUILTIN_DATASETS

    g = s.add_argument_group("search")
    g.add_argument("--dataset", metavar="NAME|FILE", help=f"built-in: {names_text(BUILTIN_DATASETS, d.dataset)}; "
                                                          "or a path to your .npz file")
    g.add_argument("--budget", type=int, help=f"number of trials (default {d.budget})")
    g.add_argument("--seed", type=int, help=f"seed of the whole search, a non-negative integer (default {d.seed})")
    g.add_argument("--max-consecutive-failures", type=int,
                   help=f"stop after this many failed trials in a row ({d.max_consecutive_failures})")


def _add_space_flags(s, d: SearchConfig) -> None:
    from ..registry import SPACES

    g = s.add_argument_group("space")
    g.add_argument("--space", metavar="NAME", help=f"search space: {names_text(SPACES.names(), d.space['name'])}")
    g.add_argument("--layers", type=int, help=f"chain-cnn: number of layers (default {d.space['num_layers']} for "
                                              "search; `nasforge tabulate` defaults to 4)")


def _add_strategy_flags(s, d: SearchConfig) -> None:
    """The strategy's name and, as flags, the controller's settings (reinforce-elite, reinforce, ppo)."""
    from ..registry import STRATEGIES

    g = s.add_argument_group("strategy", "--controller-* and the two flags after them set the controller's "
                                         "settings (reinforce-elite, the default, reinforce: the paper's, ppo); "
                                         "other strategies take theirs with --set strategy.KEY=VALUE")
    g.add_argument("--strategy", metavar="NAME",
                   help=f"search strategy: {names_text(STRATEGIES.names(), d.strategy['name'])}")
    g.add_argument("--controller-lr", type=float, help="controller Adam learning rate (reinforce-elite 0.02; reinforce 0.0006)")
    g.add_argument("--controller-hidden", type=int, help="LSTM hidden units (35)")
    g.add_argument("--controller-layers", type=int, help="LSTM layers (2)")
    g.add_argument("--controller-batch", type=int, help="children per controller update, m (reinforce-elite 4; reinforce 8)")
    g.add_argument("--controller-init", type=float, help="uniform initialisation range (0.08)")
    g.add_argument("--baseline-decay", type=float, help="exponential moving average decay of the baseline (0.95)")
    g.add_argument("--entropy-weight", type=float, help="entropy bonus weight (reinforce-elite 0.03; reinforce 0.0001)")


def _add_training_flags(s, d: SearchConfig) -> None:
    """How a child is scored, and the train estimator's recipe."""
    from ..registry import ESTIMATORS

    g = s.add_argument_group("child training", "settings of the train estimator (tabular spaces look their "
                                               "metrics up and ignore them)")
    g.add_argument("--estimator", metavar="NAME", help=f"how a child is scored: "
                                                       f"{names_text(ESTIMATORS.names(), 'train')} (tabular spaces "
                                                       "always use tabular)")
    g.add_argument("--epochs", type=int, help=f"epochs per child ({d.training['epochs']})")
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


def _add_execution_flags(s, d: SearchConfig) -> None:
    """Where and how trials run: the executor, its workers and the limits on each trial."""
    from ..execution.base import EXECUTORS

    g = s.add_argument_group("execution")
    g.add_argument("--executor", metavar="NAME",
                   help=f"how trials run: {names_text(['auto'] + EXECUTORS.names(), d.execution['name'])}; auto "
                        "is inline (in this process) for tabular benchmarks and shared weights with one worker, "
                        "local (a pool of worker processes) otherwise; ray runs on a Ray cluster")
    g.add_argument("--workers", type=int, help="trials evaluated at once (1)")
    g.add_argument("--threads-per-worker", type=int, help="torch threads per local worker (cores // workers)")
    g.add_argument("--trial-timeout", type=float, help="seconds a trial may run before it fails (no limit)")
    g.add_argument("--memory-limit", type=float, help="MiB a local worker may use before its trial fails (no limit)")
    g.add_argument("--retries", type=int, help="times a trial whose worker died is run again (1)")
    g.add_argument("--address", help="ray: address of an existing cluster (default: start Ray on this machine)")


def _add_reward_flags(s, d: SearchConfig) -> None:
    """What the search optimises; the objective and constraint flags are cli/objectives.py's."""
    g = s.add_argument_group("reward", "what the search optimises: one metric (--objective), its direction, "
                                       "and optional limits on others")
    g.add_argument("--metric", metavar="METRIC", help=f"the same as --objective (an alias; default "
                                                      f"{d.reward['metric']})")
    g.add_argument("--reward-transform", help="how the objective becomes the strategy's reward: cube (default, "
                                              "as in the paper), square or identity")
    g.add_argument("--failure-penalty", type=float, help="reward given for a failed child (0)")
    add_objective_flags(g)

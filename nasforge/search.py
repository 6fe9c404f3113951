"""The search loop: ask -> record -> submit ... outcome -> record -> tell, resumable from the store.

Both the CLI and the Python API call :func:`run_search`. Every step that changes the strategy is
written to the store in the same transaction as the trial it concerns, so a search stopped at any
point (crash, ``kill -9``, Ctrl+C) resumes where it was: trials that were running are recorded as
interrupted and run again as retries, with the same tokens and seed.

The loop keeps every slot of its executor busy: it asks the strategy for a new architecture
whenever a worker is free and tells it each result as it arrives, in whatever order. With one
worker this is the classic ask/evaluate/tell sequence; strategies that learn in batches (REINFORCE,
PPO) keep the probabilities of sampling time, so results that arrive after an update still give
a correct gradient. Only the driver writes the store.
"""

from __future__ import annotations

import inspect
import math
import signal
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from .config import RUN_ONLY, ConfigError, SearchConfig, differences, import_plugins
from .data.datasets import Dataset, load_dataset
from .estimators.base import ESTIMATORS, Estimator, create_estimator
from .estimators.fidelity import rung_values
from .execution import EstimatorRecipe, Executor, Outcome, Task, create_executor
from .execution.base import OK, RETRYABLE
from .objectives.rewards import Evaluation, Scorer
from .spaces.base import InvalidArchitectureError, SearchSpace, create_space
from .experiment_lock import LOCK_FILE, ExperimentLock, locked_error, running_writer
from .store import EmptyStoreError, Store, TrialRecord
from .strategies.base import Strategy, create_strategy

STORE_FILE = "trials.sqlite"
ESTIMATOR_CHECKPOINT = "estimator.pt"  # the state of an estimator that learns (shared weights)


class SearchStopped(RuntimeError):
    """The search stopped itself (for example after too many consecutive failures)."""


class SearchTerminated(KeyboardInterrupt):
    """SIGTERM (a scheduler, ``docker stop``) stops a search the way Ctrl+C does: running trials are
    marked for a retry and the workers stopped. The CLI exits 143 for it, 130 for Ctrl+C."""


@contextmanager
def _sigterm_as_interrupt():
    """Only the main thread can install handlers, and a handler someone else installed is theirs."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def terminate(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one is enough: let the clean-up finish
        raise SearchTerminated("terminated (SIGTERM)")

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@dataclass
class Progress:
    """What a progress display needs after each trial, and when one starts."""

    done: int
    budget: int
    last: Optional[TrialRecord]
    best: Optional[TrialRecord]
    elapsed: float
    eta: Optional[float]
    running: Dict[int, float] = field(default_factory=dict)  # trial number -> when it started (time.time())
    metric: str = "val_acc"  # what the objective is: labels say it, not "val acc"


@dataclass
class SearchResult:
    experiment: Path
    best: List[TrialRecord] = field(default_factory=list)
    completed: int = 0
    failed: int = 0
    elapsed: float = 0.0
    pruned: int = 0
    space: Optional[SearchSpace] = None  # as built for this search: what reads its tokens


def trial_seed(seed: int, number: int) -> int:
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


def store_path(experiment: str | Path) -> Path:
    return Path(experiment) / STORE_FILE


def _discard_unused(store: Store, experiment: Path, new_folder: bool) -> None:
    """A run that created its store and failed before recording any trial (a worker that cannot
    start, Ctrl+C while workers load) leaves nothing behind: the store, and the experiment folder
    when the run created it, are removed while the run still holds the experiment's lock, so the
    next search starts clean instead of silently reusing an empty experiment."""
    try:
        if store.numbers_used():
            return
    except Exception:  # noqa: BLE001 - a store we cannot read is not removed
        return
    store.close()
    path = store_path(experiment)
    for leftover in (path, *(path.with_name(path.name + end) for end in ("-wal", "-shm", "-journal"))):
        try:
            leftover.unlink(missing_ok=True)
        except OSError:
            return
    if new_folder:
        try:
            (experiment / LOCK_FILE).unlink(missing_ok=True)  # still held, on its open descriptor, until released
            experiment.rmdir()  # only if empty: anything else in it is not ours to remove
        except OSError:
            pass


@dataclass
class Parts:
    """The wired components of one search."""

    config: SearchConfig
    data: Optional[Dataset]
    space: SearchSpace
    estimator: Estimator
    strategy: Strategy
    objective: Scorer
    executor: Executor


def is_tabular(space_name: str) -> bool:
    """Benchmark spaces are looked up in a table instead of trained."""
    from .tables import TabularSpace
    from .spaces.base import SPACES

    factory = SPACES.get(space_name)
    return isinstance(factory, type) and issubclass(factory, TabularSpace)


def build_space(config: SearchConfig, data: Optional[Dataset]) -> SearchSpace:
    space_settings = {k: v for k, v in config.space.items() if k != "name"}
    if config.space["name"] == "chain-cnn" and "dims" not in space_settings and data is not None:
        space_settings["dims"] = data.dims
    try:
        return create_space(config.space["name"], **space_settings)
    except TypeError as exc:
        raise ConfigError(f"[space]: {exc}") from None


def build_estimator(config: SearchConfig, data: Optional[Dataset] = None,
                    space: Optional[SearchSpace] = None) -> Estimator:
    """The estimator of a search, ready to evaluate: what every worker builds for itself.

    ``[training] estimator`` names it (default ``train``; tabular spaces always use ``tabular``);
    the other ``[training]`` settings go to it."""
    import_plugins(config.plugins)
    tabular = is_tabular(config.space["name"])
    if not tabular and data is None:
        data = load_dataset(config.dataset)
    if space is None:
        space = build_space(config, data)
    try:
        if tabular:  # a benchmark space answers by lookup; [training] settings do not apply
            lookup_settings = {k: v for k, v in config.training.items() if k == "seconds_per_query"}
            estimator = create_estimator("tabular", **lookup_settings)
            estimator.setup(space)
        else:
            settings = dict(config.training)
            name = settings.pop("estimator", "train")
            if "dataset" in inspect.signature(ESTIMATORS.get(name)).parameters:
                settings["dataset"] = config.dataset
            estimator = create_estimator(name, **settings)
            estimator.setup(space, data)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"[training]: {exc}") from None
    return estimator


def build_executor(config: SearchConfig, estimator: Optional[Estimator] = None) -> Executor:
    """``auto``: inline for table lookups and for estimators that must stay in this process
    (shared weights: copies in workers would train apart), a local process pool otherwise."""
    settings = {k: v for k, v in config.execution.items() if k not in ("name", "retries")}
    name = config.execution["name"]
    in_process = bool(getattr(estimator, "in_process_only", False))
    if in_process and name not in ("auto", "inline"):
        raise ConfigError(f"[execution] the {estimator.name} estimator keeps its state in the search process; "
                          f"use executor 'inline' (or 'auto'), not {name!r}")
    if name == "auto":
        tabular = is_tabular(config.space["name"])
        name = "inline" if (tabular or in_process) and settings.get("workers", 1) == 1 else "local"
    try:
        return create_executor(name, **settings)
    except TypeError as exc:
        raise ConfigError(f"[execution]: {exc}") from None


def retries_allowed(config: SearchConfig) -> int:
    retries = config.execution.get("retries", 1)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"[execution] retries must be a non-negative integer, got {retries!r}")
    return retries


def build_parts(config: SearchConfig, data: Optional[Dataset] = None) -> Parts:
    """Create and check every component before any trial runs (bad input fails here)."""
    config.check()
    try:
        objective = Scorer.from_config(config.reward)
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc) if str(exc).startswith("[reward]") else f"[reward]: {exc}") from None
    if not is_tabular(config.space["name"]) and config.training.get("estimator", "train") == "train":
        from .objectives.measurements import request_measurements

        given = {"reward": config.reward, "training": dict(config.training), "strategy": config.strategy}
        request_measurements(given)  # a child measures latency etc. only when the reward names them
        config.training = given["training"]
    if not is_tabular(config.space["name"]) and data is None:
        data = load_dataset(config.dataset)
    space = build_space(config, data)
    estimator = build_estimator(config, data, space)
    _check_metrics(objective, estimator, config.strategy)
    strategy_settings = {k: v for k, v in config.strategy.items() if k != "name"}
    try:
        strategy = create_strategy(config.strategy["name"], **strategy_settings)
    except TypeError as exc:
        raise ConfigError(f"[strategy]: {exc}") from None
    strategy.setup(space, config.seed)
    executor = build_executor(config, estimator)
    retries_allowed(config)
    return Parts(config, data, space, estimator, strategy, objective, executor)


def _check_metrics(objective: Scorer, estimator: Estimator, strategy: Dict[str, Any]) -> None:
    """Refuse an objective, a constraint or a strategy objective naming a metric the estimator
    never produces (every trial would fail, or be ranked by nothing)."""
    from .objectives.measurements import strategy_objectives

    produced = estimator.produces()
    if produced is None:
        return
    for section, needed in (("[reward]", objective.metric_names()),
                            ("[strategy] objectives", set(strategy_objectives(strategy)))):
        missing = sorted((needed or set()) - produced)
        if missing:
            raise ConfigError(f"{section} names {', '.join(map(repr, missing))}, which the {estimator.name} "
                              f"estimator does not produce here; it produces: {', '.join(sorted(produced))}")


def _stored_config(config: SearchConfig, parts: Parts) -> Dict[str, Any]:
    """Everything needed to rebuild the space, the estimator and the data without guessing: the
    settings as given, completed with what was derived while building (the space's own settings,
    such as chain-cnn's ``dims``, read off the data), and the data's fingerprint."""
    stored = config.to_dict()
    stored["space"] = {**config.space, **parts.space.config()}
    if parts.data is not None:
        stored["data_fingerprint"] = parts.data.fingerprint()
    return stored


def dataset_reference(name: str) -> str:
    """A data file by its absolute path, so that the experiment can be read from any folder; a
    built-in dataset by its name."""
    from .data.datasets import DATASETS

    if name in DATASETS or not Path(name).expanduser().is_file():
        return name
    return str(Path(name).expanduser().resolve())


def _chain_cnn_dims(stored: Dict[str, Any], tokens_length: Optional[int]) -> Optional[int]:
    """The ``dims`` a chain-cnn search used, read off the length of its stored tokens (the two
    spaces of one depth differ in length)."""
    if tokens_length is None:
        return None
    settings = {k: v for k, v in stored["space"].items() if k not in ("name", "dims")}
    for dims in (1, 2):
        try:
            if len(create_space("chain-cnn", **settings, dims=dims).decisions) == tokens_length:
                return dims
        except (TypeError, ValueError):
            return None
    return None


def migrate_config(stored: Dict[str, Any], tokens_length: Optional[int]) -> Dict[str, Any]:
    """A stored config completed the way today's search stores it. Stores written before the
    stored config was complete lack chain-cnn's ``dims`` (derived from the data): it is read off
    the stored tokens, or 1 (the default then) when there are none."""
    stored = dict(stored)
    space = dict(stored.get("space") or {})
    if space.get("name") == "chain-cnn" and "dims" not in space:
        space["dims"] = _chain_cnn_dims({**stored, "space": space}, tokens_length) or 1
        stored["space"] = space
    return stored


def _same_data(stored: Dict[str, Any], wanted: Dict[str, Any]) -> List[str]:
    """``["dataset"]`` when the data is the same by its fingerprint, wherever the file now lies
    (data is identified by content, so moved data can be pointed to)."""
    fingerprint = stored.get("data_fingerprint")
    return ["dataset"] if fingerprint is not None and fingerprint == wanted.get("data_fingerprint") else []


def read_config(store: Store) -> Optional[Dict[str, Any]]:
    """The complete config of the search in ``store`` (migrated in memory when the store is old)."""
    stored = store.config()
    if stored is None:
        return None
    trials = store.trials()
    return migrate_config(stored, len(trials[0].tokens) if trials else None)


def _with_defaults(stored: Dict[str, Any]) -> Dict[str, Any]:
    """A stored config with the settings added since it was written at their defaults, so that
    a store from an older nasforge compares equal to the same search today."""
    settings = {k: v for k, v in stored.items() if k != "data_fingerprint"}
    try:
        full = SearchConfig.from_dict(settings).to_dict()
    except ConfigError:
        return stored  # differences() will name what does not match
    if "data_fingerprint" in stored:
        full["data_fingerprint"] = stored["data_fingerprint"]
    return full


def run_search(config: SearchConfig, experiment: str | Path, resume: bool = False,
               on_progress: Optional[Callable[[Progress], None]] = None,
               data: Optional[Dataset] = None) -> SearchResult:
    """Run (or resume) a search; returns the best trials. The store is ``experiment/trials.sqlite``."""
    experiment = Path(experiment)
    path = store_path(experiment)
    config = SearchConfig.from_dict(config.to_dict())  # the caller's object is left as it was
    config.dataset = dataset_reference(config.dataset)
    with _sigterm_as_interrupt():
        _check_start(experiment, path, resume)
        given = data
        parts = build_parts(config, data)  # every component is checked before the store is touched
        wanted = _stored_config(config, parts)
        new_folder = not experiment.exists()
        with ExperimentLock(experiment):  # one writer per experiment, from here until the store is closed
            _check_start(experiment, path, resume)  # again: another writer may have run meanwhile
            new_store = not path.exists()
            store = Store(path)
            try:
                stored = read_config(store)
                if resume and stored is not None:
                    diff = differences(_with_defaults(stored), wanted, ignore=RUN_ONLY + _same_data(stored, wanted))
                    if diff:
                        raise ConfigError("cannot resume with different settings: " + "; ".join(diff))
                if resume:
                    store.latest_strategy_state()  # a damaged checkpoint is refused before anything is written
                if resume and config.budget < store.numbers_used():
                    raise ConfigError(
                        f"the budget ({config.budget}) is below the {store.numbers_used()} trials this experiment "
                        f"has already used; resume with a budget of at least {store.numbers_used()}")
                store.set_config(wanted)
                recipe = EstimatorRecipe({k: v for k, v in wanted.items() if k != "data_fingerprint"}, given)
                return _Loop(parts, store, experiment, on_progress).run(resume, recipe)
            except BaseException:
                if new_store:
                    _discard_unused(store, experiment, new_folder)
                raise
            finally:
                store.close()


def _check_start(experiment: Path, path: Path, resume: bool) -> None:
    """Refuse a new search over trials, or a resume with nothing to resume (reads only). A store
    without tables (a creation cut short) counts as none."""
    try:
        if path.exists() and not resume:
            with Store(path, readonly=True) as existing:
                if existing.numbers_used():
                    holder = running_writer(experiment)
                    if holder:  # a search is writing it now: say which, as the lock would
                        raise locked_error(experiment, holder)
                    raise ConfigError(
                        f"experiment {experiment} already holds trials; resume it with --resume, "
                        "or choose another --experiment directory")
    except EmptyStoreError:
        pass
    if resume and not path.exists():
        raise ConfigError(f"nothing to resume: no store at {path}")
    if resume:
        try:
            Store(path, readonly=True).close()
        except EmptyStoreError:
            raise ConfigError(f"nothing to resume: {path} holds no experiment (its creation was cut short); "
                              "start the search again without --resume") from None


@dataclass
class _Running:
    number: int
    attempt: int
    tokens: tuple
    arch_hash: str
    seed: int
    info: Dict[str, Any]
    started: float = field(default_factory=time.time)


class _Loop:
    """One search's driver: keeps the executor's slots busy and records every event."""

    def __init__(self, parts: Parts, store: Store, experiment: Path,
                 on_progress: Optional[Callable[[Progress], None]]):
        self.parts, self.store, self.experiment, self.on_progress = parts, store, experiment, on_progress
        self.config, self.strategy, self.objective = parts.config, parts.strategy, parts.objective
        self.executor = parts.executor
        self.retries_allowed = retries_allowed(parts.config)
        self.running: Dict[int, _Running] = {}
        self.retries: deque = deque()
        self.consecutive_failures = 0
        self.run_times: List[float] = []
        self.start = time.perf_counter()
        self.checkpoint = experiment / ESTIMATOR_CHECKPOINT
        self.pruning = getattr(parts.estimator, "pruning", None)
        self.max_epochs = int(getattr(getattr(parts.estimator, "recipe", None), "epochs", 0) or 0)
        self.histories = [(t.number, t.metrics["val_acc_history"]) for t in store.trials(["COMPLETE", "PRUNED"])
                          if "val_acc_history" in t.metrics] if self.pruning is not None else []
        self.done = store.count_finished()  # progress is kept here, not queried from the store per trial
        self.numbers_used = store.numbers_used()  # budget slots taken, likewise
        best = store.best(1, self.objective.direction)
        self.best: Optional[TrialRecord] = best[0] if best else None

    # ---- the loop -----------------------------------------------------------------------------
    def run(self, resume: bool, recipe: EstimatorRecipe) -> SearchResult:
        if resume:
            state = self.store.latest_strategy_state()
            if state is not None:
                self.strategy.load_state_dict(state)
            if hasattr(self.parts.estimator, "load") and self.checkpoint.exists():
                self.parts.estimator.load(self.checkpoint)
            self.store.mark_interrupted("interrupted: the search stopped while this trial ran")
        self.retries.extend(self.store.pending_retries())
        self.report(None)
        reason = "interrupted: the search stopped on an error while this trial ran"
        try:
            self.executor.start(recipe, self.parts.estimator)
            while True:
                self.fill()
                if not self.running:
                    break
                for outcome in self.executor.wait():
                    self.finish(outcome)
            reason = None
        except KeyboardInterrupt as exc:
            reason = "interrupted: the search received SIGTERM" if isinstance(exc, SearchTerminated) \
                else "interrupted by the user (Ctrl+C)"
            raise
        except SearchStopped as exc:
            reason = f"the search stopped: {exc}"
            raise
        finally:
            self.executor.shutdown()
            if reason is not None:  # every RUNNING row is this run's (the driver alone writes), even one
                self.store.mark_interrupted(reason)  # recorded a moment before the interrupt
        trials = self.store.trials()
        return SearchResult(
            self.experiment,
            self.store.best(5, self.objective.direction),
            sum(t.state == "COMPLETE" for t in trials),
            sum(t.state == "FAILED" for t in trials),
            time.perf_counter() - self.start,
            sum(t.state == "PRUNED" for t in trials),
            self.parts.space,
        )

    def fill(self) -> None:
        """Start trials until every slot is busy or nothing is left to start."""
        while len(self.running) < self.executor.slots:
            if self.retries:
                old = self.retries.popleft()
                trial_id = self.store.add_trial(old.number, old.tokens, old.arch_hash, old.seed, old.info,
                                                attempt=old.attempt + 1, retry_of=old.id)
                self.submit(trial_id, _Running(old.number, old.attempt + 1, tuple(old.tokens), old.arch_hash,
                                               old.seed, old.info))
                continue
            number = self.numbers_used
            if number >= self.config.budget:
                return
            self.numbers_used += 1
            proposal = self.strategy.ask()
            seed = trial_seed(self.config.seed, number)
            try:
                tokens = self.parts.space.validate(proposal.tokens)
                arch_hash, invalid = self.parts.space.arch_hash(tokens), None
            except InvalidArchitectureError as exc:  # the strategy proposed something the space refuses
                tokens, arch_hash, invalid = tuple(proposal.tokens), "invalid", str(exc)
            trial_id = self.store.add_trial(number, tokens, arch_hash, seed, proposal.info,
                                            strategy_state=self.strategy.state_dict())
            run = _Running(number, 0, tuple(tokens), arch_hash, seed, dict(proposal.info))
            if invalid is not None:
                self.running[trial_id] = run
                self.finish(Outcome(trial_id, "invalid", error=f"invalid architecture: {invalid}"))
            else:
                self.submit(trial_id, run)

    def submit(self, trial_id: int, run: _Running) -> None:
        self.running[trial_id] = run
        self.report(None)  # a display shows the trial now running
        context = {}
        if self.pruning is not None:  # the values this child's rungs compare with, as of now
            context["rungs"] = rung_values(self.histories, self.pruning, run.number, self.max_epochs)
        self.executor.submit(Task(trial_id, run.tokens, run.seed, context))

    def finish(self, outcome: Outcome) -> None:
        """Record one outcome, tell the strategy, retry a lost trial, stop after too many failures."""
        run = self.running.pop(outcome.trial_id)
        metrics, error = dict(outcome.metrics), outcome.error
        evaluation: Optional[Evaluation] = None
        if outcome.kind == OK:
            try:
                evaluation = self.objective.evaluate(metrics)
                if not math.isfinite(evaluation.value):
                    raise ValueError(f"objective value is {evaluation.value}")
            except (KeyError, ValueError) as exc:
                evaluation, error = None, f"{type(exc).__name__}: {exc}"
        if outcome.kind in RETRYABLE and run.attempt < self.retries_allowed:
            self.store.finish_trial(outcome.trial_id, "FAILED", metrics, None, None, error,
                                    needs_retry=True, worker=outcome.worker)
            record = self.store.trial(outcome.trial_id)
            self.retries.append(record)
            self.report(record)
            return
        if evaluation is not None:
            state, value, reward, feasible = "COMPLETE", evaluation.value, evaluation.reward, evaluation.feasible
            if evaluation.violations:
                metrics["violations"] = list(evaluation.violations)
            if "val_acc_history" in metrics and self.pruning is not None:
                self.histories.append((run.number, list(metrics["val_acc_history"])))
            if "pruned_at" in metrics:
                state = "PRUNED"  # stopped by successive halving: recorded, never the best
            if "val_acc_promised" in metrics:  # the strategy learns at the fidelity every child reaches
                try:
                    reward = self.objective.evaluate({**metrics, "val_acc": metrics["val_acc_promised"]}).reward
                except (KeyError, ValueError):
                    pass
        else:
            state, value, reward, feasible = "FAILED", None, self.objective.failure_penalty, False
        info = {**run.info, "metrics": metrics, "feasible": feasible}
        updates_before = getattr(self.strategy, "updates", None)
        try:
            self.strategy.tell(run.tokens, reward, info)
        except InvalidArchitectureError:
            if outcome.kind != "invalid":
                raise  # a valid architecture the strategy cannot take back is a bug, not a bad child
        keep = getattr(self.strategy, "updates", None) != updates_before
        self.store.finish_trial(outcome.trial_id, state, metrics, value, reward, error,
                                strategy_state=self.strategy.state_dict(), keep_state=keep,
                                feasible=feasible, worker=outcome.worker)
        if hasattr(self.parts.estimator, "save") and self.executor.name == "inline":
            self.parts.estimator.save(self.checkpoint)  # shared weights: after the trial that trained them
        record = self.store.trial(outcome.trial_id)
        self.done += 1
        self.run_times.append(record.duration or 0.0)
        self.consecutive_failures = self.consecutive_failures + 1 if state == "FAILED" else 0
        self.report(record)
        if self.consecutive_failures >= self.config.max_consecutive_failures:
            raise SearchStopped(f"stopped after {self.consecutive_failures} consecutive failed trials; "
                                f"last error: {record.error}")

    def report(self, last: Optional[TrialRecord]) -> None:
        if self.on_progress is None:
            return
        if last is not None and last.state == "COMPLETE" and last.feasible and last.objective is not None and (
                self.best is None or (last.objective > self.best.objective if self.objective.direction == "maximize"
                                      else last.objective < self.best.objective)):
            self.best = last
        done, best = self.done, [self.best] if self.best is not None else []
        elapsed = time.perf_counter() - self.start
        mean = float(np.mean(self.run_times)) if self.run_times else None
        slots = max(self.executor.slots, 1)
        eta = None if mean is None else mean * max(self.config.budget - done, 0) / slots
        running = {run.number: run.started for run in self.running.values()}
        metric = getattr(self.objective.objective, "metric", "objective")
        self.on_progress(Progress(done, self.config.budget, last, best[0] if best else None, elapsed, eta,
                                  running, metric))

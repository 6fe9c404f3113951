"""The search loop: ask -> record -> evaluate -> record -> tell, resumable from the store.

Both the CLI and the Python API call :func:`run_search`. Every step that changes the strategy is
written to the store in the same transaction as the trial it concerns, so a search stopped at any
point (crash, ``kill -9``, Ctrl+C) resumes where it was: trials that were running are recorded as
interrupted and run again as retries, with the same tokens and seed.
"""

from __future__ import annotations

import math
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from .config import ConfigError, SearchConfig, differences
from .data.datasets import Dataset, load_dataset
from .estimators.base import Estimator, TrialFailed, create_estimator
from .objectives.rewards import Objective
from .spaces.base import InvalidArchitectureError, SearchSpace, create_space
from .store import Store, TrialRecord
from .strategies.base import Strategy, create_strategy

STORE_FILE = "trials.sqlite"


class SearchStopped(RuntimeError):
    """The search stopped itself (for example after too many consecutive failures)."""


@dataclass
class Progress:
    """What a progress display needs after each trial."""

    done: int
    budget: int
    last: Optional[TrialRecord]
    best: Optional[TrialRecord]
    elapsed: float
    eta: Optional[float]


@dataclass
class SearchResult:
    experiment: Path
    best: List[TrialRecord] = field(default_factory=list)
    completed: int = 0
    failed: int = 0
    elapsed: float = 0.0


def trial_seed(seed: int, number: int) -> int:
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


def store_path(experiment: str | Path) -> Path:
    return Path(experiment) / STORE_FILE


@dataclass
class Parts:
    """The wired components of one search."""

    config: SearchConfig
    data: Optional[Dataset]
    space: SearchSpace
    estimator: Estimator
    strategy: Strategy
    objective: Objective


def is_tabular(space_name: str) -> bool:
    """Benchmark spaces are looked up in a table instead of trained."""
    from .benchmarks import TabularSpace
    from .spaces.base import SPACES

    factory = SPACES.get(space_name)
    return isinstance(factory, type) and issubclass(factory, TabularSpace)


def build_parts(config: SearchConfig, data: Optional[Dataset] = None) -> Parts:
    """Create and check every component before any trial runs (bad input fails here)."""
    config.check()
    try:
        objective = Objective(**config.reward)
    except TypeError as exc:
        raise ConfigError(f"[reward]: {exc}") from None
    objective.check()
    space_settings = {k: v for k, v in config.space.items() if k != "name"}
    tabular = is_tabular(config.space["name"])
    if not tabular and data is None:
        data = load_dataset(config.dataset)
    if config.space["name"] == "chain-cnn" and "dims" not in space_settings:
        space_settings["dims"] = data.dims
    try:
        space = create_space(config.space["name"], **space_settings)
    except TypeError as exc:
        raise ConfigError(f"[space]: {exc}") from None
    try:
        if tabular:  # a benchmark space answers by lookup; [training] settings do not apply
            lookup_settings = {k: v for k, v in config.training.items() if k == "seconds_per_query"}
            estimator = create_estimator("tabular", **lookup_settings)
            estimator.setup(space)
        else:
            estimator = create_estimator("train", dataset=config.dataset, **config.training)
            estimator.setup(space, data)
    except TypeError as exc:
        raise ConfigError(f"[training]: {exc}") from None
    strategy_settings = {k: v for k, v in config.strategy.items() if k != "name"}
    try:
        strategy = create_strategy(config.strategy["name"], **strategy_settings)
    except TypeError as exc:
        raise ConfigError(f"[strategy]: {exc}") from None
    strategy.setup(space, config.seed)
    return Parts(config, data, space, estimator, strategy, objective)


def _stored_config(config: SearchConfig, data: Optional[Dataset]) -> Dict[str, Any]:
    stored = config.to_dict()
    if data is not None:
        stored["data_fingerprint"] = data.fingerprint()
    return stored


def run_search(config: SearchConfig, experiment: str | Path, resume: bool = False,
               on_progress: Optional[Callable[[Progress], None]] = None,
               data: Optional[Dataset] = None) -> SearchResult:
    """Run (or resume) a search; returns the best trials. The store is ``experiment/trials.sqlite``."""
    experiment = Path(experiment)
    path = store_path(experiment)
    if path.exists() and not resume:
        with Store(path, create=False) as existing:
            if existing.trials():
                raise ConfigError(
                    f"experiment {experiment} already holds trials; resume it with --resume, "
                    "or choose another --experiment directory")
    if resume and not path.exists():
        raise ConfigError(f"nothing to resume: no store at {path}")
    parts = build_parts(config, data)  # every component is checked before the store is touched
    wanted = _stored_config(config, parts.data)
    store = Store(path)
    try:
        stored = store.config()
        if resume and stored is not None:
            diff = differences(stored, wanted, ignore=["budget", "max_consecutive_failures"])
            if diff:
                raise ConfigError("cannot resume with different settings: " + "; ".join(diff))
        store.set_config(wanted)
        return _loop(parts, store, experiment, resume, on_progress)
    finally:
        store.close()


def _loop(parts: Parts, store: Store, experiment: Path, resume: bool,
          on_progress: Optional[Callable[[Progress], None]]) -> SearchResult:
    config, strategy, objective = parts.config, parts.strategy, parts.objective
    if resume:
        state = store.latest_strategy_state()
        if state is not None:
            strategy.load_state_dict(state)
        store.mark_interrupted("interrupted: the search stopped while this trial ran")
    start = time.perf_counter()
    run_times: List[float] = []
    consecutive_failures = 0

    def report(last: Optional[TrialRecord]) -> None:
        if on_progress is None:
            return
        done = len({t.number for t in store.trials() if t.state in ("COMPLETE", "FAILED") and not t.needs_retry})
        best = store.best(1, objective.direction)
        elapsed = time.perf_counter() - start
        mean = float(np.mean(run_times)) if run_times else None
        eta = None if mean is None else mean * max(config.budget - done, 0)
        on_progress(Progress(done, config.budget, last, best[0] if best else None, elapsed, eta))

    report(None)
    try:
        for old in store.pending_retries():
            trial_id = store.add_trial(old.number, old.tokens, old.arch_hash, old.seed, old.info,
                                       attempt=old.attempt + 1, retry_of=old.id)
            record = _run_trial(parts, store, trial_id, tuple(old.tokens), old.seed, old.info)
            run_times.append(record.duration or 0.0)
            report(record)
        while store.numbers_used() < config.budget:
            number = store.numbers_used()
            proposal = strategy.ask()
            seed = trial_seed(config.seed, number)
            try:
                tokens = parts.space.validate(proposal.tokens)
                arch_hash, invalid = parts.space.arch_hash(tokens), None
            except InvalidArchitectureError as exc:  # the strategy proposed something the space refuses
                tokens, arch_hash, invalid = tuple(proposal.tokens), "invalid", str(exc)
            trial_id = store.add_trial(number, tokens, arch_hash, seed, proposal.info,
                                       strategy_state=strategy.state_dict())
            record = _run_trial(parts, store, trial_id, tokens, seed, proposal.info, invalid)
            run_times.append(record.duration or 0.0)
            consecutive_failures = consecutive_failures + 1 if record.state == "FAILED" else 0
            report(record)
            if consecutive_failures >= config.max_consecutive_failures:
                raise SearchStopped(
                    f"stopped after {consecutive_failures} consecutive failed trials; last error: {record.error}")
    except KeyboardInterrupt:
        store.mark_interrupted("interrupted by the user (Ctrl+C)")
        raise
    trials = store.trials()
    return SearchResult(
        experiment,
        store.best(5, objective.direction),
        sum(t.state == "COMPLETE" for t in trials),
        sum(t.state == "FAILED" for t in trials),
        time.perf_counter() - start,
    )


def _run_trial(parts: Parts, store: Store, trial_id: int, tokens, seed: int,
               info: Dict[str, Any], invalid: Optional[str] = None) -> TrialRecord:
    """Evaluate one architecture; any failure of the child fails this trial only."""
    objective, strategy = parts.objective, parts.strategy
    metrics: Dict[str, Any] = {}
    error: Optional[str] = None
    value: Optional[float] = None
    try:
        if invalid is not None:
            raise TrialFailed(f"invalid architecture: {invalid}")
        metrics = parts.estimator.evaluate(tokens, seed)
        value = objective.value(metrics)
    except TrialFailed as exc:
        error = str(exc)
    except Exception as exc:  # noqa: BLE001 - a bad child must never stop the search
        last = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        where = f" ({Path(last.filename).name}:{last.lineno})" if last else ""
        error = f"{type(exc).__name__}: {exc}{where}"
    if error is None and value is not None and math.isfinite(value):
        reward = objective.reward(value)
        state = "COMPLETE"
    else:
        reward, value, state = objective.failure_penalty, None, "FAILED"
    updates_before = getattr(strategy, "updates", None)
    try:
        strategy.tell(tokens, reward, info)
    except InvalidArchitectureError:
        if invalid is None:
            raise  # a valid architecture the strategy cannot take back is a bug, not a bad child
    keep = getattr(strategy, "updates", None) != updates_before
    store.finish_trial(trial_id, state, metrics, value, reward, error,
                       strategy_state=strategy.state_dict(), keep_state=keep)
    return store.trial(trial_id)

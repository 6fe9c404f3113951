"""One search's driver: ask -> record -> submit ... outcome -> record -> tell.

It keeps every slot of its executor busy: it asks the strategy for a new architecture whenever a
worker is free and tells it each result as it arrives, in whatever order. Every step that changes
the strategy is written to the store in the same transaction as the trial it concerns. It talks
to the estimator, the strategy and the executor only through what their base classes declare
(``Estimator.pruning`` / ``fidelity_metrics`` / ``save``, ``Strategy.updates``,
``Executor.in_driver``).
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from .estimators.base import derived_seed
from .estimators.fidelity import rung_values
from .execution import EstimatorRecipe, Outcome, Task
from .execution.base import OK, RETRYABLE
from .objectives.rewards import Evaluation
from .parts import Parts, retries_allowed
from .spaces.base import InvalidArchitectureError, SearchSpace
from .store import Store, TrialRecord
from .strategies.base import one_torch_thread


class SearchStopped(RuntimeError):
    """The search stopped itself (for example after too many consecutive failures)."""


class SearchTerminated(KeyboardInterrupt):
    """SIGTERM (a scheduler, ``docker stop``) stops a search the way Ctrl+C does: running trials are
    marked for a retry and the workers stopped. The CLI exits 143 for it, 130 for Ctrl+C."""


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
    return derived_seed(seed, number)


@dataclass
class _Running:
    number: int
    attempt: int
    tokens: tuple
    arch_hash: str
    seed: int
    info: Dict[str, Any]
    started: float = field(default_factory=time.time)


class Loop:
    """One search's driver: keeps the executor's slots busy and records every event."""

    def __init__(self, parts: Parts, store: Store, experiment: Path, checkpoint: Path,
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
        self.checkpoint = checkpoint  # where an estimator that learns across trials saves itself
        self.pruning = parts.estimator.pruning
        self.keys = parts.estimator.fidelity_metrics
        self.max_epochs = parts.estimator.max_epochs()
        self.histories = [(t.number, t.metrics[self.keys.history]) for t in store.trials(["COMPLETE", "PRUNED"])
                          if self.keys.history in t.metrics] if self.pruning is not None else []
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
            if self.checkpoint.exists():
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
        final = self.store.final_states()  # per budget slot: an interrupted attempt run again is not a failure
        return SearchResult(
            self.experiment,
            self.store.best(5, self.objective.direction),
            final.get("COMPLETE", 0),
            final.get("FAILED", 0),
            time.perf_counter() - self.start,
            final.get("PRUNED", 0),
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
            with one_torch_thread():
                proposal = self.strategy.ask()
                state = self.strategy.state_dict()
            seed = trial_seed(self.config.seed, number)
            try:
                tokens = self.parts.space.validate(proposal.tokens)
                arch_hash, invalid = self.parts.space.arch_hash(tokens), None
            except InvalidArchitectureError as exc:  # the strategy proposed something the space refuses
                tokens, arch_hash, invalid = tuple(proposal.tokens), "invalid", str(exc)
            trial_id = self.store.add_trial(number, tokens, arch_hash, seed, proposal.info, strategy_state=state)
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
            if self.keys.history in metrics and self.pruning is not None:
                self.histories.append((run.number, list(metrics[self.keys.history])))
            if self.keys.pruned_at in metrics:
                state = "PRUNED"  # stopped by successive halving: recorded, never the best
            if self.keys.promised in metrics:  # the strategy learns at the fidelity every child reaches
                try:
                    promised = {**metrics, self.keys.metric: metrics[self.keys.promised]}
                    reward = self.objective.evaluate(promised).reward
                except (KeyError, ValueError):
                    pass
        else:
            state, value, reward, feasible = "FAILED", None, self.objective.failure_penalty, False
        info = {**run.info, "metrics": metrics, "feasible": feasible}
        updates_before = self.strategy.updates
        with one_torch_thread():
            try:
                self.strategy.tell(run.tokens, reward, info)
            except InvalidArchitectureError:
                if outcome.kind != "invalid":
                    raise  # a valid architecture the strategy cannot take back is a bug, not a bad child
            strategy_state = self.strategy.state_dict()
        keep = self.strategy.updates != updates_before  # the state after a policy change is kept
        self.store.finish_trial(outcome.trial_id, state, metrics, value, reward, error,
                                strategy_state=strategy_state, keep_state=keep,
                                feasible=feasible, worker=outcome.worker)
        if self.executor.in_driver:
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
        metric = self.objective.label
        self.on_progress(Progress(done, self.config.budget, last, best[0] if best else None, elapsed, eta,
                                  running, metric))


"""What every executor is: something that runs evaluations and hands their outcomes back.

An executor knows nothing of strategies or of the store: the search loop submits tasks (trial id,
tokens, seed), waits for outcomes, and alone writes the store. Each worker builds its own
estimator once from a picklable :class:`EstimatorRecipe`, so training code, datasets and tables
are loaded where the work runs, not shipped with every task.

Outcomes carry a ``kind`` so the loop can decide what to do with a failure:

* ``ok``: metrics came back.
* ``error``: the evaluation raised (bad architecture, NaN loss, ...); the message says what.
* ``timeout`` / ``memory``: the trial went over its time or memory limit and its worker was stopped.
* ``lost``: the worker died under the trial (killed, crashed, node lost): worth a retry.
"""

from __future__ import annotations

import os
import time
import traceback
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..registry import Registry

OK, ERROR, TIMEOUT, MEMORY, LOST = "ok", "error", "timeout", "memory", "lost"
RETRYABLE = (LOST,)  # the others would most likely happen again with the same tokens and seed


@dataclass(frozen=True)
class Task:
    trial_id: int
    tokens: Tuple[int, ...]
    seed: int
    context: Dict[str, Any] = field(default_factory=dict)  # e.g. the rung values successive halving compares


@dataclass
class Outcome:
    trial_id: int
    kind: str
    metrics: Dict[str, Any] = field(default_factory=dict)
    error: Optional[str] = None
    worker: Optional[str] = None
    seconds: Optional[float] = None


@dataclass
class EstimatorRecipe:
    """Everything a worker needs to build the estimator: the search config (a dict), the dataset
    the driver loaded (or None: the worker loads it by name), and ``builder``, the function that turns the two
    into a ready estimator (``nasforge.build.estimator_from_recipe``). The layer above hands the
    builder down, so executors import nothing of it; a module-level function pickles by name."""

    builder: Callable[[Dict[str, Any], Any], Any]
    config: Dict[str, Any]
    data: Any = None

    def build(self):
        return self.builder(self.config, self.data)


def describe_exception(exc: BaseException) -> str:
    """One line: the exception and the place in the code that raised it."""
    last = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" ({Path(last.filename).name}:{last.lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


def evaluate_task(estimator, task: Task) -> Outcome:
    """Run one evaluation; any exception of the child becomes an ``error`` outcome."""
    from ..estimators.base import TrialFailed  # lazy: --help imports this module (the executors' names)

    start = time.perf_counter()
    estimator.context = task.context
    try:
        metrics = estimator.evaluate(task.tokens, task.seed)
        return Outcome(task.trial_id, OK, dict(metrics), seconds=time.perf_counter() - start)
    except TrialFailed as exc:
        error = str(exc)
    except Exception as exc:  # noqa: BLE001 - a bad child must never stop the search
        error = describe_exception(exc)
    return Outcome(task.trial_id, ERROR, error=error, seconds=time.perf_counter() - start)


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class Executor(ABC):
    """Runs up to ``slots`` evaluations at once."""

    name = "executor"
    #: Evaluates with the driver's own estimator, in the search's process (so what the estimator
    #: learns is the driver's: the search checkpoints it after each trial).
    in_driver: bool = False

    def __init__(self, workers: int = 1, trial_timeout: Optional[float] = None,
                 memory_limit_mb: Optional[float] = None, **settings: Any):
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise ValueError(f"[execution] workers must be a positive integer, got {workers!r}")
        for key, value in (("trial_timeout", trial_timeout), ("memory_limit_mb", memory_limit_mb)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
                raise ValueError(f"[execution] {key} must be a positive number of "
                                 f"{'seconds' if key == 'trial_timeout' else 'MiB'}, got {value!r}")
        self.workers = workers
        self.trial_timeout = None if trial_timeout is None else float(trial_timeout)
        self.memory_limit_mb = None if memory_limit_mb is None else float(memory_limit_mb)

    @property
    def slots(self) -> int:
        return self.workers

    @abstractmethod
    def start(self, recipe: EstimatorRecipe, estimator=None) -> None:
        """Prepare the workers; ``estimator`` is the driver's own, usable by an in-process executor."""

    @abstractmethod
    def submit(self, task: Task) -> None:
        """Start a task; call only while :meth:`running` < :attr:`slots`."""

    @abstractmethod
    def running(self) -> int:
        ...

    @abstractmethod
    def wait(self, timeout: Optional[float] = None) -> List[Outcome]:
        """Outcomes of finished tasks: at least one, unless nothing runs or ``timeout`` passed."""

    @abstractmethod
    def shutdown(self) -> None:
        """Stop every worker (running tasks are abandoned: the store marks them)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()


EXECUTORS: Registry[Executor] = Registry("executor", {
    "inline": "nasforge.execution.inline", "local": "nasforge.execution.local",
    "ray": "nasforge.execution.ray_executor",
})


def create_executor(name: str, **settings: Any) -> Executor:
    return EXECUTORS.create(name, **settings)


def limits_text(kind: str, seconds: Optional[float] = None, rss_mb: Optional[float] = None,
                limit: Optional[float] = None) -> str:
    if kind == TIMEOUT:
        return f"time limit: the trial ran longer than {limit:g} s and was stopped"
    if kind == MEMORY:
        return f"memory limit: the worker used {rss_mb:.0f} MiB, over the limit of {limit:g} MiB, and was stopped"
    return kind



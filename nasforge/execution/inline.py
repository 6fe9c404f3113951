"""The in-process executor: evaluations run in the driver, one at a time.

For tabular benchmarks (a lookup costs microseconds, a process hop would dominate) and for
debugging (breakpoints and tracebacks land in one process). It cannot enforce time or memory
limits: a child that hangs or exhausts memory takes the driver with it; use ``local`` for that.
"""

from __future__ import annotations

from typing import List, Optional

from .base import EXECUTORS, EstimatorRecipe, Executor, Outcome, Task, evaluate_task


@EXECUTORS.register("inline")
class InlineExecutor(Executor):
    name = "inline"
    in_driver = True

    def __init__(self, workers: int = 1, trial_timeout: Optional[float] = None,
                 memory_limit_mb: Optional[float] = None, **settings):
        super().__init__(workers, None, None)
        if workers != 1:
            raise ValueError("[execution] the inline executor runs one trial at a time: use workers = 1, "
                             "or the local executor for parallel workers")
        if trial_timeout is not None or memory_limit_mb is not None:
            raise ValueError("[execution] the inline executor cannot enforce trial_timeout or memory_limit_mb; "
                             "use the local executor (the default for training) for limits")
        self.estimator = None
        self.queue: List[Task] = []

    def start(self, recipe: EstimatorRecipe, estimator=None) -> None:
        self.estimator = estimator if estimator is not None else recipe.build()

    def submit(self, task: Task) -> None:
        if self.queue:
            raise RuntimeError("the inline executor is busy")
        self.queue.append(task)

    def running(self) -> int:
        return len(self.queue)

    def wait(self, timeout: Optional[float] = None) -> List[Outcome]:
        if not self.queue:
            return []
        task = self.queue.pop(0)
        outcome = evaluate_task(self.estimator, task)
        outcome.worker = "inline"
        return [outcome]

    def shutdown(self) -> None:
        self.queue.clear()

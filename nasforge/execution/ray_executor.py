"""The Ray executor: each evaluation is a Ray task with declared resources, for a cluster.

``address`` joins an existing cluster (``ray start --head`` on one node, ``ray start
--address=...`` on the others); without it a local Ray instance is started on this machine,
listening on loopback only.
Results come back to the driver, which alone writes the store. Each Ray worker process builds
the estimator once per search (cached by the recipe's key) and keeps it for later tasks.

Ray's own task retries are off: a task whose worker or node dies comes back as ``lost`` and the
search loop records the failure and decides on a retry, so every attempt is in the store. Ray is
an optional dependency (``pip install nasforge[ray]``), imported only when this executor is used.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Dict, List, Optional

from .base import (EXECUTORS, LOST, TIMEOUT, EstimatorRecipe, Executor, Outcome, Task, evaluate_task,
                   limits_text)

_ESTIMATORS: Dict[str, Any] = {}  # in each Ray worker process: recipe key -> estimator


def _run_task(key: str, recipe_ref: Any, task: Task) -> Outcome:
    import ray

    estimator = _ESTIMATORS.get(key)
    if estimator is None:
        recipe = ray.get(recipe_ref[0]) if isinstance(recipe_ref, list) else recipe_ref
        estimator = _ESTIMATORS[key] = recipe.build()
    outcome = evaluate_task(estimator, task)
    outcome.worker = f"ray:{ray.get_runtime_context().get_node_id()[:8]}"
    return outcome


def import_ray():
    try:
        import ray
    except ImportError:
        raise ValueError("the ray executor needs Ray: pip install 'nasforge[ray]' (or pip install ray)") from None
    return ray


@EXECUTORS.register("ray")
class RayExecutor(Executor):
    name = "ray"

    def __init__(self, workers: int = 1, trial_timeout: Optional[float] = None,
                 memory_limit_mb: Optional[float] = None, address: Optional[str] = None,
                 cpus_per_trial: float = 1.0, gpus_per_trial: float = 0.0, **settings: Any):
        super().__init__(workers, trial_timeout, memory_limit_mb)
        for key, value in (("cpus_per_trial", cpus_per_trial), ("gpus_per_trial", gpus_per_trial)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"[execution] {key} must be a non-negative number, got {value!r}")
        self.address = address
        self.cpus_per_trial = float(cpus_per_trial)
        self.gpus_per_trial = float(gpus_per_trial)
        self.pending: Dict[Any, Task] = {}
        self.started: Dict[Any, float] = {}
        self.ours = False  # did we start Ray (then we stop it)

    def start(self, recipe: EstimatorRecipe, estimator=None) -> None:
        ray = import_ray()
        if not ray.is_initialized():
            if self.address:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
            else:
                ray.init(num_cpus=max(self.workers, 1) * max(self.cpus_per_trial, 1.0),
                         include_dashboard=False, log_to_driver=False,
                         _node_ip_address="127.0.0.1")  # a private instance: loopback only
            self.ours = True
        if self.memory_limit_mb is not None:
            self.options = {"memory": int(self.memory_limit_mb * 1024 * 1024)}
        else:
            self.options = {}
        self.key = hashlib.sha1(json.dumps(recipe.config, sort_keys=True, default=str).encode()
                                + str(time.time()).encode()).hexdigest()
        self.recipe_ref = [ray.put(recipe)]  # in a list, so Ray passes the reference, not the value
        self.remote = ray.remote(_run_task).options(
            num_cpus=self.cpus_per_trial, num_gpus=self.gpus_per_trial, max_retries=0, **self.options)

    def running(self) -> int:
        return len(self.pending)

    def submit(self, task: Task) -> None:
        ref = self.remote.remote(self.key, self.recipe_ref, task)
        self.pending[ref] = task
        self.started[ref] = time.monotonic()

    def wait(self, timeout: Optional[float] = None) -> List[Outcome]:
        ray = import_ray()
        if not self.pending:
            return []
        step = timeout
        if self.trial_timeout is not None:
            step = 0.05 if timeout is None else min(timeout, 0.05)
        deadline = None if timeout is None else time.monotonic() + timeout
        out: List[Outcome] = []
        while not out:
            ready, _ = ray.wait(list(self.pending), num_returns=len(self.pending), timeout=step)
            for ref in ready:
                task = self.pending.pop(ref)
                self.started.pop(ref, None)
                try:
                    out.append(ray.get(ref))
                except Exception as exc:  # noqa: BLE001 - worker died, node lost, out of memory, ...
                    out.append(Outcome(task.trial_id, LOST, error=f"worker lost: {type(exc).__name__}: "
                                                                  f"{str(exc).splitlines()[0] if str(exc) else ''}"))
            if self.trial_timeout is not None:
                now = time.monotonic()
                for ref, began in list(self.started.items()):
                    if now - began > self.trial_timeout:
                        task = self.pending.pop(ref)
                        self.started.pop(ref)
                        ray.cancel(ref, force=True)
                        out.append(Outcome(task.trial_id, TIMEOUT, seconds=now - began,
                                           error=limits_text(TIMEOUT, limit=self.trial_timeout)))
            if deadline is not None and time.monotonic() >= deadline:
                break
            if not self.pending:
                break
        return out

    def shutdown(self) -> None:
        ray = import_ray()
        for ref in list(self.pending):
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - best effort while stopping
                pass
        self.pending.clear()
        self.started.clear()
        if self.ours and ray.is_initialized():
            ray.shutdown()

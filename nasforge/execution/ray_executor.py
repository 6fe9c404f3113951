"""The Ray executor: each evaluation is a Ray task with declared resources, for a cluster.

``address`` joins an existing cluster (``ray start --head`` on one node, ``ray start
--address=...`` on the others); without it a private Ray instance is started on this machine,
listening on loopback only (see ``_loopback_only``) and sending no usage reports.
Results come back to the driver, which alone writes the store. Each Ray worker process builds
the estimator once per search (cached by the recipe's key) and keeps it for later tasks.

Ray's own task retries are off: a task whose worker or node dies comes back as ``lost`` and the
search loop records the failure and decides on a retry, so every attempt is in the store. Ray is
an optional dependency (``pip install nasforge[ray]``), imported only when this executor is used.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
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


# Ray's switch for a single-machine instance (its default on macOS and Windows): the node address
# stays loopback, and Ray's servers then bind to loopback. Read by ray._private.ray_constants.
_SINGLE_MACHINE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
# Ray's telemetry (a report to usage-stats.ray.io from its dashboard process): off for our instance.
_USAGE_STATS_ENV = "RAY_USAGE_STATS_ENABLED"


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and IPv4-mapped loopback (``::ffff:127.0.0.1``, how Ray's dual-stack
    sockets show a 127.0.0.1 bind)."""
    try:
        ip = ipaddress.ip_address(host.split("%")[0].strip("[]"))
    except ValueError:
        return host == "localhost"
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


@contextlib.contextmanager
def _loopback_only():
    """Keep a Ray instance started inside this block on loopback.

    On Linux Ray turns ``_node_ip_address="127.0.0.1"`` into the machine's external address
    (``services.resolve_ip_for_localhost``), and its GCS, raylet and workers then listen on every
    interface. With clusters disabled (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``) the node address
    stays 127.0.0.1 and every server binds there (measured: tests/test_ray_loopback.py). Ray reads
    that variable when it is first imported, so an already imported Ray gets the same value set
    on its constant; the child processes Ray starts inherit the environment. Both are restored
    afterwards, so nothing outlives the start.
    """
    saved = {key: os.environ.get(key) for key in (_SINGLE_MACHINE_ENV, _USAGE_STATS_ENV)}
    os.environ[_SINGLE_MACHINE_ENV] = "0"
    if saved[_USAGE_STATS_ENV] is None:  # a user's explicit choice stands
        os.environ[_USAGE_STATS_ENV] = "0"
    from ray._private import ray_constants

    cluster = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = cluster
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def start_private_ray(num_cpus: float):
    """Start a Ray instance for this process alone, bound to loopback; refuse (after stopping
    it) if Ray chose another address, rather than run a search exposed on the network."""
    ray = import_ray()
    with _loopback_only():
        context = ray.init(num_cpus=num_cpus, include_dashboard=False, dashboard_host="127.0.0.1",
                           log_to_driver=False, _node_ip_address="127.0.0.1")
    node_ip = context.address_info.get("node_ip_address", "")
    if not is_loopback(node_ip):
        ray.shutdown()
        raise RuntimeError(f"Ray started its local instance on {node_ip}, not on loopback; refusing to "
                           "run trials on a network-visible instance (start one yourself and pass --address)")
    return context


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
                start_private_ray(max(self.workers, 1) * max(self.cpus_per_trial, 1.0))
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

"""The Ray executor: one Ray actor per worker slot, with declared resources, for a cluster.

``address`` joins an existing cluster (``ray start --head`` on one node, ``ray start
--address=...`` on the others); without it a private Ray instance is started on this machine,
listening on loopback only (see ``_loopback_only``) and sending no usage reports.

Each actor builds the estimator and pays its one-off costs (``Estimator.warm_up``) in its
constructor, before it takes a trial. Submitted trials wait in the driver until an actor is ready
and idle, and a trial's clock (``trial_timeout``) starts when it is sent to one, so it measures
the trial alone, never Ray's worker start-up, the estimator's build or a wait for a free actor.
The search starts once one actor is ready; the others join as Ray places them, so on a cluster
too small for every worker the search runs on those it can hold. An actor whose trial runs past
the limit is killed (``timeout``); one that dies under a trial (worker or node lost, out of
memory) gives ``lost``; either way a fresh actor takes the slot once built. An actor that cannot
build the estimator stops the search (every trial would fail the same way). Results come back to
the driver, which alone writes the store.

Ray's own retries are off (no actor restarts, no task retries): the search loop records the
failure and decides on a retry, so every attempt is in the store. Ray is an optional dependency
(``pip install nasforge[ray]``), imported only when this executor is used.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import time
import warnings
from collections import deque
from dataclasses import dataclass
from typing import Any, Deque, List, Optional

from .base import (EXECUTORS, LOST, TIMEOUT, EstimatorRecipe, Executor, Outcome, Task, describe_exception,
                   evaluate_task, limits_text)
from .local import WorkerSetupError
from .process_memory import release_memory

POLL_SECONDS = 0.05  # how often trial clocks are checked while a time limit is set


class RayCapacityWarning(UserWarning):
    """The Ray cluster has fewer CPUs or GPUs than the workers ask for: the search waits for Ray to
    place them all (an autoscaling cluster adds nodes), which without more nodes is forever."""


class TrialActor:
    """One worker slot, as a Ray actor (``ray.remote`` wraps it when the executor starts): it
    builds the estimator once, before it takes any trial, then evaluates one task per call."""

    def __init__(self, recipe: EstimatorRecipe):
        import ray

        self.name = f"ray:{ray.get_runtime_context().get_node_id()[:8]}"
        self.setup_error: Optional[str] = None
        try:
            self.estimator = recipe.build()
            self.estimator.warm_up()  # one-off costs before "ready": the trial clock starts at ready
        except Exception as exc:  # noqa: BLE001 - reported by ready(); the driver stops the search
            self.setup_error = describe_exception(exc)

    def ready(self) -> Optional[str]:
        """None once the estimator is built, else why it could not be."""
        return self.setup_error

    def evaluate(self, task: Task) -> Outcome:
        outcome = evaluate_task(self.estimator, task)
        outcome.worker = self.name
        release_memory()
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


@dataclass
class _Slot:
    actor: Any
    ready: Any  # the reference actor.ready() answers once the estimator is built
    is_ready: bool = False
    task: Optional[Task] = None
    result: Any = None  # the reference of the running evaluation
    started: Optional[float] = None  # when the task was sent to this (ready) actor: its clock


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


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
        self.pool: List[_Slot] = []
        self.queue: Deque[Task] = deque()  # submitted, waiting for a ready, idle actor
        self.done: List[Outcome] = []
        self.ours = False  # did we start Ray (then we stop it)

    # ---- actors -------------------------------------------------------------------------------
    def start(self, recipe: EstimatorRecipe, estimator=None) -> None:
        """Start one actor per worker and wait until one has built its estimator, so that an
        estimator that cannot be built stops the search at once. The others join as Ray places
        them (on a cluster too small for all, the search runs with those it can hold)."""
        ray = import_ray()
        if not ray.is_initialized():
            if self.address:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
            else:
                start_private_ray(max(self.workers, 1) * max(self.cpus_per_trial, 1.0))
            self.ours = True
        memory = {} if self.memory_limit_mb is None else {"memory": int(self.memory_limit_mb * 1024 * 1024)}
        self.actor_class = ray.remote(TrialActor).options(
            num_cpus=self.cpus_per_trial, num_gpus=self.gpus_per_trial, max_restarts=0, max_task_retries=0,
            **memory)
        self.recipe_ref = ray.put(recipe)  # shipped to the cluster once, whatever the number of actors
        self._warn_if_short(ray.cluster_resources())
        self.pool = [self._new_slot() for _ in range(self.workers)]
        ray.wait([slot.ready for slot in self.pool], num_returns=1)
        self._settle_ready(timeout=0)

    def _warn_if_short(self, resources: dict) -> None:
        for name, each in (("CPU", self.cpus_per_trial), ("GPU", self.gpus_per_trial)):
            have, need = resources.get(name, 0.0), each * self.workers
            if need > have:
                warnings.warn(f"{self.workers} Ray workers need {need:g} {name}s and the Ray cluster has "
                              f"{have:g}: trials run on the workers Ray can place, the rest join when it can "
                              "(lower --workers, or add nodes)", RayCapacityWarning, stacklevel=3)

    def _new_slot(self) -> _Slot:
        actor = self.actor_class.remote(self.recipe_ref)
        return _Slot(actor, actor.ready.remote())

    def _replace(self, slot: _Slot) -> None:
        """Kill the slot's actor and start a fresh one, which builds its estimator outside any clock."""
        ray = import_ray()
        with contextlib.suppress(Exception):  # already dead
            ray.kill(slot.actor, no_restart=True)
        self.pool[self.pool.index(slot)] = self._new_slot()

    def _settle_ready(self, timeout: float) -> None:
        """Mark the actors that have built their estimator ready; one that could not, or died
        starting, stops the search (as the local pool does): every trial would fail the same way."""
        ray = import_ray()
        starting = [slot.ready for slot in self.pool if not slot.is_ready]
        answered, _ = ray.wait(starting, num_returns=len(starting), timeout=timeout) if starting else ([], [])
        for slot in [slot for slot in self.pool if not slot.is_ready and slot.ready in answered]:
            try:
                error = ray.get(slot.ready)
            except Exception as exc:  # noqa: BLE001 - the actor died while starting
                error = f"its worker died while starting ({_first_line(exc)})"
            if error is not None:
                self.shutdown()
                raise WorkerSetupError(f"a Ray worker could not build the estimator: {error}")
            slot.is_ready = True

    # ---- tasks --------------------------------------------------------------------------------
    def running(self) -> int:
        return len(self.queue) + sum(slot.task is not None for slot in self.pool)

    def submit(self, task: Task) -> None:
        if self.running() >= self.workers:
            raise RuntimeError("every worker is busy")
        self.queue.append(task)
        self._dispatch()

    def _dispatch(self) -> None:
        """Send waiting trials to ready, idle actors; a trial's clock starts here."""
        for slot in self.pool:
            if not self.queue:
                return
            if slot.is_ready and slot.task is None:
                slot.task = self.queue.popleft()
                slot.result = slot.actor.evaluate.remote(slot.task)
                slot.started = time.monotonic()

    def _finish(self, slot: _Slot, outcome: Outcome, replace: bool = False) -> None:
        slot.task, slot.result, slot.started = None, None, None
        self.done.append(outcome)
        if replace:
            self._replace(slot)

    def _settle_result(self, slot: _Slot) -> None:
        ray = import_ray()
        try:
            outcome = ray.get(slot.result)
        except Exception as exc:  # noqa: BLE001 - worker died, node lost, out of memory, ...
            outcome = Outcome(slot.task.trial_id, LOST, error=f"worker lost: {_first_line(exc)}")
            self._finish(slot, outcome, replace=True)
            return
        self._finish(slot, outcome)

    def _check_clocks(self) -> None:
        now = time.monotonic()
        for slot in list(self.pool):
            if slot.started is not None and now - slot.started > self.trial_timeout:
                self._finish(slot, Outcome(slot.task.trial_id, TIMEOUT, seconds=now - slot.started,
                                           error=limits_text(TIMEOUT, limit=self.trial_timeout)), replace=True)

    def wait(self, timeout: Optional[float] = None) -> List[Outcome]:
        ray = import_ray()
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.done and self.running():
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            step = remaining
            if self.trial_timeout is not None:  # clocks to check: wake up often
                step = POLL_SECONDS if remaining is None else min(POLL_SECONDS, remaining)
            busy = {slot.result: slot for slot in self.pool if slot.task is not None}
            starting = [slot.ready for slot in self.pool if not slot.is_ready]
            answered, _ = ray.wait([*busy, *starting], num_returns=1, timeout=step)
            if answered:  # and every other answer already in
                answered, _ = ray.wait(list(busy), num_returns=len(busy), timeout=0) if busy else ([], [])
                for ref in answered:
                    self._settle_result(busy[ref])
                self._settle_ready(timeout=0)
            if self.trial_timeout is not None:
                self._check_clocks()
            self._dispatch()
            if deadline is not None and time.monotonic() >= deadline:
                break
        done, self.done = self.done, []
        return done

    def shutdown(self) -> None:
        """Kill every actor (running trials are abandoned: the store marks them); stop our Ray."""
        ray = import_ray()
        for slot in self.pool:
            with contextlib.suppress(Exception):  # best effort while stopping
                ray.kill(slot.actor, no_restart=True)
        self.pool = []
        self.queue.clear()
        if self.ours and ray.is_initialized():
            ray.shutdown()

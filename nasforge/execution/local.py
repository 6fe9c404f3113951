"""The local process pool: N worker processes on this machine, the default for real training.

Each worker is a spawned process (no forked torch state) that builds its estimator once and then
evaluates one task at a time. The driver watches every worker: a worker that dies under a task
gives a ``lost`` outcome (retried by the loop), one that runs past ``trial_timeout`` or whose
resident memory passes ``memory_limit_mb`` is killed and gives a ``timeout`` / ``memory``
outcome; a fresh worker takes its place. A result sent within the limit counts with its own time,
however late the driver reads it; one sent after is a timeout.

Torch threads per worker default to cores // workers, so workers x threads never exceeds the
cores: two workers each with two threads on a 2-core machine would slow both down. A worker is
replaced after ``recycle_after`` trials (200 by default): a worker's resident memory was
measured to creep up by a few MiB per hundred trials of real training (caches inside the
libraries, not the search's objects), and a fresh process bounds it for any search length.

Workers are fresh interpreters (``python -c`` with a bootstrap that imports nasforge only, see
``_BOOT``), not ``multiprocessing`` spawn children: spawn re-runs the user's main script in each
child, so the README's example saved as a script without an ``if __name__ == "__main__"`` guard
started a search inside every worker and failed. A worker needs nasforge and the plugin modules
named in the config, never the user's script. The driver's ``sys.path`` and multiprocessing
authkey are handed over first, as spawn does. Where file descriptors cannot be passed to a child
(Windows), workers fall back to multiprocessing spawn, and a script there needs the guard.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait as wait_any
from typing import Any, Dict, List, Optional, Tuple

from .base import (EXECUTORS, LOST, MEMORY, TIMEOUT, EstimatorRecipe, Executor, Outcome, Task, cpu_count,
                   describe_exception, evaluate_task, limits_text)
from .process_memory import release_memory, resident_mb

POLL_SECONDS = 0.05  # how often limits are checked while tasks run


class WorkerSetupError(RuntimeError):
    """A worker could not build its estimator (the driver could, so the environment differs)."""


class MemoryLimitTooLow(ValueError):
    """The memory limit is below what a worker holds before any trial: bad input, said once."""


def _die_with_parent(parent: int) -> None:
    """A worker whose driver was killed (kill -9) must not train on for nobody."""
    try:  # Linux: the kernel kills us when the parent dies
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - elsewhere a thread watches the parent
        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(1.0)
            os._exit(1)

        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent:  # the parent died before the hook was in place
        os._exit(1)


# A worker's first lines: only the standard library until the driver's sys.path is in place (so
# nasforge and plugins resolve as in the driver), never the user's main module. argv: fd, driver PID.
_BOOT = """import sys
from multiprocessing.connection import Connection
conn = Connection(int(sys.argv[1]))
try:
    sys.path[:], authkey = conn.recv()
    import multiprocessing
    multiprocessing.current_process().authkey = authkey
    from nasforge.execution.local import worker_entry
    worker_entry(conn, int(sys.argv[2]))
except (EOFError, BrokenPipeError, ConnectionResetError):  # the driver left (Ctrl+C) before giving it work
    sys.exit(0)
"""


def worker_entry(conn: Connection, parent: int) -> None:
    """Run in a worker started from ``_BOOT``: arm the parent-death hook, then take the recipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the driver's to handle; it stops us
    _die_with_parent(parent)
    os.set_inheritable(conn.fileno(), False)  # a program this worker runs must not keep the driver's line open
    recipe, threads, name = conn.recv()
    _serve(conn, recipe, threads, name)


class _ChildProcess:
    """A worker started by ``subprocess``, with the part of ``multiprocessing.Process``'s interface
    the pool uses. ``sentinel`` (a Linux pidfd) becomes readable when the process ends, even if a
    grandchild still holds the worker's end of the connection; elsewhere the connection's EOF and
    the periodic checks notice a death."""

    def __init__(self, popen: subprocess.Popen):
        self.popen = popen
        self.pid = popen.pid
        self.sentinel: Optional[int] = None
        try:
            self.sentinel = os.pidfd_open(popen.pid)
        except (AttributeError, OSError):
            pass

    def is_alive(self) -> bool:
        return self.popen.poll() is None

    @property
    def exitcode(self) -> Optional[int]:
        return self.popen.poll()  # negative: killed by that signal, as with multiprocessing

    def kill(self) -> None:
        try:
            self.popen.kill()
        except OSError:
            pass

    def join(self, timeout: Optional[float] = None) -> None:
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pass

    def close(self) -> None:
        if self.sentinel is not None:
            os.close(self.sentinel)
            self.sentinel = None


def _start_worker(recipe: EstimatorRecipe, threads: int, name: str) -> Tuple[Any, Connection]:
    """A fresh interpreter running ``_BOOT``, joined to the driver by a socket pair."""
    ours, theirs = socket.socketpair()
    try:
        popen = subprocess.Popen([sys.executable, "-c", _BOOT, str(theirs.fileno()), str(os.getpid())],
                                 pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
    finally:
        theirs.close()
    conn = Connection(ours.detach())
    try:
        conn.send((list(sys.path), bytes(multiprocessing.current_process().authkey)))
        conn.send((recipe, threads, name))
    except (BrokenPipeError, OSError):
        pass  # it died at once; the pool notices its exit
    return _ChildProcess(popen), conn


def _worker_main(conn: Connection, recipe: EstimatorRecipe, threads: int, name: str, parent: int) -> None:
    """A multiprocessing spawn worker (where ``_BOOT`` cannot be used)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the driver's to handle; it stops us
    _die_with_parent(parent)
    _serve(conn, recipe, threads, name)


def _serve(conn: Connection, recipe: EstimatorRecipe, threads: int, name: str) -> None:
    """Build the estimator once, then evaluate the tasks the driver sends until it sends None."""
    import torch

    torch.set_num_threads(threads)
    try:
        estimator = recipe.build()
        estimator.warm_up()  # one-off costs before "ready": the trial timeout starts at ready
    except Exception as exc:  # noqa: BLE001 - reported to the driver, which stops the search
        conn.send(("setup_error", describe_exception(exc)))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        outcome = evaluate_task(estimator, task)
        outcome.worker = name
        try:
            conn.send(("outcome", outcome))
        except (BrokenPipeError, OSError):
            return
        release_memory()


@dataclass
class _Worker:
    name: str
    process: Any
    conn: Connection
    ready: bool = False
    task: Optional[Task] = None
    started: Optional[float] = None  # when the current task began running (after set-up)
    finished: int = 0  # tasks this worker has completed


@EXECUTORS.register("local")
class LocalExecutor(Executor):
    name = "local"

    def __init__(self, workers: int = 1, trial_timeout: Optional[float] = None,
                 memory_limit_mb: Optional[float] = None, threads_per_worker: Optional[int] = None,
                 recycle_after: Optional[int] = 200, **settings: Any):
        super().__init__(workers, trial_timeout, memory_limit_mb)
        if recycle_after is not None and (not isinstance(recycle_after, int) or isinstance(recycle_after, bool)
                                          or recycle_after < 1):
            raise ValueError(f"[execution] recycle_after must be a positive integer or none, got {recycle_after!r}")
        self.recycle_after = recycle_after
        if threads_per_worker is not None and (not isinstance(threads_per_worker, int)
                                               or isinstance(threads_per_worker, bool) or threads_per_worker < 1):
            raise ValueError(f"[execution] threads_per_worker must be a positive integer, got {threads_per_worker!r}")
        self.threads = threads_per_worker or max(1, cpu_count() // workers)
        self.context = multiprocessing.get_context("spawn")
        self.pool: List[_Worker] = []
        self.recipe: Optional[EstimatorRecipe] = None
        self.spawned = 0
        self.done: List[Outcome] = []

    # ---- workers ------------------------------------------------------------------------------
    def _spawn(self) -> _Worker:
        self.spawned += 1
        name = f"local-{self.spawned}"
        if os.name == "posix":
            process, ours = _start_worker(self.recipe, self.threads, name)
            return _Worker(name, process, ours)
        ours, theirs = self.context.Pipe()
        process = self.context.Process(target=_worker_main, name=f"nasforge-{name}", daemon=True,
                                       args=(theirs, self.recipe, self.threads, name, os.getpid()))
        process.start()
        theirs.close()
        return _Worker(name, process, ours)

    @staticmethod
    def _release(worker: _Worker) -> None:
        """Close what the driver holds for a worker that has exited (or been killed and joined)."""
        worker.conn.close()
        if not worker.process.is_alive():
            worker.process.close()

    def _replace(self, worker: _Worker) -> None:
        if worker not in self.pool:  # already replaced (a result and its worker's death seen together)
            return
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(timeout=10)
        self._release(worker)
        self.pool[self.pool.index(worker)] = self._spawn()

    def start(self, recipe: EstimatorRecipe, estimator=None) -> None:
        """Spawn the workers and wait until each has built its estimator, so that a trial's
        recorded time is its own and a worker that cannot start stops the search at once."""
        self.recipe = recipe
        self.pool = [self._spawn() for _ in range(self.workers)]
        for worker in self.pool:
            while not worker.ready:
                if worker.conn.poll(1.0) and self._receive(worker):
                    continue
                worker.process.join(timeout=0.1)
                if not worker.process.is_alive():
                    code = worker.process.exitcode
                    self.shutdown()
                    raise WorkerSetupError(f"a worker process exited while starting (exit code {code})")
        self._check_memory_limit()

    def _check_memory_limit(self) -> None:
        """A memory limit below what a ready worker holds before any trial (torch alone is a few
        hundred MiB) would stop every trial: refused once, saying what a worker needs."""
        if self.memory_limit_mb is None:
            return
        idle = max((resident_mb(w.process.pid) or 0.0) for w in self.pool)
        if idle >= self.memory_limit_mb:
            self.shutdown()
            raise MemoryLimitTooLow(f"the memory limit of {self.memory_limit_mb:g} MiB is below what a worker holds "
                                    f"before any trial ({idle:.0f} MiB: Python, torch and the data); every trial "
                                    f"would be stopped. Give --memory-limit well above {idle:.0f}")

    # ---- tasks --------------------------------------------------------------------------------
    def running(self) -> int:
        return sum(w.task is not None for w in self.pool)

    def submit(self, task: Task) -> None:
        idle = [w for w in self.pool if w.task is None]
        if not idle:
            raise RuntimeError("every worker is busy")
        worker = idle[0]
        worker.task = task
        worker.started = time.monotonic() if worker.ready else None
        try:
            worker.conn.send(task)
        except (BrokenPipeError, OSError):
            pass  # the worker is dead; wait() notices its exit and reports the task lost

    def _finish(self, worker: _Worker, outcome: Outcome) -> None:
        worker.task, worker.started = None, None
        self.done.append(outcome)

    def _receive(self, worker: _Worker) -> bool:
        """Handle one message; False when the pipe is closed (the worker died)."""
        try:
            kind, payload = worker.conn.recv()
        except (EOFError, OSError):
            return False  # it died; its sentinel says so
        if kind == "ready":
            worker.ready = True
            if worker.task is not None:
                worker.started = time.monotonic()
        elif kind == "setup_error":
            self.shutdown()
            raise WorkerSetupError(f"a worker could not build the estimator: {payload}")
        elif kind == "outcome" and worker.task is not None and payload.trial_id == worker.task.trial_id:
            self._finish(worker, self._in_time(payload))
            worker.finished += 1
            if self.recycle_after is not None and worker.finished >= self.recycle_after:
                self._replace(worker)  # a fresh process bounds whatever memory libraries keep
        return True

    def _in_time(self, outcome: Outcome) -> Outcome:
        """A result the worker measured over the time limit was sent after the deadline: a timeout, as
        when the driver stops the trial there, however late the driver read it."""
        if self.trial_timeout is None or outcome.seconds is None or outcome.seconds <= self.trial_timeout:
            return outcome
        return self._timed_out(outcome.trial_id, outcome.worker)

    def _timed_out(self, trial_id: int, worker: Optional[str]) -> Outcome:
        """The trial had the limit and no more: its time is the limit, not when the driver noticed."""
        return Outcome(trial_id, TIMEOUT, worker=worker, seconds=self.trial_timeout,
                       error=limits_text(TIMEOUT, limit=self.trial_timeout))

    def _drain(self, worker: _Worker) -> None:
        """Read what the worker sent before the driver acts on its task (results that came since the last poll)."""
        while worker.task is not None and worker.conn.poll():
            if not self._receive(worker):
                break

    def _check(self, worker: _Worker) -> None:
        """Dead, over time, over memory: each ends the worker's task and replaces the worker."""
        task = worker.task
        if not worker.process.is_alive():
            self._drain(worker)  # a result sent just before it died counts
            if worker.task is not None:
                code = worker.process.exitcode
                how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                self._finish(worker, Outcome(task.trial_id, LOST, worker=worker.name,
                                             error=f"worker lost: its process died ({how}) during the trial"))
            self._replace(worker)
            return
        if task is None or worker.started is None:
            return
        elapsed = time.monotonic() - worker.started
        over_time = self.trial_timeout is not None and elapsed > self.trial_timeout
        rss = resident_mb(worker.process.pid) if self.memory_limit_mb is not None and not over_time else None
        if not over_time and (rss is None or rss <= self.memory_limit_mb):
            return
        self._drain(worker)  # a result that arrived after this round's poll was sent in time: it counts
        if worker.task is None:
            return
        self._finish(worker, self._timed_out(task.trial_id, worker.name) if over_time else
                     Outcome(task.trial_id, MEMORY, worker=worker.name, seconds=elapsed,
                             error=limits_text(MEMORY, rss_mb=rss, limit=self.memory_limit_mb)))
        self._replace(worker)

    def wait(self, timeout: Optional[float] = None) -> List[Outcome]:
        deadline = None if timeout is None else time.monotonic() + timeout
        limits = self.trial_timeout is not None or self.memory_limit_mb is not None
        while not self.done and self.running():
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            step = POLL_SECONDS if limits else remaining
            if step is None or (remaining is not None and remaining < step):
                step = remaining
            handles: Dict[Any, _Worker] = {}
            for w in self.pool:
                handles[w.conn] = w
                if w.process.sentinel is not None:
                    handles[w.process.sentinel] = w
            for ready in wait_any(list(handles), timeout=step):
                worker = handles[ready]
                if ready is worker.conn and worker.process.is_alive():
                    self._receive(worker)
            for worker in list(self.pool):
                self._check(worker)
            if deadline is not None and time.monotonic() >= deadline:
                break
        done, self.done = self.done, []
        return done

    def shutdown(self) -> None:
        for w in self.pool:
            try:
                w.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        for w in self.pool:
            w.process.join(timeout=0.5 if w.task is None else 0)
            if w.process.is_alive():
                w.process.kill()
                w.process.join(timeout=10)
            self._release(w)
        self.pool = []

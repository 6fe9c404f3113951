"""One writer per experiment, enforced by the operating system.

A search holds an advisory lock on ``experiment/.lock`` for its whole life. The kernel drops the
lock when the process ends, however it ends (``kill -9`` included), so a lock is never stale and
nothing has to be cleaned up by hand. The holder writes its PID, host and command into the file so
that a second writer, refused at once, can say which process is running. Readers (``trials``,
``best``, ``pareto``, a dashboard) never take the lock.

POSIX systems use ``flock``; Windows locks one byte far past the text with ``msvcrt.locking``
(a region lock, so the holder's text stays readable). Windows is implemented but untested here.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional

from .store import StoreError

LOCK_FILE = ".lock"
_WINDOWS_LOCK_OFFSET = 1 << 20  # the locked byte, past any holder text a reader wants to see

if os.name == "nt":  # pragma: no cover - not exercised on the Linux machines that run the tests
    import msvcrt

    def _try_lock(fd: int) -> None:
        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # raises OSError when another process holds it

    def _unlock(fd: int) -> None:
        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
else:
    import fcntl

    def _try_lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises BlockingIOError when held elsewhere

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


class ExperimentLocked(StoreError):
    """Another live process is writing this experiment (``holder`` describes it)."""

    def __init__(self, message: str, holder: str = ""):
        super().__init__(message)
        self.holder = holder


def _command() -> str:
    argv = getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv]
    text = shlex.join(argv)
    return text if len(text) <= 300 else text[:297] + "..."


def read_holder(experiment: str | Path, wait: float = 1.0) -> Optional[Dict[str, Any]]:
    """What the current (or last) holder wrote; waits briefly for a holder that has just locked
    the file and not yet written its line."""
    path = Path(experiment) / LOCK_FILE
    deadline = time.monotonic() + wait
    while True:
        try:
            text = path.read_text(encoding="utf-8", errors="replace").strip()
            if text:
                holder = json.loads(text)
                if isinstance(holder, dict):
                    return holder
        except (OSError, ValueError):
            pass
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


def describe_holder(holder: Optional[Dict[str, Any]]) -> str:
    if not holder:
        return "another process (it has not written its PID yet)"
    since = holder.get("started")
    when = time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(since)) if isinstance(since, (int, float)) else ""
    return f"process {holder.get('pid')} on {holder.get('host')} ({holder.get('command')}){when}"


def locked_error(experiment: Path, holder: str) -> ExperimentLocked:
    return ExperimentLocked(
        f"experiment {experiment} is being written by {holder}; one search writes an experiment at a time: "
        "wait for it to end or stop it, then resume (reading commands such as `nasforge trials` work meanwhile)",
        holder)


def running_writer(experiment: str | Path) -> Optional[str]:
    """The process writing ``experiment`` right now, described, or None. Probes the lock for a
    moment (creates nothing, writes nothing; on POSIX through a read-only descriptor)."""
    mode = os.O_RDWR | os.O_BINARY if os.name == "nt" else os.O_RDONLY  # msvcrt locks want a writable one
    try:
        fd = os.open(Path(experiment) / LOCK_FILE, mode)
    except OSError:
        return None  # no lock file: no search has written here since locks exist
    try:
        _try_lock(fd)
    except OSError:
        return describe_holder(read_holder(experiment))
    else:
        _unlock(fd)
        return None
    finally:
        os.close(fd)


class ExperimentLock:
    """Held by the one process that writes an experiment; ``with ExperimentLock(dir):``."""

    def __init__(self, experiment: str | Path):
        self.experiment = Path(experiment)
        self.path = self.experiment / LOCK_FILE
        self.fd: Optional[int] = None

    def acquire(self) -> "ExperimentLock":
        """Take the lock now or raise :class:`ExperimentLocked` naming the holder (never waits)."""
        if self.experiment.exists() and not self.experiment.is_dir():
            raise StoreError(f"--experiment {self.experiment} is a file, not a directory; choose a directory")
        try:
            self.experiment.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the experiment directory {self.experiment}: "
                             f"{exc.strerror or exc}") from None
        try:  # os.open's descriptors are not inherited by child processes, so workers never hold the lock
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o644)
        except OSError as exc:
            raise StoreError(
                f"cannot write to the experiment {self.experiment} ({exc.strerror or exc}): a search needs a "
                "directory it may write; reading commands (trials, best, pareto) need no write access") from None
        try:
            _try_lock(fd)
        except OSError:
            os.close(fd)
            raise locked_error(self.experiment, describe_holder(read_holder(self.experiment))) from None
        self.fd = fd
        try:
            holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": _command(), "started": time.time()}
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, (json.dumps(holder) + "\n").encode("utf-8"))
        except OSError:
            pass  # the lock is what counts; the text only helps a refused writer name us
        except BaseException:  # interrupted right here (Ctrl+C, SIGTERM): __exit__ will not run
            self.release()
            raise
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        try:
            os.ftruncate(fd, 0)  # while still held: nobody else's text can be erased
        except OSError:
            pass
        try:
            _unlock(fd)
        finally:
            os.close(fd)

    def __enter__(self) -> "ExperimentLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

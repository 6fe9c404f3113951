"""A worker process's memory, as the local pool reads and frees it between trials."""

from __future__ import annotations

from typing import Optional


def release_memory() -> None:
    """Give freed memory back to the system between trials: the allocator otherwise keeps the
    high-water mark of the largest child so far, which looks like a leak and counts against the
    memory limit of every later trial. (No gc.collect here: it costs tens of milliseconds with
    torch loaded, and Python's own thresholds collect cycles anyway.)"""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def resident_mb(pid: int) -> Optional[float]:
    """Resident set size of a process in MiB (Linux /proc), None where unknown."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None

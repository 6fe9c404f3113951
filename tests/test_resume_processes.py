"""Interrupting a real search process (kill -9, Ctrl+C) and resuming it from the store."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest


def start_search(tmp_path: Path, npz: str, budget: int, workers: int = 1) -> subprocess.Popen:
    args = [sys.executable, "-m", "nasforge", "search", "--dataset", npz, "--experiment", "exp", "--budget",
            str(budget), "--epochs", "2", "--layers", "2", "--controller-batch", "2", "--quiet",
            "--workers", str(workers)]
    return subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def completed(tmp_path: Path) -> int:
    path = tmp_path / "exp" / "trials.sqlite"
    if not path.exists():
        return 0
    con = sqlite3.connect(path, timeout=30)
    try:
        return con.execute("SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


def wait_for(tmp_path: Path, proc: subprocess.Popen, n: int, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while completed(tmp_path) < n:
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "search too slow"
        time.sleep(0.2)


def trial_rows(tmp_path: Path):
    con = sqlite3.connect(tmp_path / "exp" / "trials.sqlite")
    rows = con.execute("SELECT number, attempt, state, tokens, needs_retry FROM trials ORDER BY id").fetchall()
    con.close()
    return rows


def resume(tmp_path: Path, budget: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nasforge", "search", "--resume", "--experiment", "exp",
                           "--budget", str(budget), "--quiet"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)


BUDGET = 40


# the default run keeps kill -9 with two workers; one worker is test_user_paths' kill cells, and
# Ctrl+C is test_store_faults' and test_cli_stops' (exit 130 and the resume)
@pytest.mark.parametrize("how,workers", [pytest.param("kill -9", 1, marks=pytest.mark.slow),
                                         pytest.param("ctrl+c", 1, marks=pytest.mark.slow), ("kill -9", 2)])
def test_interrupted_search_resumes_without_losing_or_repeating_trials(tmp_path, mnist1d_npz, how, workers):
    # children of this tiny slice train in a fraction of a second, so the budget is large enough that
    # the search is certainly still running when the signal arrives
    proc = start_search(tmp_path, mnist1d_npz, budget=BUDGET, workers=workers)
    wait_for(tmp_path, proc, 2)
    time.sleep(0.05)  # most likely inside a trial now
    assert proc.poll() is None, "the search ended before it could be interrupted"
    proc.send_signal(signal.SIGKILL if how == "kill -9" else signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    if how == "ctrl+c":
        assert proc.returncode == 130, err
        assert "--resume" in out
        assert not [r for r in trial_rows(tmp_path) if r[2] == "RUNNING"]  # marked on the way out
    before = trial_rows(tmp_path)
    assert sum(r[2] == "COMPLETE" for r in before) < BUDGET
    run = resume(tmp_path, budget=BUDGET)
    assert run.returncode == 0, run.stderr + run.stdout
    assert f"({BUDGET} completed, 0 failed" in run.stdout  # a trial cut off and run again is no failure
    rows = trial_rows(tmp_path)
    assert not [r for r in rows if r[2] == "RUNNING"]
    complete = [r[0] for r in rows if r[2] == "COMPLETE"]
    assert sorted(complete) == list(range(BUDGET))  # each budget slot exactly once
    for old, new in zip(before, rows):  # what was stored stays; a trial cut off is now FAILED
        assert old[:2] + old[3:4] == new[:2] + new[3:4]
        assert new[2] == (old[2] if old[2] != "RUNNING" else "FAILED")
    for number, attempt, state, tokens, _ in rows:
        if attempt > 0:  # a retry runs the very architecture that was interrupted
            first = [r for r in rows if r[0] == number and r[1] == 0][0]
            assert first[2] == "FAILED" and first[3] == tokens
    assert not any(r[4] for r in rows)

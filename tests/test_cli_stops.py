"""How ``nasforge search`` and ``nasforge tabulate`` end when stopped early, run as a user runs them:
Ctrl+C exits 130 and SIGTERM 143 (what a shell reports for a command those signals end), a search
that gives up on failures exits 1; each says so in one line, how to continue, and no traceback.
Both commands share one helper (``cli.common.run_until_stopped``); a search stopped by SIGINT or
SIGTERM, and its resume, are tested in test_store_faults.py."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import pytest
from cli_paths import completed_trials, user_env

NASFORGE = [sys.executable, "-m", "nasforge"]
ENV = user_env({"OMP_NUM_THREADS": "1", "COLUMNS": "200"})


def _stopped_by(sig: int, args: List[str], experiment: Path, cwd: Path):
    """Start the command, send ``sig`` once a trial has completed, and return (code, out, err)."""
    proc = subprocess.Popen(NASFORGE + args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENV)
    deadline = time.time() + 180
    while completed_trials(experiment) < 1:
        assert proc.poll() is None, f"ended before it was stopped: {proc.communicate()}"
        assert time.time() < deadline, "no trial completed in time"
        time.sleep(0.02)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, " ".join(out.split()), err  # lines joined: rich wraps long paths


def _tabulate_args(tmp_path: Path, data: str, *extra: str) -> List[str]:
    return ["tabulate", "--experiment", str(tmp_path / "exp"), "--out", str(tmp_path / "t.jsonl.gz"),
            "--dataset", data, "--layers", "2", "--epochs", "1", "--quiet", *extra]


SIGNALS = [(signal.SIGINT, 130, "stopped."), (signal.SIGTERM, 143, "stopped (SIGTERM).")]


@pytest.mark.parametrize("sig,code,said", SIGNALS)
def test_tabulate_stopped_by_a_signal(tmp_path, mnist1d_npz, sig, code, said):
    got, out, err = _stopped_by(sig, _tabulate_args(tmp_path, mnist1d_npz, "--sample", "1000"),
                                tmp_path / "exp", tmp_path)
    assert got == code, out + err
    assert said in out and f"continue with `nasforge tabulate --resume --experiment {tmp_path / 'exp'} " \
                           f"--sample 1000 --out {tmp_path / 't.jsonl.gz'}`" in out, out
    assert "Traceback" not in err and "Traceback" not in out, err
    assert not (tmp_path / "t.jsonl.gz").exists()


def test_a_search_that_gives_up_exits_1(tmp_path, mnist1d_npz):
    """Every trial fails (no child fits in one parameter), so the search stops after two in a row."""
    args = ["search", "--dataset", mnist1d_npz, "--layers", "2", "--epochs", "1", "--executor", "inline",
            "--max-params", "1", "--max-consecutive-failures", "2", "--budget", "10",
            "--experiment", str(tmp_path / "exp"), "--quiet"]
    done = subprocess.run(NASFORGE + args, cwd=tmp_path, capture_output=True, text=True, env=ENV, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "search stopped: stopped after 2 consecutive failed trials" in done.stdout, done.stdout
    assert "Traceback" not in done.stderr + done.stdout, done.stderr


def test_a_tabulate_that_gives_up_exits_1(tmp_path, mnist1d_npz):
    done = subprocess.run(NASFORGE + _tabulate_args(tmp_path, mnist1d_npz, "--sample", "30",
                                                    "--set", "training.max_params=1"),
                          cwd=tmp_path, capture_output=True, text=True, env=ENV, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "tabulate stopped: stopped after 20 consecutive failed trials" in done.stdout, done.stdout
    assert "Traceback" not in done.stderr + done.stdout, done.stderr


def test_a_search_stopped_before_its_first_trial_says_nothing_was_kept(tmp_path, mnist1d_npz):
    """Ctrl+C while the worker still starts (the synthetic estimator's start-up cost, paid before the
    worker is ready): no trial was recorded, so the search removes its folder; it must not advise
    resuming it, and ``runs/latest`` keeps pointing where it did before."""
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "latest").write_text("runs/earlier\n")
    experiment = tmp_path / "runs" / "early"
    args = ["search", "--dataset", mnist1d_npz, "--layers", "2", "--budget", "3", "--executor", "local",
            "--workers", "1", "--estimator", "synthetic", "--set", "training.start_seconds=600",
            "--experiment", str(experiment)]
    proc = subprocess.Popen(NASFORGE + args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENV)
    deadline = time.time() + 120
    while "early" not in (tmp_path / "runs" / "latest").read_text():  # the search has started: its worker starts
        assert proc.poll() is None, f"ended before it was stopped: {proc.communicate()}"
        assert time.time() < deadline, "the search did not start in time"
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    out = " ".join(out.split())
    assert proc.returncode == 130, out + err
    assert "stopped. nothing was recorded (no trial had started), so there is nothing to resume; start the " \
           "search again" in out, out
    assert "--resume" not in out and "Traceback" not in err, out + err
    assert not experiment.exists()
    assert (tmp_path / "runs" / "latest").read_text() == "runs/earlier\n"

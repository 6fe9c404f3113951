"""What the CLI tells a user, run as a user runs it (a subprocess in a clean folder): labels that
name the metric optimised, constraints and feasibility in the tables, refusals before anything
runs, an exit status that says whether the search found anything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TABULAR = ["--space", "nb201-cifar10", "--quiet"]


def nasforge(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "nasforge", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture()
def tiny_npz(tmp_path, mnist1d_slice) -> Path:
    d = mnist1d_slice
    path = tmp_path / "tiny.npz"
    np.savez(path, x_train=d.x_train[:200, 0], y_train=d.y_train[:200], x_test=d.x_test[:50, 0],
             y_test=d.y_test[:50])
    return path


def test_a_constrained_search_shows_the_limited_metric_and_feasibility(tmp_path):
    result = nasforge("search", *TABULAR, "--budget", "30", "--experiment", "c", "--constraint", "qat_acc>=0.8",
                      cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    header = next(line for line in result.stdout.splitlines() if "trial" in line and "state" in line)
    assert "val_acc" in header and "qat_acc" in header and "feasible" in header
    listed = nasforge("trials", "--experiment", "c", cwd=tmp_path)
    assert "qat_acc" in listed.stdout and "feasible" in listed.stdout


def test_labels_name_the_metric_optimised(tmp_path):
    result = nasforge("search", *TABULAR, "--budget", "10", "--experiment", "p", "--objective", "qat_acc",
                      cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "best qat_acc" in result.stdout and "val acc" not in result.stdout
    best = nasforge("best", "--experiment", "p", cwd=tmp_path)
    assert "qat_acc" in best.stdout and "validation accuracy" not in best.stdout


@pytest.mark.parametrize("flags, named", [
    (["--metric", "nosuch"], "nosuch"),
    (["--objective", "latency_ms"], "latency_ms"),  # a real metric that the NAS-Bench-201 table lacks
])
def test_a_metric_nothing_can_produce_is_refused_before_anything_runs(tmp_path, flags, named):
    result = nasforge("search", *TABULAR, "--budget", "5", "--experiment", "m", *flags, cwd=tmp_path)
    assert result.returncode == 2
    assert named in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "m" / "trials.sqlite").exists()


def test_a_refused_command_leaves_runs_latest_where_it_was(tmp_path):
    assert nasforge("search", *TABULAR, "--budget", "5", "--experiment", "first", cwd=tmp_path).returncode == 0
    refused = nasforge("search", *TABULAR, "--budget", "5", "--experiment", "first", cwd=tmp_path)
    assert refused.returncode == 2 and "already holds trials" in refused.stderr
    bad = nasforge("search", *TABULAR, "--budget", "5", "--experiment", "second", "--metric", "nosuch", cwd=tmp_path)
    assert bad.returncode == 2
    assert (tmp_path / "runs" / "latest").read_text().strip() == "first"


def test_an_experiment_path_that_cannot_be_a_folder_is_refused(tmp_path):
    (tmp_path / "afile").write_text("not a folder")
    for path in ("afile", "afile/below"):
        result = nasforge("search", *TABULAR, "--budget", "5", "--experiment", path, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert "is a file" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_an_experiment_folder_that_cannot_be_made_is_refused_before_anything_runs(tmp_path):
    """/proc takes no folders, even from root, whom ``os.access`` tells it does: the folder is
    probed for real, and refused before the data is even looked at."""
    for what in (["--space", "nb201-cifar10"], ["--dataset", "missing.npz"]):  # a table; data not looked at
        result = nasforge("search", *what, "--budget", "5", "--experiment", "/proc/nasforge-x", cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("nasforge search: error: cannot make the experiment folder /proc/nasforge-x: "
                                        "the folder /proc/nasforge-x does not exist and cannot be made in /proc")
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()


def test_output_into_a_closed_pipe_ends_quietly(tmp_path):
    """json goes out through print, the tables through rich: both end as a command killed by SIGPIPE
    would (141), never as a failure (rich's own handling exits 1). `| true` has left before the
    command's first write (its imports take far longer); `| head` leaves in the middle of the output."""
    assert nasforge("search", *TABULAR, "--budget", "200", "--experiment", "e", cwd=tmp_path).returncode == 0
    for command in ("trials --json | head -n 2", "trials | true", "best | true", "best --json | true"):
        program, reader = command.split(" | ")
        shell = f"{sys.executable} -m nasforge {program} --experiment e | {reader}"
        result = subprocess.run(["bash", "-o", "pipefail", "-c", shell], cwd=tmp_path, capture_output=True,
                                text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
        assert result.stdout.splitlines() == (["[", " {"] if reader.startswith("head") else [])
        assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, command
        assert result.returncode == 141, (command, result.returncode, result.stderr)


def test_a_search_whose_every_trial_failed_exits_non_zero_and_says_so(tmp_path, tiny_npz):
    result = nasforge("search", "--dataset", str(tiny_npz), "--budget", "2", "--epochs", "1", "--layers", "2",
                      "--executor", "inline", "--max-params", "1", "--experiment", "f", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "every trial failed" in result.stdout
    assert "nasforge retrain" not in result.stdout  # no hint to retrain nothing


def test_export_checks_everything_before_any_training(tmp_path, tiny_npz):
    search = nasforge("search", "--dataset", str(tiny_npz), "--budget", "1", "--epochs", "1", "--layers", "2",
                      "--executor", "inline", "--experiment", "x", cwd=tmp_path)
    assert search.returncode == 0, search.stderr
    never = nasforge("export", "--experiment", "x", cwd=tmp_path, timeout=60)
    assert never.returncode == 2
    assert "has not been retrained yet" in never.stderr and "nasforge retrain" in never.stderr
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    occupied = nasforge("export", "--experiment", "x", "--out", "full", cwd=tmp_path, timeout=60)
    assert occupied.returncode == 2 and "--overwrite" in occupied.stderr
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    assert not (tmp_path / "x" / "retrain").exists()  # nothing was trained


def test_run_sh_resolves_paths_from_where_it_was_run(tmp_path):
    assert nasforge("search", *TABULAR, "--budget", "5", "--experiment", "here", cwd=tmp_path).returncode == 0
    result = subprocess.run(["bash", str(ROOT / "run.sh"), "trials", "--experiment", "here", "--json"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)) == 5


def test_retrain_is_a_writer_and_waits_its_turn(tmp_path):
    """retrain records its results in the store, so it takes the experiment's write lock like a search."""
    from nasforge.experiment_lock import ExperimentLock

    assert nasforge("search", *TABULAR, "--budget", "5", "--experiment", "w", cwd=tmp_path).returncode == 0
    with ExperimentLock(tmp_path / "w"):
        refused = nasforge("retrain", "--experiment", "w", cwd=tmp_path)
    assert refused.returncode == 2
    assert "is being written by" in refused.stderr and str(os.getpid()) in refused.stderr
    free = nasforge("retrain", "--experiment", "w", cwd=tmp_path)
    assert free.returncode == 2 and "tabular benchmark" in free.stderr  # past the lock, the next check answers


@pytest.mark.parametrize("argv, message", [
    (["best", "--top", "0"], "--top must be at least 1"),
    (["best", "--top", "-1"], "--top must be at least 1"),
    (["trials", "--limit", "-2"], "--limit must be at least 1"),
    (["trials", "--limit", "0"], "--limit must be at least 1"),
])
def test_a_count_below_one_is_refused_not_read_as_everything(tmp_path, argv, message):
    assert nasforge("search", *TABULAR, "--budget", "3", "--experiment", "e", cwd=tmp_path).returncode == 0
    result = nasforge(*argv, "--experiment", "e", cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("flags", [["--seeds", "0"], ["--seeds", "-1"], ["--seed", "-1"]])
def test_retrain_refuses_no_seeds_or_a_negative_one_before_writing(tmp_path, tiny_npz, flags):
    assert nasforge("search", "--dataset", str(tiny_npz), "--budget", "1", "--epochs", "1", "--layers", "2",
                    "--experiment", "r", cwd=tmp_path).returncode == 0
    store = tmp_path / "r" / "trials.sqlite"
    before = store.read_bytes()
    result = nasforge("retrain", "--experiment", "r", "--epochs", "1", *flags, cwd=tmp_path)
    assert result.returncode == 2 and "--seeds must be at least 1 and --seed at least 0" in result.stderr
    assert store.read_bytes() == before and not (tmp_path / "r" / "retrain").exists()


@pytest.mark.parametrize("stage", ["locked, no store yet", "store made, no settings yet"])
def test_a_resume_while_the_first_search_starts_names_that_search(tmp_path, stage):
    """A search takes the experiment's lock, then makes its store, then stores its settings; a resume
    in between is told who is writing (as once it runs), not that there is nothing to resume."""
    from nasforge.experiment_lock import ExperimentLock
    from nasforge.store import Store

    store = tmp_path / "e" / "trials.sqlite"
    with ExperimentLock(tmp_path / "e"):  # this process plays the search that is starting
        if stage == "store made, no settings yet":
            Store(store).close()
        written = store.read_bytes() if store.exists() else None
        result = nasforge("search", *TABULAR, "--resume", "--experiment", "e", "--budget", "5", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert f"nasforge search: error: experiment e is being written by process {os.getpid()} on " in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert (store.read_bytes() if store.exists() else None) == written  # nothing written
    alone = nasforge("search", *TABULAR, "--resume", "--experiment", "e", "--budget", "5", cwd=tmp_path)
    assert alone.returncode == 2 and "being written" not in alone.stderr  # no writer: what the folder holds
    assert ("nothing to resume" if written is None else "holds no search settings") in alone.stderr

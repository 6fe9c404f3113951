"""``nasforge tabulate`` run as a new user runs it (the real command, in the user's folder): what it
refuses before any training, which table files it may replace, and what it counts as failed.

Each of these was found by a new-user walk: a bad ``--out`` was found only after all the training
(a traceback, and a stray ``runs.tmp`` beside a folder), a table of another experiment was replaced
in silence, an interrupted attempt that was run again counted as a failed architecture, and a space
that builds no network ran every trial only for each to fail.
"""

from __future__ import annotations

import gzip
import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import List

from cli_paths import completed_trials, nasforge, ok, shown, user_env
from cli_paths import refused as cli_refused

TINY = ["--layers", "2", "--epochs", "1", "--quiet"]


def tabulate(cwd: Path, data: str, experiment: str, out: str, *extra: str) -> subprocess.CompletedProcess:
    return nasforge(["tabulate", "--experiment", experiment, "--out", out, "--dataset", data, *TINY, *extra], cwd=cwd)


def header(path: Path) -> dict:
    with gzip.open(path, "rt") as f:
        return json.loads(f.readline())


def refused(run: subprocess.CompletedProcess, *said: str) -> str:
    return cli_refused(run, "tabulate", *said)


def test_an_out_that_cannot_be_written_is_refused_before_training(tmp_path, mnist1d_npz):
    (tmp_path / "runs").mkdir()
    (tmp_path / "a-file").write_text("x")
    cases = [
        ("/proc/x/t.jsonl.gz", ["cannot write /proc/x/t.jsonl.gz: the folder /proc/x does not exist"]),
        ("runs", ["--out runs is a folder", "runs/table.jsonl.gz"]),
        ("x4.csv", ["--out x4.csv", "named *.jsonl.gz", "x4.jsonl.gz"]),
        ("a-file/t.jsonl.gz", ["cannot write a-file/t.jsonl.gz: a-file is a file, not a folder"]),
    ]
    for i, (out, said) in enumerate(cases):
        run = tabulate(tmp_path, mnist1d_npz, f"runs/t{i}", out, "--sample", "1")
        refused(run, *said)
        assert not (tmp_path / "runs" / f"t{i}").exists(), f"{out}: the experiment was started{shown(run)}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "runs", "slice.npz"]  # no runs.tmp, no x4.csv
    assert list((tmp_path / "runs").iterdir()) == []


def test_a_space_that_builds_no_network_is_refused_before_training(tmp_path, mnist1d_npz):
    run = nasforge(["tabulate", "--experiment", "runs/x8", "--out", "x8.jsonl.gz", "--sample", "2",
                    "--space", "update-rules", "--dataset", mnist1d_npz, "--epochs", "1"], cwd=tmp_path)
    refused(run, "update-rules cannot be tabulated: it builds no trainable network")
    assert not (tmp_path / "runs").exists() and not (tmp_path / "x8.jsonl.gz").exists()


def test_a_table_file_is_replaced_only_by_its_own_resume_or_with_overwrite(tmp_path, mnist1d_npz):
    # an --out in a folder that does not exist yet is made (as before)
    ok(tabulate(tmp_path, mnist1d_npz, "runs/a", "tables/t.jsonl.gz", "--sample", "2"))
    table = tmp_path / "tables" / "t.jsonl.gz"
    assert header(table)["rows"] == 2
    before = table.read_bytes()

    # another experiment: refused before it trains anything; the table is untouched
    run = tabulate(tmp_path, mnist1d_npz, "runs/b", "tables/t.jsonl.gz", "--sample", "1")
    refused(run, "--out tables/t.jsonl.gz already holds a table of 2 architectures made by experiment "
                 f"{tmp_path / 'runs' / 'a'}", "--overwrite")
    assert not (tmp_path / "runs" / "b").exists() and table.read_bytes() == before
    assert header(table)["experiment"] == str(tmp_path / "runs" / "a")  # the table says whose it is

    # the experiment that made it, resumed (extended to 3): it rewrites its own table
    run = tabulate(tmp_path, mnist1d_npz, "runs/a", "tables/t.jsonl.gz", "--sample", "3", "--resume")
    ok(run)
    assert "wrote 3 architectures (0 failed)" in run.stdout and header(table)["rows"] == 3

    # --overwrite: another experiment may replace it
    ok(tabulate(tmp_path, mnist1d_npz, "runs/b", "tables/t.jsonl.gz", "--sample", "1", "--overwrite"))
    assert header(table)["rows"] == 1 and header(table)["experiment"] == str(tmp_path / "runs" / "b")
    # ... after which the first experiment's resume no longer owns the file
    run = tabulate(tmp_path, mnist1d_npz, "runs/a", "tables/t.jsonl.gz", "--sample", "3", "--resume")
    refused(run, "made by experiment " + str(tmp_path / "runs" / "b"))

    # a file that is not a table at all
    (tmp_path / "notes.jsonl.gz").write_text("my notes")
    run = tabulate(tmp_path, mnist1d_npz, "runs/c", "notes.jsonl.gz", "--sample", "1")
    refused(run, "--out notes.jsonl.gz already exists and is not a nasforge table", "--overwrite")
    assert (tmp_path / "notes.jsonl.gz").read_text() == "my notes" and not (tmp_path / "runs" / "c").exists()


def _interrupted_after_one(args: List[str], experiment: Path, cwd: Path) -> subprocess.CompletedProcess:
    """Ctrl+C once the first architecture is trained: the next one is cut short."""
    proc = subprocess.Popen([sys.executable, "-m", "nasforge", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=user_env({"OMP_NUM_THREADS": "1"}))
    deadline = time.time() + 180
    while completed_trials(experiment) < 1:
        assert proc.poll() is None, f"ended before it was stopped: {proc.communicate()}"
        assert time.time() < deadline, "no architecture was trained in time"
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_an_interrupted_attempt_run_again_is_not_counted_as_failed(tmp_path, mnist1d_npz):
    args = ["tabulate", "--experiment", "runs/my-table", "--out", "my-table.jsonl.gz", "--dataset", mnist1d_npz,
            "--sample", "3", *TINY]
    stopped = _interrupted_after_one(args, tmp_path / "runs" / "my-table", tmp_path)
    assert stopped.returncode == 130, shown(stopped)
    with sqlite3.connect(tmp_path / "runs" / "my-table" / "trials.sqlite") as con:
        cut = con.execute("SELECT COUNT(*) FROM trials WHERE state = 'FAILED'").fetchone()[0]
    assert cut == 1, "the Ctrl+C should have cut one attempt short"
    run = nasforge(["tabulate", "--experiment", "runs/my-table", "--out", "my-table.jsonl.gz", "--sample", "3",
                    "--resume", "--quiet"], cwd=tmp_path)
    ok(run)
    assert "wrote 3 architectures (0 failed)" in run.stdout, shown(run)
    assert header(tmp_path / "my-table.jsonl.gz")["failed"] == 0

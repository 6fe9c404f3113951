"""``nasforge benchmark`` run as a new user runs it (the real command, in the user's folder): an
--out that cannot hold the results is refused before any run, checkpoints beyond the budget are
refused instead of dropped, ``all`` runs the shipped tables, and one's own table (made by
``nasforge tabulate``) is benchmarked with ``--table``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from cli_paths import nasforge, ok
from cli_paths import refused as cli_refused

QUICK = ["--strategies", "random", "--seeds", "2", "--budget", "10", "--workers", "1"]


def benchmark(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return nasforge(["benchmark", *args], cwd=cwd, env={"COLUMNS": "200", "OMP_NUM_THREADS": "1"})


def refused(run: subprocess.CompletedProcess, *said: str) -> str:
    return cli_refused(run, "benchmark", *said)


@pytest.fixture(scope="module")
def own_table(tmp_path_factory) -> Path:
    """A hand-written table of five 2-layer chain-cnn architectures (no training): what
    ``nasforge tabulate`` writes, with made-up numbers."""
    from nasforge.spaces import create_space
    from nasforge.tables.table_file import write_table

    space = create_space("chain-cnn", num_layers=2)
    rng = np.random.default_rng(0)
    rows, seen = [], set()
    while len(rows) < 5:
        t = space.canonical(space.sample(rng))
        if t not in seen:
            seen.add(t)
            rows.append({"tokens": list(t), "val_acc": 0.5 + 0.1 * len(rows), "val_acc_last": 0.5,
                         "test_acc": 0.4 + 0.1 * len(rows), "params": 100, "flops": 1000, "latency_ms": 0.5,
                         "train_seconds": 2.0, "seed": 0, "trial": len(rows)})
    path = tmp_path_factory.mktemp("tables") / "my-table.jsonl.gz"
    write_table(path, {"space": {"name": "chain-cnn", "num_layers": 2, "dims": 1},
                       "decisions": [d.name for d in space.decisions], "dataset": {"name": "made-up"},
                       "recipe": {}}, rows)
    return path


def test_an_out_that_cannot_hold_results_is_refused_before_any_run(tmp_path):
    (tmp_path / "my-table.jsonl.gz").write_text("a file")
    refused(benchmark(tmp_path, *QUICK, "--out", "my-table.jsonl.gz"),
            "--out my-table.jsonl.gz is a file", "choose a folder name")
    refused(benchmark(tmp_path, *QUICK, "--out", "my-table.jsonl.gz/sub"),
            "cannot write my-table.jsonl.gz/sub: my-table.jsonl.gz is a file, not a folder")
    refused(benchmark(tmp_path, *QUICK, "--out", "/proc/x/out"),
            "cannot write /proc/x/out: the folder /proc/x/out does not exist")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my-table.jsonl.gz"]  # nothing ran, nothing written


def test_checkpoints_beyond_the_budget_are_refused(tmp_path):
    refused(benchmark(tmp_path, *QUICK, "--checkpoints", "5,50", "--out", "out"),
            "--checkpoints 50 beyond the budget of 10 queries")
    assert not (tmp_path / "out").exists()
    ok(benchmark(tmp_path, *QUICK, "--checkpoints", "5", "--out", "out"))
    checkpoints = json.loads((tmp_path / "out" / "runs.json").read_text())["plan"]["checkpoints"]
    assert checkpoints == [5, 10]


def test_all_runs_the_shipped_tables(tmp_path):
    from nasforge.compare.runner import tabular_benchmarks

    run = benchmark(tmp_path, "--benchmarks", "all", "--strategies", "random", "--seeds", "1", "--budget", "5",
                    "--workers", "1", "--out", "out")
    ok(run)
    ran = json.loads((tmp_path / "out" / "runs.json").read_text())["plan"]["benchmarks"]
    assert ran == [b for b in tabular_benchmarks() if b != "own-table"] and "mnist1d-chain" in ran


def test_all_and_own_table_with_a_table_file():
    from nasforge.compare.plan import resolve_benchmarks
    from nasforge.config import ConfigError

    assert "own-table" not in resolve_benchmarks(["all"])
    assert resolve_benchmarks(["all"], table="/t.jsonl.gz")[-1] == "own-table"
    with pytest.raises(ConfigError, match="own-table needs a table file: give it with --table PATH"):
        resolve_benchmarks(["own-table"])
    with pytest.raises(ConfigError, match="add own-table .or all. to --benchmarks"):
        resolve_benchmarks(["nb201-cifar10"], table="/t.jsonl.gz")


def test_own_table_is_benchmarked_with_table(tmp_path, own_table):
    (tmp_path / "work").mkdir()
    (tmp_path / "my-table.jsonl.gz").write_bytes(own_table.read_bytes())
    cwd = tmp_path / "work"
    run = benchmark(cwd, "--table", "../my-table.jsonl.gz", "--strategies", "random,evolution", "--seeds", "2",
                    "--budget", "10", "--workers", "1", "--out", "out")
    ok(run)
    assert "4 runs in" in run.stdout and f"own-table: the table {tmp_path / 'my-table.jsonl.gz'}" in run.stdout
    data = json.loads((cwd / "out" / "runs.json").read_text())
    table = str(tmp_path / "my-table.jsonl.gz")  # stored absolute: runs.json names it from any folder
    assert data["plan"]["benchmarks"] == ["own-table"] and data["plan"]["table"] == table
    assert data["references"]["own-table"]["table"] == table and data["references"]["own-table"]["rows"] == 5
    assert all(r["error"] is None and r["failures"] == 0 and r["queries"] == 10 for r in data["runs"])
    assert data["references"]["own-table"]["max_test"] == pytest.approx(0.8)

    # with other benchmarks: own-table named (or all)
    ok(benchmark(cwd, "--table", "../my-table.jsonl.gz", "--benchmarks", "own-table,mnist1d-chain", *QUICK,
                 "--out", "both"))
    assert json.loads((cwd / "both" / "runs.json").read_text())["plan"]["benchmarks"] == ["own-table",
                                                                                           "mnist1d-chain"]


def test_own_table_without_a_table_points_at_table(tmp_path, own_table):
    refused(benchmark(tmp_path, "--benchmarks", "own-table", *QUICK), "own-table needs a table file",
            "--table PATH")
    # what `search` takes (--set space.table) is pointed at --table, not refused as an unknown strategy
    refused(benchmark(tmp_path, "--benchmarks", "own-table", *QUICK, "--set", f"space.table={own_table}"),
            "--set space.table", "give your own table with --table PATH")
    refused(benchmark(tmp_path, *QUICK, "--table", "missing.jsonl.gz"), "--table missing.jsonl.gz: no such file")
    refused(benchmark(tmp_path, *QUICK, "--table", str(own_table), "--benchmarks", "nb201-cifar10"),
            "add own-table (or all) to --benchmarks")
    assert not (tmp_path / "runs").exists()

"""``nasforge benchmark`` through the real CLI when queries fail (issue 13, item 3).

REINFORCE on ``mnist1d-chain`` used to fail every query in silence: its controller wrote token
sequences the 1000-row table does not hold, the table printed ``-``, the plot's legend named a
line that was not drawn, and the command exited 0. Now the controller is steered to the table's
rows; a strategy that cannot be (TPE) still fails there, and the command says so: a warning with
the count and the first error, the table marks it, the plot names it in the panel instead of the
legend, and the exit status is 1 when none of a strategy's queries was answered.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys


def benchmark(tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "nasforge", "benchmark", "--workers", "1",
                           "--out", str(tmp_path / "out"), *args],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)


def test_reinforce_on_the_mnist1d_table_has_every_query_answered(tmp_path):
    done = benchmark(tmp_path, "--benchmarks", "mnist1d-chain", "--strategies", "reinforce",
                     "--seeds", "1", "--budget", "40")
    assert done.returncode == 0, done.stdout + done.stderr
    runs = json.loads((tmp_path / "out" / "runs.json").read_text())["runs"]
    assert [(r["error"], r["failures"], r["queries"]) for r in runs] == [(None, 0, 40)]
    assert "warning" not in done.stdout and "failed" not in done.stdout
    assert runs[0]["curve"]["best_test"][-1] > 0.5  # a real accuracy found, not NaN


def test_a_strategy_whose_every_query_fails_says_so_and_exits_1(tmp_path):
    from nasforge.compare import curves, report

    done = benchmark(tmp_path, "--benchmarks", "mnist1d-chain", "--strategies", "random,tpe",
                     "--seeds", "2", "--budget", "20")
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    # one warning for tpe, with the count over both seeds and the first error's message
    assert "warning: tpe on mnist1d-chain: 40 of 40 queries failed (2 runs); none was answered" in out
    assert "First failure: seed 0, query 1: TrialFailed:" in out and "is not in the table" in out
    assert "random on mnist1d-chain" not in out
    # the table marks it: "all failed" in its cells and a failed-queries column
    tpe_row = next(line for line in out.splitlines() if "│ tpe" in line)
    assert "all failed" in tpe_row and "40 of 40" in tpe_row
    assert "-" not in tpe_row.replace("mnist1d-chain", "")
    data = json.loads((tmp_path / "out" / "runs.json").read_text())
    assert [(f["strategy"], f["failed"], f["all_failed"]) for f in data["query_failures"]] == [("tpe", 40, True)]
    # the plot: no legend entry for the line that is not drawn, the failure written in the panel
    fig = curves.curve_figure(report.load_result(tmp_path / "out" / "runs.json"))
    labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert "random" in labels and "tpe" not in labels
    panel = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert "tpe: 40 of 40 queries failed, no line" in panel
    assert (tmp_path / "out" / "anytime.png").stat().st_size > 0


def test_only_failing_runs_still_write_a_plot(tmp_path):
    """With nothing answered at all the plot used to fail (log scale of no data), exit 2."""
    done = benchmark(tmp_path, "--benchmarks", "mnist1d-chain", "--strategies", "tpe", "--seeds", "1",
                     "--budget", "10")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "error" not in done.stderr
    assert (tmp_path / "out" / "anytime.png").read_bytes()[:4] == b"\x89PNG"


def test_a_run_without_failures_exits_0_and_adds_no_column(tmp_path):
    done = benchmark(tmp_path, "--benchmarks", "mnist1d-chain", "--strategies", "random", "--seeds", "1",
                     "--budget", "10")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "failed queries" not in done.stdout and "warning" not in done.stdout

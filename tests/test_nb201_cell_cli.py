"""``nb201-cell`` through the real command line: search on digits, trials, retrain, export, and the
export used in a fresh interpreter on the raw digits test images; 1-D data refused with exit 2."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Dict

import pytest

from cli_paths import error_line, json_out, nasforge, ok, shown
from export_check import check_retrain_and_export

pytestmark = pytest.mark.timeout(600)

SMALL = ["--space", "nb201-cell", "--set", "space.cells_per_stage=1", "--set", "space.channels=4"]

@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Dict[str, subprocess.CompletedProcess]:
    folder = tmp_path_factory.mktemp("nb201cell")
    done = {"folder": folder}
    done["search"] = nasforge(["search", "--dataset", "digits", "--budget", "3", "--epochs", "1", "--workers", "1",
                               "--experiment", "exp", *SMALL], cwd=folder)
    if done["search"].returncode == 0:
        done["trials"] = nasforge(["trials", "--json", "--experiment", "exp"], cwd=folder)
        done["retrain"] = nasforge(["retrain", "--experiment", "exp", "--epochs", "1", "--rerank", "1"], cwd=folder)
        if done["retrain"].returncode == 0:
            done["export"] = nasforge(["export", "--experiment", "exp"], cwd=folder)
    return done


def test_search_completes_and_reads_back(runs):
    ok(runs["search"])
    rows = json_out(runs["trials"])
    assert sorted(r["number"] for r in rows if r["state"] == "COMPLETE") == [0, 1, 2], rows
    from nasforge.spaces.base import create_space

    table = create_space("nb201-cifar10")
    for row in rows:  # the stored hash is the table's for the stored tokens
        assert row["arch_hash"] == table.arch_hash(row["tokens"]), row


def test_retrain_and_export_take_raw_digits(runs, tmp_path):
    check_retrain_and_export(runs, "nb201-cell", tmp_path)


def test_one_dimensional_data_is_refused(tmp_path):
    run = nasforge(["search", "--dataset", "mnist1d", "--budget", "1", "--epochs", "1", *SMALL], cwd=tmp_path)
    assert run.returncode == 2, shown(run)
    line = error_line(run)
    assert "nb201-cell is 2-D" in line and "1-D inputs" in line and "takes 2-D data only" in line, line
    assert line.startswith("nasforge search: error: [space] nb201-cell is 2-D"), line  # not a [training] setting
    assert "Traceback" not in run.stderr, shown(run)
    assert not (Path(tmp_path) / "runs" / "latest").exists()

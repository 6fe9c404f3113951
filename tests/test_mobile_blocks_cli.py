"""``mobile-blocks`` through the real command line on digits: a search with image augmentation read
back (trials, stored config), retrain, export used in a fresh interpreter on the raw test images;
a latency-constrained search whose feasible trials and best are within the limit; 1-D data refused."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Dict

import pytest

from cli_paths import error_line, json_out, nasforge, ok, shown
from export_check import check_retrain_and_export

pytestmark = pytest.mark.timeout(900)

SMALL = ["--space", "mobile-blocks", "--set", "space.stages=[[4, 1], [8, 2]]", "--set", "space.stem_channels=4",
         "--set", "space.head_channels=16", "--set", "space.max_blocks=2"]
SEARCH = ["search", "--dataset", "digits", "--epochs", "1", "--workers", "1", *SMALL]
LIMIT_MS = 0.01  # no network's batch-1 forward takes 10 microseconds on a CPU: every child is over it


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Dict[str, subprocess.CompletedProcess]:
    folder = tmp_path_factory.mktemp("mobile")
    done = {"folder": folder}
    done["search"] = nasforge([*SEARCH, "--budget", "3", "--experiment", "exp", "--set", "training.crop_padding=1",
                               "--set", "training.flip=true"], cwd=folder)
    if done["search"].returncode == 0:
        done["trials"] = nasforge(["trials", "--json", "--experiment", "exp"], cwd=folder)
        done["retrain"] = nasforge(["retrain", "--experiment", "exp", "--epochs", "1", "--rerank", "1"], cwd=folder)
        if done["retrain"].returncode == 0:
            done["export"] = nasforge(["export", "--experiment", "exp"], cwd=folder)
    done["latency"] = nasforge([*SEARCH, "--budget", "4", "--experiment", "lat", "--strategy", "random",
                                "--constraint", f"latency_ms<={LIMIT_MS}"], cwd=folder)
    if done["latency"].returncode == 1:  # no child within the limit: the search says so and exits 1
        done["lat_trials"] = nasforge(["trials", "--json", "--experiment", "lat"], cwd=folder)
        done["lat_best"] = nasforge(["best", "--json", "--experiment", "lat"], cwd=folder)
    return done


def test_search_reads_back_with_its_augmentation_stored(runs):
    ok(runs["search"])
    rows = json_out(runs["trials"])
    assert sorted(r["number"] for r in rows if r["state"] == "COMPLETE") == [0, 1, 2], rows
    from nasforge.spaces.base import create_space

    space = create_space("mobile-blocks", stages=[[4, 1], [8, 2]], stem_channels=4, head_channels=16, max_blocks=2)
    for row in rows:
        assert row["arch_hash"] == space.arch_hash(row["tokens"]), row
    with sqlite3.connect(runs["folder"] / "exp" / "trials.sqlite") as db:
        config = json.loads(db.execute("select value from meta where key = 'config'").fetchone()[0])
    assert config["training"]["crop_padding"] == 1 and config["training"]["flip"] is True, config


def test_retrain_and_export_take_raw_digits(runs, tmp_path):
    check_retrain_and_export(runs, "mobile-blocks", tmp_path)


def test_latency_constrained_search_keeps_only_networks_within_the_limit(runs):
    """Every child is over the limit, so none may be feasible and there is no best to return (a
    search that ignored the limit would mark them feasible and name one)."""
    lat = runs["latency"]
    assert lat.returncode == 1 and "no trial meets the hard constraints" in lat.stdout, shown(lat)
    rows = [r for r in json_out(runs["lat_trials"]) if r["state"] == "COMPLETE"]
    assert len(rows) == 4, rows
    for row in rows:  # measured, over the limit, infeasible
        assert row["metrics"]["latency_ms"] > LIMIT_MS and not row["feasible"], row
    best = runs["lat_best"]
    assert best.returncode == 2 and "none of the 4 completed trials meets" in error_line(best), shown(best)


def test_one_dimensional_data_is_refused(tmp_path):
    run = nasforge(["search", "--dataset", "mnist1d", "--budget", "1", "--epochs", "1", *SMALL], cwd=tmp_path)
    assert run.returncode == 2, shown(run)
    line = error_line(run)
    assert "mobile-blocks is 2-D" in line and "takes 2-D data only" in line, line
    assert "Traceback" not in run.stderr, shown(run)
    assert not (Path(tmp_path) / "runs" / "latest").exists()

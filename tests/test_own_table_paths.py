"""An own-table search read back and resumed from another folder, as a user does it.

The table was stored by the path as typed (``space.table=t.jsonl.gz``), so every command run from
anywhere but the search's folder said the table did not exist, and naming the same file by
another path was refused as a different setting. Tables are now stored by absolute path, like
data files; a store written with a relative path still resumes from where it was made.
"""

from __future__ import annotations

import shutil

from cli_paths import error_line, json_out, nasforge, ok

from nasforge.store import Store, store_path
from nasforge.tables.own_table import MNIST1D_CHAIN


def _search(cwd, table, budget, *extra):
    return nasforge(["search", "--space", "own-table", "--set", f"space.table={table}", "--strategy", "random",
                     "--budget", budget, "--experiment", "runs/o", "--quiet", *extra], cwd=cwd)


def test_own_table_experiment_reads_back_and_resumes_from_another_folder(tmp_path):
    work, elsewhere = tmp_path / "work", tmp_path / "work" / "elsewhere"
    elsewhere.mkdir(parents=True)
    shutil.copy(MNIST1D_CHAIN, work / "t.jsonl.gz")
    ok(_search(work, "t.jsonl.gz", 6))
    with Store(store_path(work / "runs" / "o"), readonly=True) as store:
        assert store.config()["space"]["table"] == str((work / "t.jsonl.gz").resolve())

    best = json_out(nasforge(["best", "--experiment", "../runs/o", "--json"], cwd=elsewhere))
    assert best and best[0]["tokens"]
    trials = json_out(nasforge(["trials", "--experiment", "../runs/o", "--json"], cwd=elsewhere))
    assert len(trials) == 6
    # the same file by another path is the same setting
    ok(nasforge(["search", "--space", "own-table", "--set", "space.table=../t.jsonl.gz", "--strategy", "random",
                 "--budget", "8", "--experiment", "../runs/o", "--resume", "--quiet"], cwd=elsewhere))
    assert len(json_out(nasforge(["trials", "--experiment", "runs/o", "--json"], cwd=work))) == 8

    other = work / "other.jsonl.gz"  # another file is another setting, whatever its name
    shutil.copy(MNIST1D_CHAIN, other)
    refused = _search(work, "other.jsonl.gz", 10, "--resume")
    assert refused.returncode == 2 and "cannot resume with different settings: space.table" in error_line(refused)


def test_a_store_with_a_relative_table_path_still_resumes_from_its_folder(tmp_path):
    shutil.copy(MNIST1D_CHAIN, tmp_path / "t.jsonl.gz")
    ok(_search(tmp_path, "t.jsonl.gz", 4))
    with Store(store_path(tmp_path / "runs" / "o")) as store:  # as an older nasforge wrote it
        config = store.config()
        config["space"]["table"] = "t.jsonl.gz"
        store.set_config(config)
    ok(_search(tmp_path, "t.jsonl.gz", 6, "--resume"))
    assert len(json_out(nasforge(["trials", "--experiment", "runs/o", "--json"], cwd=tmp_path))) == 6


def test_a_folder_given_as_the_table_is_named_a_folder(tmp_path):
    (tmp_path / "runs").mkdir()
    run = _search(tmp_path, "runs", 2)
    assert run.returncode == 2 and "benchmark table runs is a folder" in error_line(run), error_line(run)


def test_a_latency_limit_on_a_table_reads_the_tables_latency(tmp_path):
    """The search asks trained children to measure what the reward names; a table's rows hold it,
    and a table refuses training settings, so nothing is asked of it."""
    shutil.copy(MNIST1D_CHAIN, tmp_path / "t.jsonl.gz")
    ok(_search(tmp_path, "t.jsonl.gz", 4, "--constraint", "latency_ms<=1"))
    trials = json_out(nasforge(["trials", "--experiment", "runs/o", "--json"], cwd=tmp_path))
    assert len(trials) == 4 and all("latency_ms" in t["metrics"] for t in trials)

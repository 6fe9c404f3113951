"""A table search stores, and shows, only the settings it reads.

The table is its data and its training is a lookup, so its stored config holds no ``dataset`` and,
of ``[training]``, only the lookup's own settings (``seconds_per_query``). Searches stored before
held the defaults ``"dataset": "mnist1d"`` and ``"training": {"epochs": 8}``, which MLflow, the
report and the dashboard then showed as if used; such stores still resume, and read true.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from cli_paths import completed_trials, nasforge, ok
from nasforge.store import Store

pytestmark = pytest.mark.timeout(300)

SEARCH = ["search", "--space", "nb201-cifar10", "--strategy", "random", "--budget", "3", "--quiet",
          "--set", "training.seconds_per_query=0.5"]
TRUE_SETTINGS = {"seconds_per_query": 0.5}  # the lookup's one setting, given: kept


def _config(experiment: Path) -> dict:
    with Store(experiment / "trials.sqlite", readonly=True) as store:
        return store.config()


def _write_the_old_way(experiment: Path) -> None:
    """The meta config as nasforge stored it for a table search before it kept only what it reads."""
    with sqlite3.connect(experiment / "trials.sqlite") as con:
        config = json.loads(con.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()[0])
        config.update(dataset="mnist1d", training={"epochs": 8, **config["training"]})
        con.execute("UPDATE meta SET value = ? WHERE key = 'config'", (json.dumps(config, sort_keys=True),))


@pytest.fixture(scope="module")
def searches(tmp_path_factory) -> Path:
    """``new``: a table search as stored now; ``old``: the same search with its config stored the old way."""
    folder = tmp_path_factory.mktemp("tables")
    for name in ("new", "old"):
        ok(nasforge([*SEARCH, "--experiment", name], cwd=folder))
    _write_the_old_way(folder / "old")
    assert _config(folder / "old")["training"] == {"epochs": 8, **TRUE_SETTINGS}
    return folder


def test_a_table_search_stores_no_dataset_and_no_training_it_does_not_do(searches):
    config = _config(searches / "new")
    assert "dataset" not in config and "data_fingerprint" not in config
    assert config["training"] == TRUE_SETTINGS
    assert config["space"] == {"name": "nb201-cifar10"} and config["strategy"] == {"name": "random"}


@pytest.mark.parametrize("name", ["new", "old"])
def test_a_table_search_resumes_whichever_way_it_was_stored(searches, tmp_path, name):
    experiment = tmp_path / name
    shutil.copytree(searches / name, experiment)
    ok(nasforge(["search", "--resume", "--experiment", experiment, "--budget", "5", "--quiet"], cwd=tmp_path))
    assert completed_trials(experiment) == 5
    config = _config(experiment)  # the resume stores the settings as they are now: true ones
    assert "dataset" not in config and config["training"] == TRUE_SETTINGS and config["budget"] == 5


def test_the_report_names_no_dataset_for_a_table_search(searches, tmp_path):
    out = tmp_path / "report.html"
    ok(nasforge(["report", "--experiment", searches / "new", "--experiment", searches / "old", "--out", out],
                cwd=tmp_path))
    payload = re.search(r'<script id="data-gz" type="application/octet-stream">([^<]+)</script>', out.read_text())
    shown = json.loads(gzip.decompress(base64.b64decode(payload.group(1))))["experiments"]
    assert [e["settings"]["space"] for e in shown] == ["nb201-cifar10"] * 2
    assert [e["settings"].get("dataset") for e in shown] == [None, None]


def test_mlflow_gets_only_the_settings_a_table_search_reads(searches, tmp_path):
    pytest.importorskip("mlflow", reason="MLflow is not installed: pip install -e '.[mlflow]'")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"  # the store written the old way: what a user tracks today
    ok(nasforge(["track", "--log-to", "mlflow", "--experiment", searches / "old", "--to", uri], cwd=tmp_path,
                env={"MLFLOW_TRACKING_URI": ""}))
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("nasforge/old").experiment_id])
    params = next(r for r in runs if r.data.tags.get("nasforge.role") == "search").data.params
    assert params["space.name"] == "nb201-cifar10" and params["budget"] == "3"
    assert params["training.seconds_per_query"] == "0.5"
    unused = [k for k in params if k == "dataset" or (k.startswith("training.") and k != "training.seconds_per_query")]
    assert not unused, unused

"""The stored config is complete: everything needed to read a search back is in its store.

A search on 2-D data used to derive chain-cnn's ``dims`` from the data without storing it, so
every command that rebuilt the space from the store (``best``, ``trials``, the search's own final
table, ``--resume``) failed with "chain-cnn expects 42 tokens, got 48". Stores written before the
fix are migrated when read. Data files are stored by absolute path with their fingerprint, so an
experiment can be read from any folder and moved data can be pointed to.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from nasforge.search import store_path
from nasforge.store import Store

FAST = ["--budget", "2", "--epochs", "1", "--layers", "2", "--workers", "1", "--executor", "inline"]


def nasforge(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run([sys.executable, "-m", "nasforge", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def image_search(tmp_path_factory):
    """A finished 2-D search on an (N, H, W) .npz in its own folder."""
    root = tmp_path_factory.mktemp("images")
    digits = load_digits()
    x, y = digits.images.astype(np.float32), digits.target
    np.savez(root / "digits.npz", x_train=x[:300], y_train=y[:300], x_test=x[300:400], y_test=y[300:400],
             layout="NHW")
    result = nasforge("search", "--dataset", "digits.npz", "--experiment", "exp", *FAST, cwd=root)
    assert result.returncode == 0, result.stderr
    return root


def stored_config(experiment: Path) -> dict:
    with Store(store_path(experiment), create=False) as store:
        return store.config()


def test_a_2d_search_stores_what_rebuilds_its_space(image_search):
    config = stored_config(image_search / "exp")
    assert config["space"] == {"name": "chain-cnn", "num_layers": 2, "dims": 2}
    assert config["dataset"] == str((image_search / "digits.npz").resolve())
    assert config["data_fingerprint"]
    assert config["training"]["epochs"] == 1  # a trained search keeps its recipe (a table search stores none)


def test_every_reader_reads_a_2d_search_from_another_folder(image_search, tmp_path):
    experiment = str(image_search / "exp")
    trials = nasforge("trials", "--experiment", experiment, "--json", cwd=tmp_path)
    assert trials.returncode == 0, trials.stderr
    assert len(json.loads(trials.stdout)) == 2
    best = nasforge("best", "--experiment", experiment, "--json", cwd=tmp_path)
    assert best.returncode == 0, best.stderr
    assert len(json.loads(best.stdout)[0]["tokens"]) == 14  # 2 layers of the 2-D space


def test_a_store_written_before_the_fix_is_read_and_resumed(image_search, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(image_search / "exp", old)
    config = stored_config(old)
    del config["space"]["dims"]  # what a search on 2-D data stored before the fix
    with Store(store_path(old)) as store:
        store.set_config(config)
    best = nasforge("best", "--experiment", str(old), "--json", cwd=tmp_path)
    assert best.returncode == 0, best.stderr
    resumed = nasforge("search", "--resume", "--experiment", str(old), "--budget", "3", cwd=image_search)
    assert resumed.returncode == 0, resumed.stderr
    assert stored_config(old)["space"]["dims"] == 2  # written back complete
    trials = json.loads(nasforge("trials", "--experiment", str(old), "--json", cwd=tmp_path).stdout)
    assert len(trials) == 3


def test_moved_data_is_pointed_to_and_checked_by_its_fingerprint(image_search, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(image_search / "exp", moved / "exp")
    config = stored_config(moved / "exp")
    config["dataset"] = str(tmp_path / "gone" / "digits.npz")  # the data file was moved away
    with Store(store_path(moved / "exp")) as store:
        store.set_config(config)
    lost = nasforge("search", "--resume", "--experiment", "exp", "--budget", "3", cwd=moved)
    assert lost.returncode == 2
    assert "is not there" in lost.stderr and "--dataset" in lost.stderr and "Traceback" not in lost.stderr

    shutil.copy(image_search / "digits.npz", moved / "here.npz")
    found = nasforge("search", "--resume", "--experiment", "exp", "--budget", "3", "--dataset", "here.npz",
                     cwd=moved)
    assert found.returncode == 0, found.stderr

    other = np.load(moved / "here.npz")
    np.savez(moved / "other.npz", **{k: other[k] for k in other.files if k != "y_train"},
             y_train=np.roll(other["y_train"], 1))
    wrong = nasforge("retrain", "--experiment", "exp", "--dataset", "other.npz", "--epochs", "1", "--rerank", "1",
                     cwd=moved)
    assert wrong.returncode == 2
    assert "is not the data this experiment searched on" in wrong.stderr

"""A plugin space's networks through retrain and export (the protocol of nasforge/spaces/networks.py),
by the real command line on digits: a space that registers its torch-only network module is searched,
retrained and exported, and the export, loaded in a fresh isolated interpreter, gives retrain's test
accuracy on the raw test images; a space whose networks have no spec, or a spec of a kind no module
is registered for, is refused by retrain before any training and by export, naming what it lacks.
The plugin is tests/mlp_plugin_space.py, on PYTHONPATH as a user's would be; the commands after the
search import it because the search stored it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Dict

import pytest

from cli_paths import ROOT, completed_trials, nasforge, ok, refused
from export_check import check_retrain_and_export

pytestmark = pytest.mark.timeout(600)

TESTS = Path(__file__).resolve().parent
ENV = {"PYTHONPATH": os.pathsep.join((str(ROOT), str(TESTS)))}  # the workers import the plugin too
PROTOCOL = "register_network(kind, module, network_class)"


def nasforge_with_plugin(args, cwd: Path) -> subprocess.CompletedProcess:
    return nasforge(args, cwd=cwd, env=ENV)


def search(space: str, experiment: str, folder: Path, budget: int) -> subprocess.CompletedProcess:
    (folder / f"{experiment}.toml").write_text(f'plugins = ["mlp_plugin_space"]\ndataset = "digits"\n'
                                               f'budget = {budget}\n[space]\nname = "{space}"\n')
    return nasforge_with_plugin(["search", "--config", f"{experiment}.toml", "--experiment", experiment,
                                 "--epochs", "1", "--workers", "1"], folder)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Dict:
    folder = tmp_path_factory.mktemp("plugin")
    done = {"folder": folder}
    ok(search("test-mlp", "exp", folder, budget=2))
    done["retrain"] = nasforge_with_plugin(["retrain", "--experiment", "exp", "--epochs", "2"], folder)
    if done["retrain"].returncode == 0:
        done["export"] = nasforge_with_plugin(["export", "--experiment", "exp"], folder)
    return done


def test_a_registered_plugin_network_is_retrained_and_exported_standalone(runs, tmp_path):
    assert "re-ranking" in runs["retrain"].stdout, runs["retrain"].stdout  # both final trainings ran
    check_retrain_and_export(runs, "test-mlp", tmp_path)


def searched(space: str, experiment: Path) -> None:
    """A finished one-trial search of ``space``, run in this process (what is tested is what follows it)."""
    from nasforge import SearchConfig, run_search

    config = SearchConfig(dataset="digits", budget=1, seed=0)
    config.plugins, config.space = ["mlp_plugin_space"], {"name": space}
    config.training = {"epochs": 1}
    config.execution = {"name": "inline"}
    assert run_search(config, experiment).completed == 1


@pytest.mark.parametrize("space, lacks", [
    ("test-mlp-no-spec", "Sequential has no .spec dict"),
    ("test-mlp-unregistered", "no network module is registered for spec kind 'test-mlp-unregistered'"),
])
def test_a_space_whose_networks_cannot_be_saved_is_refused_before_training(tmp_path, space, lacks):
    searched(space, tmp_path / "exp")
    retrain = nasforge_with_plugin(["retrain", "--experiment", "exp", "--epochs", "1"], tmp_path)
    refused(retrain, "retrain", f"space {space} cannot be retrained or exported", lacks, PROTOCOL)
    assert "retraining" not in retrain.stdout and "re-ranking" not in retrain.stdout, retrain.stdout
    assert not (tmp_path / "exp" / "retrain").exists()
    export = nasforge_with_plugin(["export", "--experiment", "exp"], tmp_path)
    refused(export, "export", lacks, PROTOCOL)
    assert not (tmp_path / "exp" / "export").exists()
    assert completed_trials(tmp_path / "exp") == 1  # the search is kept

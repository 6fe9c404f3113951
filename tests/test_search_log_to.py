"""``nasforge search --log-to``: a search's trials appear in TensorBoard or MLflow as they finish,
read back from the event file or the local MLflow store; a missing extra is a clear refusal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nasforge.cli.main import main
from nasforge.store import Store

SEARCH = ["search", "--space", "mnist1d-chain", "--strategy", "random", "--budget", "6", "--seed", "3", "--quiet"]


def _stored(experiment: Path) -> dict:
    with Store(experiment / "trials.sqlite", readonly=True) as store:
        return {t.number: t for t in store.trials()}


def test_search_logs_each_trial_to_tensorboard_while_it_runs(tmp_path):
    pytest.importorskip("tensorboard", reason="TensorBoard is not installed: pip install -e '.[tensorboard]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    experiment = tmp_path / "exp"
    done = subprocess.run([sys.executable, "-m", "nasforge", *SEARCH, "--experiment", str(experiment),
                           "--log-to", "tensorboard"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "tensorboard: 6 trials logged" in done.stdout.replace("\n", "")
    stored = _stored(experiment)
    events = EventAccumulator(str(experiment / "tensorboard"))
    events.Reload()
    scalars = events.Scalars("search/val_acc")
    assert sorted(e.step for e in scalars) == sorted(stored)
    for e in scalars:
        assert e.value == pytest.approx(stored[e.step].objective, rel=1e-6)
    best = events.Scalars("search/best_val_acc")
    assert best[-1].value == pytest.approx(max(t.objective for t in stored.values()), rel=1e-6)
    # as they finish: the first trial was written before the last one had finished, not after the search
    first = min(scalars, key=lambda e: e.step)
    assert first.wall_time < max(t.finished for t in stored.values())


def test_search_logs_to_a_local_mlflow_store(tmp_path, capsys, monkeypatch):
    pytest.importorskip("mlflow", reason="MLflow is not installed: pip install -e '.[mlflow]'")
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    experiment, uri = tmp_path / "exp", f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main([*SEARCH, "--experiment", str(experiment), "--log-to", "mlflow", "--log-uri", uri]) == 0
    assert "mlflow: 6 trials logged" in capsys.readouterr().out.replace("\n", "")
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("nasforge/exp").experiment_id])
    parent = [r for r in runs if r.data.tags.get("nasforge.role") == "search"]
    trials = [r for r in runs if r.data.tags.get("nasforge.role") == "trial"]
    assert len(parent) == 1 and parent[0].info.status == "FINISHED" and len(trials) == 6
    stored = {str(t.id): t for t in _stored(experiment).values()}
    for run in trials:
        t = stored[run.data.tags["nasforge.trial_id"]]
        assert run.data.metrics["objective"] == pytest.approx(t.objective)
        assert run.data.params["L0.op"] == str(t.tokens[0])


@pytest.mark.parametrize("target, modules", [("mlflow", ("mlflow", "mlflow.tracking")),
                                             ("tensorboard", ("torch.utils.tensorboard",))])
def test_a_missing_extra_is_refused_before_the_search(tmp_path, capsys, monkeypatch, target, modules):
    for name in modules:  # as if the package were not installed: importing it fails
        monkeypatch.setitem(sys.modules, name, None)
    experiment = tmp_path / "exp"
    assert main([*SEARCH, "--experiment", str(experiment), "--log-to", target]) == 2
    err = capsys.readouterr().err
    assert f"pip install 'nasforge[{target}]'" in err and "Traceback" not in err
    assert not experiment.exists()


def test_log_uri_without_log_to_is_refused(tmp_path, capsys):
    assert main([*SEARCH, "--experiment", str(tmp_path / "exp"), "--log-uri", str(tmp_path / "tb")]) == 2
    assert "--log-uri needs --log-to" in capsys.readouterr().err

"""``nasforge track``: an experiment's trials read back from a local MLflow store and from a
TensorBoard event file, with what was logged before not logged twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from nasforge import SearchConfig, run_search
from nasforge.cli.main import main

@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("track") / "exp"
    config = SearchConfig(budget=6, seed=2)
    config.space = {"name": "mnist1d-chain"}
    config.strategy = {"name": "random"}
    run_search(config, folder)
    return folder


def test_mlflow_runs_read_back(experiment, tmp_path, capsys, monkeypatch):
    pytest.importorskip("mlflow", reason="MLflow is not installed: pip install -e '.[mlflow]'")
    from mlflow.tracking import MlflowClient

    from nasforge.store import Store

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["track", "--log-to", "mlflow", "--experiment", str(experiment), "--to", uri]) == 0
    assert "mlflow: 6 new trials logged, 6 in the experiment" in capsys.readouterr().out
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("nasforge/exp")
    runs = client.search_runs([exp.experiment_id])
    trials = [r for r in runs if r.data.tags.get("nasforge.role") == "trial"]
    parent = [r for r in runs if r.data.tags.get("nasforge.role") == "search"]
    assert len(trials) == 6 and len(parent) == 1
    with Store(experiment / "trials.sqlite", readonly=True) as store:
        stored = {str(t.id): t for t in store.trials()}
    for run in trials:
        t = stored[run.data.tags["nasforge.trial_id"]]
        assert run.data.tags["mlflow.parentRunId"] == parent[0].info.run_id
        assert run.data.metrics["val_acc"] == pytest.approx(t.metrics["val_acc"])
        assert run.data.metrics["objective"] == pytest.approx(t.objective)
        assert run.data.params["L0.op"] == str(t.tokens[0])
        assert run.data.tags["state"] == "COMPLETE"
    best = client.get_metric_history(parent[0].info.run_id, "best_val_acc")
    assert [m.value for m in best][-1] == pytest.approx(max(t.objective for t in stored.values()))
    assert parent[0].data.params["strategy.name"] == "random"
    # again: nothing is logged twice
    assert main(["track", "--log-to", "mlflow", "--experiment", str(experiment), "--to", uri]) == 0
    assert "mlflow: 0 new trials logged" in capsys.readouterr().out
    assert len(client.search_runs([exp.experiment_id])) == 7


def test_tensorboard_event_file_read_back(experiment, tmp_path, capsys):
    pytest.importorskip("tensorboard", reason="TensorBoard is not installed: pip install -e '.[tensorboard]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logdir = tmp_path / "tb"
    assert main(["track", "--log-to", "tensorboard", "--experiment", str(experiment), "--to", str(logdir)]) == 0
    assert "tensorboard: 6 new trials logged" in capsys.readouterr().out
    events = EventAccumulator(str(logdir))
    events.Reload()
    values = [e.value for e in events.Scalars("search/val_acc")]
    steps = [e.step for e in events.Scalars("search/best_val_acc")]
    from nasforge.store import Store

    with Store(experiment / "trials.sqlite", readonly=True) as store:
        objectives = [t.objective for t in store.trials()]
    assert values == pytest.approx(objectives) and steps == list(range(6))
    assert [e.value for e in events.Scalars("search/best_val_acc")][-1] == pytest.approx(max(objectives))
    assert "metrics/params" in events.Tags()["scalars"]


def test_track_refuses_bad_input(tmp_path, capsys):
    assert main(["track", "--log-to", "tensorboard", "--experiment", str(tmp_path / "nope")]) == 2
    assert "no experiment folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["track", "--log-to", "mlflow", "--experiment", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "holds no store yet" in err and "Traceback" not in err


def test_follow_stops_by_itself_once_the_search_is_done(experiment, tmp_path, capsys):
    pytest.importorskip("tensorboard", reason="TensorBoard is not installed: pip install -e '.[tensorboard]'")
    logdir = tmp_path / "tb-follow"
    assert main(["track", "--log-to", "tensorboard", "--experiment", str(experiment), "--to", str(logdir),
                 "--follow", "--interval", "0.1"]) == 0
    assert "tensorboard: 6 new trials logged, 6 in the experiment" in capsys.readouterr().out
    assert any(logdir.iterdir())

"""``nasforge track`` and ``nasforge search --log-to`` the way a new user meets them, through the real
command: NAS-Bench-201 decision names (``edge_1<-0``) that MLflow will not take as keys, destinations
MLflow or TensorBoard cannot use (refused in one line before anything is logged or searched), a run
that fails never left RUNNING, ``--follow`` on a search that was killed or has not started yet."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_paths import completed_trials, error_line, nasforge, ok, shown, user_env
from nasforge.store import Store

pytestmark = pytest.mark.timeout(300)

NB201 = ["search", "--space", "nb201-cifar10", "--strategy", "evolution", "--seed", "1", "--quiet"]
EDGES = ["edge_1<-0", "edge_2<-0", "edge_2<-1", "edge_3<-0", "edge_3<-1", "edge_3<-2"]
NO_MLFLOW_ENV = {"MLFLOW_TRACKING_URI": ""}  # the tests choose the store themselves


def _mlflow():
    return pytest.importorskip("mlflow", reason="MLflow is not installed: pip install -e '.[mlflow]'")


def _runs(uri: str, name: str = "nasforge/exp"):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name(name).experiment_id])
    return ([r for r in runs if r.data.tags.get("nasforge.role") == "search"],
            [r for r in runs if r.data.tags.get("nasforge.role") == "trial"])


def _stored(experiment: Path) -> dict:
    with Store(experiment / "trials.sqlite", readonly=True) as store:
        return {str(t.id): t for t in store.trials()}


def _all_statuses(db: Path) -> list:
    with sqlite3.connect(db) as con:  # every run MLflow keeps, deleted ones too
        return [row[0] for row in con.execute("SELECT status FROM runs")]


@pytest.fixture(scope="module")
def nb201(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("nb201track")
    ok(nasforge([*NB201, "--budget", "12", "--experiment", "exp"], cwd=folder))
    return folder


def _check_nb201_trials(trials, experiment: Path) -> None:
    stored = _stored(experiment)
    assert len(trials) == len(stored)
    for run in trials:
        t = stored[run.data.tags["nasforge.trial_id"]]
        renamed = json.loads(run.data.tags["nasforge.renamed"])  # the original names, kept
        assert sorted(renamed.values()) == EDGES
        assert run.data.params["edge_1_from_0"] == str(t.tokens[0])  # readable, and one key per edge
        assert {renamed[k]: v for k, v in run.data.params.items()} == dict(zip(EDGES, map(str, t.tokens)))
        assert run.data.metrics["objective"] == pytest.approx(t.objective)
        assert run.info.status == "FINISHED"


def test_track_logs_nb201_decisions_to_mlflow(nb201):
    _mlflow()
    folder = nb201 / "track-once"
    folder.mkdir()
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    done = nasforge(["track", "--log-to", "mlflow", "--experiment", nb201 / "exp", "--to", uri], cwd=folder,
                    env=NO_MLFLOW_ENV)
    ok(done)
    assert "mlflow: 12 new trials logged, 12 in the experiment" in " ".join(done.stdout.split()), shown(done)
    parent, trials = _runs(uri)
    assert len(parent) == 1 and parent[0].info.status == "FINISHED"
    _check_nb201_trials(trials, nb201 / "exp")
    assert set(_all_statuses(folder / "mlflow.db")) == {"FINISHED"}, "a run left RUNNING or FAILED"


def test_search_logs_nb201_trials_to_mlflow(tmp_path):
    _mlflow()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = nasforge([*NB201, "--budget", "8", "--experiment", "exp", "--log-to", "mlflow", "--log-uri", uri],
                    cwd=tmp_path, env=NO_MLFLOW_ENV)
    ok(done)
    out = " ".join(done.stdout.split())
    assert f"mlflow: 8 trials logged ({uri})" in out and "logging stopped" not in out, shown(done)
    parent, trials = _runs(uri)
    assert len(parent) == 1 and parent[0].info.status == "FINISHED"
    _check_nb201_trials(trials, tmp_path / "exp")


def test_keys_are_what_mlflow_itself_accepts():
    _mlflow()
    from mlflow.utils.validation import _validate_metric_name, _validate_param_name

    from nasforge.report.tracking import mlflow_key, mlflow_keys

    names = [*EDGES, "L0.op", "S0.B0.expand", "op_1", "a<b", "a_b", "a>b", "acc@1", "x//y", "../up", "/root", ".",
             "", "a/./b", "trailing/", "é:ü", "k" * 300]
    keys = mlflow_keys(names)
    for name, key in keys.items():
        _validate_param_name(key)  # raises on an invalid key
        _validate_metric_name(key)
    assert len(set(keys.values())) == len(names), keys  # unique
    assert {n: keys[n] for n in ("L0.op", "S0.B0.expand", "op_1", "a_b")} == {
        "L0.op": "L0.op", "S0.B0.expand": "S0.B0.expand", "op_1": "op_1", "a_b": "a_b"}  # valid ones kept
    assert keys["a<b"] == "a_b_2" and mlflow_key("edge_3<-2") == "edge_3_from_2"


def test_a_trial_that_fails_to_log_ends_failed_and_is_logged_on_the_next_try(nb201, tmp_path, capsys, monkeypatch):
    """A store that refuses a trial (here: a failure injected into MlflowClient.log_batch): the run ends
    FAILED, with the error as a tag, the track command says so in one line; the next track logs it."""
    _mlflow()
    from mlflow.tracking import MlflowClient

    from nasforge.cli.main import main

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    real = MlflowClient.log_batch
    calls = []

    def failing_third(self, run_id, *args, **kwargs):
        calls.append(run_id)
        if len(calls) == 3:  # the parent's settings, trial 0, then trial 1 fails
            raise RuntimeError("the tracking store went away")
        return real(self, run_id, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "log_batch", failing_third)
    args = ["track", "--log-to", "mlflow", "--experiment", str(nb201 / "exp"), "--to", uri]
    assert main(args) == 1
    cap = capsys.readouterr()
    assert "nasforge track: error: logging to mlflow failed: RuntimeError: the tracking store went away" in cap.err
    assert "Traceback" not in cap.err and "1 new trial logged before logging failed" in " ".join(cap.out.split())
    parent, trials = _runs(uri)
    assert "RUNNING" not in _all_statuses(tmp_path / "mlflow.db")
    assert parent[0].info.status == "FAILED"
    failed = [r for r in trials if r.info.status == "FAILED"]
    assert len(failed) == 1 and "went away" in failed[0].data.tags["nasforge.log_error"]

    monkeypatch.setattr(MlflowClient, "log_batch", real)
    assert main(args) == 0
    assert "11 new trials logged, 12 in the experiment" in " ".join(capsys.readouterr().out.split())
    parent, trials = _runs(uri)  # the half-logged run is put aside (deleted), each trial logged once
    assert parent[0].info.status == "FINISHED"
    _check_nb201_trials(trials, nb201 / "exp")


def test_runs_left_running_by_an_earlier_failure_are_ended(nb201, tmp_path):
    """An mlflow.db from before this fix holds trial runs stuck in RUNNING: they are ended as FAILED
    and put aside, and their trials logged properly."""
    _mlflow()
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("nasforge/exp")
    trial = next(iter(_stored(nb201 / "exp")))
    for _ in range(2):  # two failed attempts
        client.create_run(exp, tags={"nasforge.experiment": str((nb201 / "exp").resolve()), "nasforge.role": "trial",
                                     "nasforge.trial_id": trial})
    ok(nasforge(["track", "--log-to", "mlflow", "--experiment", nb201 / "exp", "--to", uri], cwd=tmp_path,
                env=NO_MLFLOW_ENV))
    assert "RUNNING" not in _all_statuses(tmp_path / "mlflow.db")
    _check_nb201_trials(_runs(uri)[1], nb201 / "exp")


def test_chain_spaces_keep_their_keys(tmp_path):
    _mlflow()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ok(nasforge(["search", "--space", "nbgraph-cora", "--budget", "3", "--seed", "1", "--quiet", "--experiment", "exp",
                 "--log-to", "mlflow", "--log-uri", uri], cwd=tmp_path, env=NO_MLFLOW_ENV))
    parent, trials = _runs(uri)
    assert len(trials) == 3
    for run in trials:
        assert "nasforge.renamed" not in run.data.tags and "op_1" in run.data.params
    assert "nasforge.renamed" not in parent[0].data.tags and parent[0].data.params["space.name"] == "nbgraph-cora"


BAD_DESTINATIONS = [
    ("mlflow", "mlruns", "a plain folder is MLflow's filesystem backend"),
    ("mlflow", "sqlite:////proc/x/mlflow.db", "MLflow cannot log there"),
    ("tensorboard", "/proc/x", "cannot write TensorBoard's log folder there"),
]


@pytest.mark.parametrize("target, where, said", BAD_DESTINATIONS)
def test_track_refuses_a_destination_it_cannot_use(nb201, tmp_path, target, where, said):
    if target == "mlflow":
        _mlflow()
    else:
        pytest.importorskip("tensorboard", reason="TensorBoard is not installed: pip install -e '.[tensorboard]'")
    before = sorted(p.name for p in (nb201 / "exp").iterdir())
    done = nasforge(["track", "--log-to", target, "--experiment", nb201 / "exp", "--to", where], cwd=tmp_path,
                    env=NO_MLFLOW_ENV)
    assert done.returncode == 2, shown(done)
    line = error_line(done)
    assert line.startswith(f"nasforge track: error: --to {where}: {said}"), shown(done)
    assert "Traceback" not in done.stderr, shown(done)
    if target == "mlflow":
        assert "sqlite:///" in line  # what to give instead
    assert not any(tmp_path.iterdir()) and sorted(p.name for p in (nb201 / "exp").iterdir()) == before


@pytest.mark.parametrize("target, where, said", BAD_DESTINATIONS)
def test_search_refuses_a_destination_before_it_starts(tmp_path, target, where, said):
    if target == "mlflow":
        _mlflow()
    else:
        pytest.importorskip("tensorboard", reason="TensorBoard is not installed: pip install -e '.[tensorboard]'")
    done = nasforge(["search", "--space", "nbgraph-cora", "--budget", "5", "--log-to", target, "--log-uri", where],
                    cwd=tmp_path, env=NO_MLFLOW_ENV)
    assert done.returncode == 2, shown(done)
    assert error_line(done).startswith(f"nasforge search: error: --log-uri {where}: {said}"), shown(done)
    assert "Traceback" not in done.stderr and "trial" not in done.stdout, shown(done)
    assert not any(tmp_path.iterdir()), "the search started: " + str(list(tmp_path.rglob("*")))


def test_track_counts_one_trial_in_the_singular(tmp_path):
    pytest.importorskip("tensorboard", reason="TensorBoard is not installed: pip install -e '.[tensorboard]'")
    ok(nasforge([*NB201, "--budget", "1", "--experiment", "exp"], cwd=tmp_path))
    done = nasforge(["track", "--log-to", "tensorboard", "--experiment", "exp", "--follow", "--interval", "0.2"],
                    cwd=tmp_path)
    ok(done)
    assert "tensorboard: 1 new trial logged, 1 in the experiment" in " ".join(done.stdout.split()), shown(done)


def test_follow_ends_when_the_search_was_killed(tmp_path):
    """kill -9: the search's lock is gone with it, its budget never reached; --follow logs what there is
    and ends, saying so (it used to poll forever)."""
    pytest.importorskip("tensorboard", reason="TensorBoard is not installed: pip install -e '.[tensorboard]'")
    search = subprocess.Popen([sys.executable, "-m", "nasforge", *NB201, "--budget", "1000000", "--experiment",
                               "exp"], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=user_env())
    try:
        deadline = time.time() + 120
        while completed_trials(tmp_path / "exp") < 3:
            assert search.poll() is None and time.time() < deadline, "the search did not get going"
            time.sleep(0.05)
    finally:
        search.send_signal(signal.SIGKILL)
        search.wait()
    states = [t.state for t in _stored(tmp_path / "exp").values()]
    stored, finished = len(states), len([s for s in states if s != "RUNNING"])
    done = nasforge(["track", "--log-to", "tensorboard", "--experiment", "exp", "--follow", "--interval", "0.2"],
                    cwd=tmp_path, timeout=60)
    ok(done)
    out = " ".join(done.stdout.split())
    assert f"tensorboard: {finished} new trials logged, {stored} in the experiment" in out, shown(done)
    assert f"no search is writing exp any more and it stopped before its budget: {finished} finished trials " \
           "logged" in out, shown(done)


def test_follow_waits_for_a_search_about_to_start(tmp_path):
    pytest.importorskip("tensorboard", reason="TensorBoard is not installed: pip install -e '.[tensorboard]'")
    track = subprocess.Popen([sys.executable, "-m", "nasforge", "track", "--log-to", "tensorboard", "--experiment",
                              "exp", "--follow", "--interval", "0.2"], cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=user_env({"PYTHONUNBUFFERED": "1"}))
    try:
        first = track.stdout.readline()  # said before the search is started
        assert "waiting for a search to start in exp" in first, (first, track.stderr.read() if track.poll() else "")
        ok(nasforge([*NB201, "--budget", "6", "--experiment", "exp"], cwd=tmp_path))
        out, err = track.communicate(timeout=60)
    finally:
        if track.poll() is None:
            track.kill()
            track.wait()
    assert track.returncode == 0, err
    assert "6 in the experiment" in " ".join(out.split()) and "Traceback" not in err, (out, err)
    assert any((tmp_path / "exp" / "tensorboard").iterdir())

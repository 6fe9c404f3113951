"""The Ray executor's trial clock and failures, on one real private Ray instance for the module
(a start takes 20-60 s on two cores): a trial's time is its own, never a worker's start-up or its
estimator's build; a trial over its time limit is stopped and its worker replaced; a worker that
dies under a trial gives a ``lost`` outcome the loop retries."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nasforge import Store, run_search
from nasforge.build import estimator_recipe
from nasforge.execution import create_executor
from nasforge.execution.local import WorkerSetupError
from nasforge.execution.ray_executor import RayCapacityWarning, RayExecutor, start_private_ray
from nasforge.search import store_path

from test_execution import faulty_config, synthetic_config

ray = pytest.importorskip("ray")

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def private_ray():
    """One loopback-only Ray instance for the module's searches (each search joins it, as it would
    join a cluster). Its workers see the test plugins (``faulty_estimator``) through PYTHONPATH;
    the proxy settings are those of the ``ray_offline`` fixture (tests/conftest.py)."""
    if ray.is_initialized():
        pytest.skip("a Ray instance is already running in this process")
    with pytest.MonkeyPatch.context() as patch:
        for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
            patch.setenv(name, "http://127.0.0.1:9")
        for name in ("no_proxy", "NO_PROXY"):
            patch.setenv(name, "127.0.0.1,localhost,::1")
        paths = [str(TESTS), str(TESTS.parent), os.environ.get("PYTHONPATH", "")]
        patch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))
        start_private_ray(num_cpus=2)
        try:
            yield
        finally:
            ray.shutdown()


@pytest.mark.usefixtures("private_ray")
def test_the_first_trial_is_timed_without_the_workers_start_up_and_estimator_build(tmp_path):
    """Each Ray worker built its estimator inside its first task, under the clock the driver had
    started at submit: with a build (3 s here; torch's imports and the data in real searches)
    longer than --trial-timeout, every first trial timed out, and so did the next on its fresh
    worker. The build now happens before the worker takes a trial."""
    config = synthetic_config(budget=3, workers=1, seconds=0.1, executor="ray", trial_timeout=2)
    config.training["start_seconds"] = 3.0  # paid by warm_up, before the worker is ready
    result = run_search(config, tmp_path / "exp")
    assert result.completed == 3 and result.failed == 0


@pytest.mark.usefixtures("private_ray")
def test_a_hung_trial_times_out_and_a_dead_worker_is_lost_and_retried_each_on_a_fresh_worker(tmp_path):
    """Every worker's build takes longer than the limit. The hung trial's worker is killed at the
    limit and the crashed one's trial comes back ``lost``; each replacement builds outside the
    next trial's clock, so the retry completes."""
    config = faulty_config(tmp_path, ["hang", "crash", "ok"], budget=2, executor="ray", trial_timeout=2,
                           retries=1)
    config.plugins = ["slow_start_estimator"]
    config.training.update(estimator="slow-start-faulty", start_seconds=3.0)
    result = run_search(config, tmp_path / "exp")
    with Store(store_path(tmp_path / "exp")) as store:
        trials = store.trials()
    hung = [t for t in trials if t.number == 0]
    assert [(t.attempt, t.state) for t in hung] == [(0, "FAILED")] and "time limit" in hung[0].error
    crashed = sorted((t for t in trials if t.number == 1), key=lambda t: t.attempt)
    assert [(t.attempt, t.state) for t in crashed] == [(0, "FAILED"), (1, "COMPLETE")], crashed
    assert crashed[0].error.startswith("worker lost"), crashed[0].error
    assert crashed[1].worker.startswith("ray:")
    assert result.completed == 1 and result.failed == 1


@pytest.mark.usefixtures("private_ray")
def test_a_worker_that_cannot_build_its_estimator_stops_the_search_before_any_trial():
    """Each trial's task used to fail in the build and come back lost, to be retried and lost again."""
    settings = {**synthetic_config(executor="ray").to_dict(), "plugins": ["no_such_plugin_module"]}
    executor = create_executor("ray", workers=2)
    with pytest.raises(WorkerSetupError, match="could not build the estimator: .*no_such_plugin_module"):
        executor.start(estimator_recipe(settings))
    assert not executor.pool and ray.is_initialized()  # its actors killed; the Ray it joined left running


def test_workers_the_cluster_cannot_hold_are_warned_of():
    """Each worker is an actor that holds its CPUs and GPUs for the whole search; the search runs on
    those Ray can place, and asking for more than the cluster has is said, not silently slower."""
    executor = RayExecutor(workers=4, cpus_per_trial=2, gpus_per_trial=1)
    with pytest.warns(RayCapacityWarning) as caught:
        executor._warn_if_short({"CPU": 8.0, "GPU": 2.0})
    assert [str(w.message) for w in caught] == [
        "4 Ray workers need 4 GPUs and the Ray cluster has 2: trials run on the workers Ray can place, the rest "
        "join when it can (lower --workers, or add nodes)"]


@pytest.mark.usefixtures("private_ray")
def test_a_search_with_more_workers_than_the_cluster_holds_runs_on_those_it_can_place(tmp_path):
    """The instance has 2 CPUs and each of 3 workers asks for 1: one actor is never placed. Its trial
    waits for a free actor instead (its clock not running), and the search finishes its budget."""
    config = synthetic_config(budget=5, workers=3, seconds=0.2, executor="ray", trial_timeout=3)
    with pytest.warns(RayCapacityWarning):
        result = run_search(config, tmp_path / "exp")
    assert result.completed == 5 and result.failed == 0

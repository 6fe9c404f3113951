"""Executors with real worker processes: parallel trials, dead workers, time and memory limits."""

from __future__ import annotations

import time

import pytest
import torch

from nasforge import SearchConfig, Store, run_search
from nasforge.config import ConfigError
from nasforge.build import estimator_recipe
from nasforge.execution import Task, create_executor
from nasforge.search import SearchStopped, store_path
from nasforge.strategies.reinforce import MAX_IMPORTANCE, Reinforce, importance_weights
from nasforge.spaces.chain_cnn import ChainCNNSpace


def synthetic_config(budget=6, workers=2, seconds=0.2, strategy="random", executor="local", **execution):
    config = SearchConfig(budget=budget, seed=3, dataset="digits")
    config.space = {"name": "chain-cnn", "num_layers": 2, "dims": 1}
    config.strategy = {"name": strategy}
    config.training = {"estimator": "synthetic", "seconds": seconds}
    config.execution = {"name": executor, "workers": workers, **execution}
    return config


def faulty_config(tmp_path, plan, budget, **execution):
    config = synthetic_config(budget=budget, workers=1, **execution)
    config.plugins = ["faulty_estimator"]
    config.training = {"estimator": "faulty", "plan": plan, "counter": str(tmp_path / "counter")}
    return config


def final_attempts(store: Store):
    """The last attempt of every budget slot."""
    last = {}
    for t in store.trials():
        last[t.number] = t
    return last


def test_local_pool_runs_trials_in_parallel_on_several_workers(tmp_path):
    start = time.perf_counter()
    result = run_search(synthetic_config(budget=8, workers=2, seconds=0.5), tmp_path / "exp")
    elapsed = time.perf_counter() - start
    assert result.completed == 8
    with Store(store_path(tmp_path / "exp")) as store:
        trials = store.trials()
    assert sorted(t.number for t in trials) == list(range(8))
    assert {t.worker for t in trials} == {"local-1", "local-2"}
    # two trials overlapped in time: some trial started before another one finished
    spans = sorted((t.started, t.finished) for t in trials)
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:]))
    assert elapsed < 8 * 0.5 + 30  # generous: worker start-up dominates on a busy machine


def test_worker_death_time_limit_memory_limit_exceptions_and_nan_each_fail_only_their_trial(tmp_path):
    plan = ["ok", "crash", "ok", "hang", "memory", "raise", "nan", "ok"]
    config = faulty_config(tmp_path, plan, budget=7, trial_timeout=8, memory_limit_mb=900, retries=1)
    result = run_search(config, tmp_path / "exp")
    with Store(store_path(tmp_path / "exp")) as store:
        trials = store.trials()
        last = final_attempts(store)
    assert sorted(last) == list(range(7))
    assert not [t for t in trials if t.state == "RUNNING" or t.needs_retry]
    lost = [t for t in trials if t.error and t.error.startswith("worker lost")]
    assert len(lost) == 1 and "signal 9" in lost[0].error
    retry = [t for t in trials if t.attempt == 1]
    assert len(retry) == 1 and retry[0].number == lost[0].number and retry[0].tokens == lost[0].tokens
    assert retry[0].state == "COMPLETE"
    errors = [t.error for t in last.values() if t.state == "FAILED"]
    assert any("time limit" in e for e in errors)
    assert any("memory limit" in e for e in errors)
    assert any("raises on purpose" in e for e in errors)
    assert any("nan" in e for e in errors)
    assert result.completed == 3 and result.failed == 4  # per budget slot: the lost attempt's retry completed


def test_a_workers_one_off_start_cost_is_not_counted_against_the_trial_timeout(tmp_path):
    """A fresh worker's first trial paid its process's one-off costs (torch imports its compiler
    stack on the first FLOP count: seconds on a busy machine), so with a short --trial-timeout it
    timed out, its replacement paid them again, and trials of a second each failed one after
    another. Workers now pay them before they report ready."""
    config = synthetic_config(budget=3, workers=1, seconds=0.1, trial_timeout=2)
    config.training["start_seconds"] = 3.0  # longer than the timeout: counted, every trial would fail
    result = run_search(config, tmp_path / "exp")
    assert result.completed == 3 and result.failed == 0


@pytest.mark.parametrize("estimator", ["train", "zero-cost"])
def test_estimators_that_count_flops_pay_for_the_counter_in_warm_up(estimator):
    """The one-off cost the test above stands for: torch's first FLOP count imports its compiler
    stack. A fresh process, so that nothing imported it before."""
    import subprocess
    import sys

    code = ("import sys; from nasforge.estimators.base import create_estimator; "
            f"e = create_estimator({estimator!r}); before = 'torch._dynamo' in sys.modules; e.warm_up(); "
            "print(before, 'torch._dynamo' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.stdout.split() == ["False", "True"], run.stderr


def test_a_memory_limit_below_an_idle_workers_is_refused_once(tmp_path):
    """Under what a ready worker holds (Python and torch: hundreds of MiB), every trial was stopped,
    one by one, each saying only that the worker used more than the limit."""
    with pytest.raises(ValueError, match=r"memory limit of 50 MiB is below what a worker holds before any trial"):
        run_search(synthetic_config(budget=3, workers=1, seconds=0, memory_limit_mb=50), tmp_path / "exp")
    assert not (tmp_path / "exp").exists()


def test_a_lost_trial_is_not_retried_beyond_the_configured_number(tmp_path):
    config = faulty_config(tmp_path, ["crash", "crash", "crash"], budget=2, retries=1)
    run_search(config, tmp_path / "exp")
    with Store(store_path(tmp_path / "exp")) as store:
        first = [t for t in store.trials() if t.number == 0]
    assert [(t.attempt, t.state) for t in first] == [(0, "FAILED"), (1, "FAILED")]
    assert all("worker lost" in t.error for t in first)


def test_consecutive_failures_stop_the_search_and_leave_nothing_running(tmp_path):
    config = faulty_config(tmp_path, ["raise"] * 10, budget=10)
    config.max_consecutive_failures = 3
    with pytest.raises(SearchStopped, match="3 consecutive failed trials.*raises on purpose"):
        run_search(config, tmp_path / "exp")
    with Store(store_path(tmp_path / "exp")) as store:
        assert not store.trials(["RUNNING"])


def test_bad_execution_settings_are_refused_before_any_trial(tmp_path):
    for execution, message in [({"name": "local", "workers": 0}, "workers"),
                               ({"name": "local", "trial_timeout": -1}, "trial_timeout"),
                               ({"name": "inline", "workers": 2}, "inline"),
                               ({"name": "local", "retries": -1}, "retries"),
                               ({"name": "mpi"}, "unknown executor 'mpi'; choose one of: auto, inline, local"),
                               ({"name": "rey"}, "did you mean 'ray'")]:
        config = synthetic_config()
        config.execution = execution
        with pytest.raises(ValueError, match=message):
            run_search(config, tmp_path / "exp")
        assert not store_path(tmp_path / "exp").exists()
    config = synthetic_config()
    config.plugins = ["no_such_plugin_module"]
    with pytest.raises(ConfigError, match="no_such_plugin_module"):
        run_search(config, tmp_path / "exp")


def test_executor_outcomes_come_back_as_tasks_finish(tmp_path):
    config = synthetic_config(seconds=0.0)
    executor = create_executor("local", workers=2)
    executor.start(estimator_recipe(config.to_dict()))
    try:
        tokens = tuple(ChainCNNSpace(num_layers=2, dims=1).sample(__import__("numpy").random.default_rng(0)))
        executor.submit(Task(1, tokens, 0))
        executor.submit(Task(2, tokens, 0))
        with pytest.raises(RuntimeError, match="busy"):
            executor.submit(Task(3, tokens, 0))
        got = []
        while len(got) < 2:
            got += executor.wait(timeout=60)
        assert sorted(o.trial_id for o in got) == [1, 2] and all(o.kind == "ok" for o in got)
    finally:
        executor.shutdown()
    assert executor.running() == 0


@pytest.mark.parametrize("strategy", ["reinforce", "evolution"])
def test_asynchronous_strategies_learn_from_results_in_any_order(tmp_path, strategy):
    config = synthetic_config(budget=16, workers=2, seconds=0.05, strategy=strategy)
    if strategy == "reinforce":
        config.strategy = {"name": "reinforce", "batch_size": 4}
    if strategy == "evolution":
        config.strategy = {"name": "evolution", "population_size": 6, "sample_size": 3}
    result = run_search(config, tmp_path / "exp")
    assert result.completed == 16
    with Store(store_path(tmp_path / "exp")) as store:
        state = store.latest_strategy_state()
    if strategy == "reinforce":
        assert state["updates"] == 4  # 16 results in batches of 4, whatever their order


def test_importance_weights_are_one_for_fresh_children_and_the_probability_ratio_for_stale_ones():
    log_probs = torch.tensor([-1.0, -2.0, -3.0])
    w = importance_weights(log_probs, [-1.5, -2.0, -10.0], [False, True, True])
    assert w[0] == 1.0 and w[1] == pytest.approx(1.0) and w[2] == MAX_IMPORTANCE
    w = importance_weights(log_probs, [-1.5, -1.0, None], [True, True, True])
    assert w[0] == pytest.approx(torch.exp(torch.tensor(0.5)).item()) and w[1] == pytest.approx(0.3678794)
    assert w[2] == 1.0  # no stored probability (an old store): weighted as fresh


def test_stale_children_give_the_gradient_of_the_current_policy():
    """Weighted by pi / pi_old, an exact expectation over children drawn from an older policy
    equals the exact policy gradient of the current one."""
    space = ChainCNNSpace(num_layers=1, dims=1)
    s = Reinforce(batch_size=2, entropy_weight=0.0)
    s.setup(space, seed=0)
    import itertools

    import numpy as np

    archs = [tuple(a) for a in itertools.product(*[range(len(d.choices)) for d in space.decisions])]
    rng = np.random.default_rng(0)
    rewards = torch.tensor(rng.uniform(size=len(archs)), dtype=torch.float32)
    with torch.no_grad():
        old_lp, _ = s.controller.score(archs)
    for p in s.controller.parameters():  # the policy moves on after these children were sampled
        p.data.add_(0.05 * torch.randn_like(p))

    def grads(loss):
        s.controller.zero_grad()
        loss.backward()
        return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten()
                          for p in s.controller.parameters()])

    lp, _ = s.controller.score(archs)
    exact = grads(-(lp.exp().detach() * rewards * lp).sum())  # grad of -E_pi[R]
    lp, ent = s.controller.score(archs)
    w = importance_weights(lp, old_lp.tolist(), [True] * len(archs))
    weighted = grads(-(old_lp.exp() * w * rewards * lp).sum())
    assert torch.allclose(exact, weighted, rtol=1e-4, atol=1e-6)


@pytest.mark.usefixtures("ray_offline")
def test_search_on_a_real_local_ray_instance(tmp_path):
    pytest.importorskip("ray")
    config = synthetic_config(budget=8, workers=4, seconds=0.2, executor="ray", cpus_per_trial=0.5)
    result = run_search(config, tmp_path / "exp")
    assert result.completed == 8
    with Store(store_path(tmp_path / "exp")) as store:
        trials = store.trials()
    assert sorted(t.number for t in trials) == list(range(8))
    assert all(t.worker.startswith("ray:") for t in trials)
    spans = sorted((t.started, t.finished) for t in trials)
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:]))


def test_a_worker_that_cannot_build_its_estimator_stops_the_search_with_the_reason(tmp_path):
    config = faulty_config(tmp_path, [], budget=2)
    recipe = estimator_recipe({**config.to_dict(), "plugins": ["no_such_plugin_module"]})
    executor = create_executor("local", workers=1)
    with pytest.raises(Exception, match="no_such_plugin_module"):
        executor.start(recipe)
    assert executor.running() == 0 and not executor.pool


def test_workers_are_recycled_after_the_configured_number_of_trials(tmp_path):
    config = synthetic_config(budget=7, workers=1, seconds=0.0, recycle_after=3)
    run_search(config, tmp_path / "exp")
    with Store(store_path(tmp_path / "exp")) as store:
        workers = [t.worker for t in store.trials()]
    assert workers == ["local-1"] * 3 + ["local-2"] * 3 + ["local-3"]
    with pytest.raises(ValueError, match="recycle_after"):
        create_executor("local", recycle_after=0)

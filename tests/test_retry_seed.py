"""A retried trial runs again with the same tokens and the same seed (search.py's documented rule),
checked through real worker processes, one of which dies mid-trial, and the store's rows."""

from __future__ import annotations

from nasforge import SearchConfig, Store, run_search
from nasforge.search import store_path


def test_a_trial_whose_worker_died_is_retried_with_its_tokens_and_seed(tmp_path):
    config = SearchConfig(budget=3, seed=11, dataset="digits")
    config.plugins = ["seed_echo_estimator"]
    config.space = {"name": "chain-cnn", "num_layers": 2, "dims": 1}
    config.strategy = {"name": "random"}
    # evaluation 0 succeeds, evaluation 1 kills its worker (SIGKILL), every later one succeeds
    config.training = {"estimator": "faulty-seed-echo", "plan": ["ok", "crash"], "counter": str(tmp_path / "counter")}
    config.execution = {"name": "local", "workers": 1, "retries": 1}
    run_search(config, tmp_path / "exp")
    with Store(store_path(tmp_path / "exp")) as store:
        trials = store.trials()
    lost = [t for t in trials if t.error and t.error.startswith("worker lost")]
    assert len(lost) == 1
    lost = lost[0]
    retry = [t for t in trials if t.number == lost.number and t.attempt == 1]
    assert len(retry) == 1
    retry = retry[0]
    assert retry.state == "COMPLETE"
    assert retry.tokens == lost.tokens
    assert retry.seed == lost.seed
    assert retry.metrics["seed_used"] == lost.seed  # the worker really trained with it
    complete = [t for t in trials if t.state == "COMPLETE"]
    assert len(complete) == 3
    assert all(t.metrics["seed_used"] == t.seed for t in complete)
    assert len({t.seed for t in complete}) == 3  # each budget slot has its own seed

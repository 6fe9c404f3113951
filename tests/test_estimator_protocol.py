"""The loop reads an estimator only through what ``Estimator`` declares: a plugin that evaluates in
the search's process, keeps state through ``save``/``load`` and names its own fidelity keys is
honoured without the loop knowing its names (estimators/base.py)."""

from __future__ import annotations

from nasforge import SearchConfig, Store, run_search
from nasforge.search import store_path


def _config(budget: int) -> SearchConfig:
    config = SearchConfig(budget=budget, seed=3, dataset="digits")
    config.plugins = ["counting_estimator"]
    config.space = {"name": "chain-cnn", "num_layers": 2, "dims": 2}
    config.strategy = {"name": "random"}
    config.training = {"estimator": "counting"}
    config.reward = {"metric": "score", "transform": "identity"}
    return config


def test_a_plugins_declared_hooks_and_keys_are_what_the_loop_uses(tmp_path):
    experiment = tmp_path / "exp"
    run_search(_config(4), experiment)
    config = _config(6)
    run_search(config, experiment, resume=True)
    with Store(store_path(experiment), create=False, readonly=True) as store:
        trials = sorted(store.trials(), key=lambda t: t.number)
    # in_process_only: one estimator object counted every evaluation; load() carried the count over
    assert [t.metrics["count"] for t in trials] == [1, 2, 3, 4, 5, 6]
    # its own pruned_at key marks the early stops; its own promised key is what the strategy learned
    assert [t.state for t in trials] == ["PRUNED", "COMPLETE"] * 3
    assert [t.reward for t in trials] == [0.1, 0.5] * 3

"""The search loop through the Python API: real training on a slice of MNIST-1D, failures, resume."""

from __future__ import annotations

import pytest

from nasforge import SearchConfig, Store, run_search
from nasforge.config import ConfigError
from nasforge.estimators.train import TrainEstimator
from nasforge.search import store_path


def tiny_config(**overrides) -> SearchConfig:
    config = SearchConfig(budget=4, seed=1)
    config.space = {"name": "chain-cnn", "num_layers": 2}
    config.strategy = {"name": "reinforce", "batch_size": 2}
    config.training = {"epochs": 2, "batch_size": 64, "score_epochs": 2}
    config.execution = {"name": "inline"}  # the loop's logic; tests/test_execution.py covers the workers
    for k, v in overrides.items():
        setattr(config, k, v)
    return config


def test_search_trains_children_and_updates_the_controller(tmp_path, mnist1d_slice):
    progress = []
    result = run_search(tiny_config(), tmp_path / "exp", data=mnist1d_slice, on_progress=progress.append)
    assert result.completed == 4 and result.failed == 0
    assert progress[-1].done == 4 and progress[-1].best is not None
    with Store(store_path(tmp_path / "exp"), create=False) as s:
        trials = s.trials()
        assert [t.number for t in trials] == [0, 1, 2, 3]
        for t in trials:
            assert t.state == "COMPLETE" and 0.0 <= t.objective <= 1.0
            assert abs(t.reward - t.objective ** 3) < 1e-12          # the paper's cubed reward
            assert len(t.metrics["val_acc_history"]) == 2 and t.metrics["params"] > 0 and t.metrics["flops"] > 0
            assert "log_prob" in t.info
        assert max(t.objective for t in trials) > 0.2                 # learned something (chance is 0.1)
        assert s.latest_strategy_state()["updates"] == 2


def test_a_failing_child_fails_its_trial_only(tmp_path, mnist1d_slice, monkeypatch):
    real = TrainEstimator.evaluate
    calls = {"n": 0}

    def sometimes_broken(self, tokens, seed):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (simulated)")
        if calls["n"] == 3:
            return {**real(self, tokens, seed), "val_acc": float("nan")}
        return real(self, tokens, seed)

    monkeypatch.setattr(TrainEstimator, "evaluate", sometimes_broken)
    config = tiny_config()
    config.reward = {"metric": "val_acc", "transform": "cube", "failure_penalty": -0.5}
    result = run_search(config, tmp_path / "exp", data=mnist1d_slice)
    assert result.completed == 2 and result.failed == 2
    with Store(store_path(tmp_path / "exp"), create=False) as s:
        failed = s.trials(["FAILED"])
        assert "shapes cannot be multiplied" in failed[0].error
        assert failed[1].error and failed[1].reward == -0.5


def test_too_many_parameters_fails_the_trial_with_a_reason(tmp_path, mnist1d_slice):
    config = tiny_config(budget=2)
    config.training = {**config.training, "max_params": 10}
    from nasforge.search import SearchStopped

    config.max_consecutive_failures = 2
    with pytest.raises(SearchStopped, match="2 consecutive failed trials"):
        run_search(config, tmp_path / "exp", data=mnist1d_slice)
    with Store(store_path(tmp_path / "exp"), create=False) as s:
        assert all("exceed the limit of 10" in t.error for t in s.trials())


def test_resume_continues_and_refuses_other_settings(tmp_path, mnist1d_slice):
    exp = tmp_path / "exp"
    run_search(tiny_config(budget=3), exp, data=mnist1d_slice)
    with pytest.raises(ConfigError, match="already holds trials"):
        run_search(tiny_config(budget=3), exp, data=mnist1d_slice)
    other = tiny_config(budget=5)
    other.strategy = {"name": "random"}
    with pytest.raises(ConfigError, match="strategy.name: stored 'reinforce', now 'random'"):
        run_search(other, exp, resume=True, data=mnist1d_slice)
    result = run_search(tiny_config(budget=5), exp, resume=True, data=mnist1d_slice)
    assert result.completed == 5
    again = run_search(tiny_config(budget=5), exp, resume=True, data=mnist1d_slice)  # finished: adds nothing
    assert again.completed == 5


def test_resume_reruns_a_trial_that_was_running(tmp_path, mnist1d_slice):
    exp = tmp_path / "exp"
    run_search(tiny_config(budget=2), exp, data=mnist1d_slice)
    with Store(store_path(exp), create=False) as s:  # pretend the driver died during trial 1
        s.conn.execute("UPDATE trials SET state = 'RUNNING', finished = NULL WHERE number = 1")
    run_search(tiny_config(budget=3), exp, resume=True, data=mnist1d_slice)
    with Store(store_path(exp), create=False) as s:
        by_number = {}
        for t in s.trials():
            by_number.setdefault(t.number, []).append(t)
        assert [t.state for t in by_number[1]] == ["FAILED", "COMPLETE"]
        assert by_number[1][1].attempt == 1 and by_number[1][1].tokens == by_number[1][0].tokens
        assert not s.trials(["RUNNING"]) and sorted(by_number) == [0, 1, 2]


def test_bad_settings_are_refused_before_the_store_is_touched(tmp_path, mnist1d_slice):
    for bad, message in [({"training": {"optimizer": "lion"}}, "optimizer"),
                         ({"strategy": {"name": "nope"}}, "unknown strategy 'nope'"),
                         ({"space": {"name": "chain-cnn", "num_layers": 0}}, "num_layers"),
                         ({"training": {"epoch": 3}}, "epoch")]:
        config = tiny_config()
        config.update(bad)
        with pytest.raises((ValueError, ConfigError), match=message):
            run_search(config, tmp_path / "exp", data=mnist1d_slice)
        assert not store_path(tmp_path / "exp").exists()


def test_search_on_2d_images(tmp_path):
    """digits (8x8 images): the space becomes 2-D by itself and children train."""
    from nasforge.data import load_dataset

    data = load_dataset("digits")
    config = tiny_config(budget=2, dataset="digits")
    result = run_search(config, tmp_path / "exp", data=data)
    assert result.completed == 2
    with Store(store_path(tmp_path / "exp"), create=False) as s:
        assert s.config()["space"]["dims"] == 2  # read off the data, and stored: the store alone rebuilds the space
        assert len(s.trials()[0].tokens) == 5 + 6 + 3  # 2-D layers have kernel_h and kernel_w (1-D: 12)


def test_an_invalid_proposal_fails_its_trial_only(tmp_path, mnist1d_slice, monkeypatch):
    from nasforge.strategies.random_search import RandomSearch

    real_ask = RandomSearch.ask
    calls = {"n": 0}

    def ask(self):
        calls["n"] += 1
        proposal = real_ask(self)
        if calls["n"] == 1:
            proposal.tokens = (99,) + tuple(proposal.tokens[1:])
        return proposal

    monkeypatch.setattr(RandomSearch, "ask", ask)
    config = tiny_config(budget=2)
    config.strategy = {"name": "random"}
    result = run_search(config, tmp_path / "exp", data=mnist1d_slice)
    assert result.completed == 1 and result.failed == 1
    with Store(store_path(tmp_path / "exp"), create=False) as s:
        bad = s.trials(["FAILED"])[0]
        assert bad.error.startswith("invalid architecture:") and "must be in" in bad.error


def test_a_search_stored_by_an_older_version_resumes(tmp_path, mnist1d_slice):
    """Settings added since (plugins, execution) are absent from an older store's config, and its
    schema is version 1: the search resumes all the same."""
    import json
    import sqlite3

    import io

    import torch

    from nasforge.store import dump_state

    exp = tmp_path / "exp"
    run_search(tiny_config(budget=2), exp, data=mnist1d_slice)
    with Store(store_path(exp)) as store:  # the controller's state as version 1 saved it: inline
        state = store.latest_strategy_state()
    state.update(torch.load(io.BytesIO(state.pop("policy")), weights_only=True))
    state["optimizer"] = torch.load(io.BytesIO(state.pop("policy_optimizer")), weights_only=True)
    con = sqlite3.connect(store_path(exp))
    con.execute("DELETE FROM strategy_states")
    con.execute("INSERT INTO strategy_states (trial_id, keep, created, state) VALUES (NULL, 1, 0, ?)",
                (dump_state(state),))
    config = json.loads(con.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()[0])
    for key in ("plugins", "execution"):
        config.pop(key)
    con.execute("UPDATE meta SET value = ? WHERE key = 'config'", (json.dumps(config),))
    con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    for table in ("blobs", "state_blobs"):
        con.execute(f"DROP TABLE {table}")
    for index in ("strategy_states_unkept", "trials_objective"):
        con.execute(f"DROP INDEX {index}")
    for column in ("feasible", "worker"):
        con.execute(f"ALTER TABLE trials DROP COLUMN {column}")
    con.commit()
    con.close()
    with pytest.raises(ConfigError, match="strategy.batch_size"):  # what differs is still named
        run_search(tiny_config(budget=4, strategy={"name": "reinforce", "batch_size": 3}), exp, resume=True,
                   data=mnist1d_slice)
    result = run_search(tiny_config(budget=4), exp, resume=True, data=mnist1d_slice)
    assert result.completed == 4

"""Final selection: the search's top children re-ranked by the final recipe on the validation split."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from nasforge import SearchConfig, Store, run_search
from nasforge import final_selection
from nasforge.data.datasets import Dataset, split_validation
from nasforge.estimators.base import TrialFailed
from nasforge.estimators.train import retrain_recipe
from nasforge.final_selection import final_choice, rerank, validation_score
from nasforge.search import store_path
from nasforge.spaces.base import space_of_section


def tiny_config(budget: int = 5, reward=None) -> SearchConfig:
    config = SearchConfig(budget=budget, seed=3)
    config.space = {"name": "chain-cnn", "num_layers": 2}
    config.strategy = {"name": "random"}
    config.training = {"epochs": 1, "batch_size": 64, "score_epochs": 1}
    config.execution = {"name": "inline"}
    if reward is not None:
        config.reward = reward
    return config


@pytest.fixture()
def searched(tmp_path, mnist1d_slice):
    """A finished 5-child search on a real slice of MNIST-1D: (experiment, config)."""
    config = tiny_config()
    run_search(config, tmp_path / "exp", data=mnist1d_slice)
    return tmp_path / "exp", config


def _recipe(config: SearchConfig):
    return retrain_recipe(config.training, epochs=2)


def test_validation_score_never_reads_the_test_split(mnist1d_slice):
    data = mnist1d_slice
    blind = Dataset("no-test", data.x_train, data.y_train, np.full_like(data.x_test, np.nan),
                    np.full_like(data.y_test, -1), data.num_classes)
    space = space_of_section({"name": "chain-cnn", "num_layers": 2})
    tokens = space.sample(np.random.default_rng(0))
    recipe = retrain_recipe({"epochs": 1}, epochs=2)
    first = validation_score(space, tokens, blind, {}, recipe, seed=0)
    again = validation_score(space, tokens, data, {}, recipe, seed=0)
    assert first["val_acc"] == again["val_acc"]  # deterministic for a seed, test split unused
    # scored on the search's validation split (20% held out, split seed 0): a multiple of 1/its size
    n_val = len(split_validation(data.x_train, data.y_train, 0.2, 0)[1][1])
    assert 0.1 < first["val_acc"] <= 1.0 and abs(first["val_acc"] * n_val - round(first["val_acc"] * n_val)) < 1e-9


def test_the_final_recipe_decides_and_ties_keep_the_search_order(searched, mnist1d_slice, monkeypatch):
    experiment, config = searched
    with Store(store_path(experiment), create=False) as store:
        top = store.best(3)
        # the search's third is best under the final recipe; its first and second tie
        scores = {tuple(top[0].tokens): 0.90, tuple(top[1].tokens): 0.90, tuple(top[2].tokens): 0.95}
        trained = []

        def fake_score(space, tokens, data, training, recipe, seed, device="auto"):
            trained.append(tuple(tokens))
            return {"val_acc": scores[tuple(tokens)], "train_seconds": 0.0}

        monkeypatch.setattr(final_selection, "validation_score", fake_score)
        space = space_of_section(config.space)
        ranking = rerank(store, space, mnist1d_slice, _recipe(config), 3)
        assert [t.id for t, _ in ranking] == [top[2].id, top[0].id, top[1].id]
        assert final_choice(store).id == top[2].id
        assert store.best(1)[0].id == top[0].id  # the search's own ranking is untouched
        # stored: asking again with the same recipe and seed trains nothing
        assert rerank(store, space, mnist1d_slice, _recipe(config), 3)[0][0].id == top[2].id
        assert len(trained) == 3
        # another recipe is another question
        rerank(store, space, mnist1d_slice, replace(_recipe(config), epochs=3), 3)
        assert len(trained) == 6


def test_a_failing_candidate_is_recorded_and_never_chosen(searched, mnist1d_slice, monkeypatch):
    experiment, config = searched

    def fail_first(space, tokens, data, training, recipe, seed, device="auto"):
        if tuple(tokens) == first:
            raise TrialFailed("training loss became nan in epoch 1")
        return {"val_acc": 0.5, "train_seconds": 0.0}

    with Store(store_path(experiment), create=False) as store:
        top = store.best(2)
        first = tuple(top[0].tokens)
        monkeypatch.setattr(final_selection, "validation_score", fail_first)
        ranking = rerank(store, space_of_section(config.space), mnist1d_slice, _recipe(config), 2)
        assert [t.id for t, _ in ranking] == [top[1].id, top[0].id]
        assert "loss became nan" in ranking[1][1]["error"]
        assert final_choice(store).id == top[1].id


def test_real_training_and_a_stale_choice_once_the_top_changes(searched, mnist1d_slice):
    experiment, config = searched
    with Store(store_path(experiment), create=False) as store:
        space = space_of_section(config.space)
        ranking = rerank(store, space, mnist1d_slice, _recipe(config), 3)
        assert len(ranking) == 3
        accs = [r["val_acc"] for _, r in ranking]
        assert accs == sorted(accs, reverse=True) and all(0.0 < a <= 1.0 for a in accs)
        assert {e["trial_id"] for e in store.evaluations(final_selection.KIND)} == {t.id for t, _ in ranking}
        assert final_choice(store).id == ranking[0][0].id
        # the search goes on and finds a child better than its old top three: the choice is stale
        tokens = space.sample(np.random.default_rng(7))
        new = store.add_trial(99, tokens, space.arch_hash(tokens), 0, {})
        store.finish_trial(new, "COMPLETE", {"val_acc": 1.0}, 1.0, 1.0)
        assert final_choice(store).id == new


def test_nothing_to_rerank_when_the_objective_ignores_accuracy(tmp_path, mnist1d_slice, monkeypatch):
    config = tiny_config(budget=3, reward={"metric": "params", "direction": "minimize", "transform": "identity"})
    run_search(config, tmp_path / "exp", data=mnist1d_slice)
    monkeypatch.setattr(final_selection, "validation_score", lambda *a, **k: pytest.fail("trained a candidate"))
    with Store(store_path(tmp_path / "exp"), create=False) as store:
        assert rerank(store, space_of_section(config.space), mnist1d_slice, _recipe(config), 3) == []
        assert final_choice(store, "minimize").id == store.best(1, "minimize")[0].id

"""Successive halving over epochs: the schedule against its definition, the stopping rule, and a
real search whose children are pruned."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from nasforge import SearchConfig, Store, run_search
from nasforge.config import ConfigError
from nasforge.estimators.fidelity import Pruning, keep_going, rung_values, rungs
from nasforge.search import store_path


def test_rungs_are_geometric_below_the_full_budget():
    assert rungs(1, 8, 2) == [1, 2, 4]
    assert rungs(1, 27, 3) == [1, 3, 9]
    assert rungs(2, 8, 3) == [2, 6]
    assert rungs(8, 8, 2) == []


def test_brackets_stop_children_at_the_epochs_of_the_published_hyperband_table():
    """Li et al. (2018), Table 1 (R = 81, eta = 3): bracket s trains children to 81 * 3^(i - s)
    epochs in round i. Pruning's bracket b is Hyperband's s = 4 - b, its rungs those epochs below
    the full 81 (s = 0 never stops a child, so it has no bracket here and a fifth is refused)."""
    table = {4: [1, 3, 9, 27, 81], 3: [3, 9, 27, 81], 2: [9, 27, 81], 1: [27, 81]}
    pruning = Pruning(eta=3, min_epochs=1, brackets=4)
    pruning.check(81)
    assert [pruning.rungs_for(b, 81) + [81] for b in range(4)] == [table[4 - b] for b in range(4)]
    with pytest.raises(ValueError, match="no rung"):
        Pruning(eta=3, min_epochs=1, brackets=5).check(81)


@given(st.lists(st.floats(0, 1), min_size=0, max_size=30), st.integers(2, 5))
def test_keep_going_lets_exactly_the_top_share_through(values, eta):
    """Judged against all the others, the children that go on are the best max(1, n // eta)
    (more only on ties)."""
    if not values:
        assert keep_going(0.5, [], eta)  # the first child at a rung always goes on
        return
    passing = [v for i, v in enumerate(values) if keep_going(v, values[:i] + values[i + 1:], eta)]
    k = max(1, len(values) // eta)
    assert len(passing) >= k
    assert sorted(passing, reverse=True)[:k] == sorted(values, reverse=True)[:k]
    assert len(passing) == k or len(set(values)) < len(values)  # more only through ties


def test_rung_values_come_from_the_same_bracket_only():
    pruning = Pruning(eta=2, min_epochs=1, brackets=2)
    histories = [(0, [0.1, 0.2, 0.3, 0.4]), (1, [0.5, 0.6, 0.7]), (2, [0.2])]
    assert rung_values(histories, pruning, 4, 8) == {1: [0.1, 0.2], 2: [0.2], 4: [0.4]}
    assert rung_values(histories, pruning, 5, 8) == {2: [0.6], 4: []}  # bracket 1 starts at 2 epochs


def test_bad_pruning_settings_are_refused(tmp_path, mnist1d_slice):
    for pruning, message in [({"eta": 1}, "eta"), ({"min_epochs": 4}, "no rung"), ({"speed": 2}, "speed"),
                             ("fast", "table")]:
        config = SearchConfig(budget=2)
        config.space = {"name": "chain-cnn", "num_layers": 2}
        config.training = {"epochs": 4, "pruning": pruning}
        with pytest.raises(ConfigError, match=message):
            run_search(config, tmp_path / "exp", data=mnist1d_slice)


def test_a_search_with_successive_halving_prunes_children_and_rewards_the_promised_fidelity(tmp_path, mnist1d_slice):
    config = SearchConfig(budget=10, seed=2)
    config.space = {"name": "chain-cnn", "num_layers": 2}
    config.strategy = {"name": "random"}
    config.training = {"epochs": 4, "batch_size": 64, "score_epochs": 1, "pruning": {"eta": 2, "min_epochs": 1}}
    config.reward = {"metric": "val_acc", "transform": "identity"}
    config.execution = {"name": "inline"}
    result = run_search(config, tmp_path / "exp", data=mnist1d_slice)
    with Store(store_path(tmp_path / "exp")) as store:
        trials = store.trials()
    pruned = [t for t in trials if t.state == "PRUNED"]
    complete = [t for t in trials if t.state == "COMPLETE"]
    assert pruned and complete and len(pruned) + len(complete) == 10 and result.pruned == len(pruned)
    for t in pruned:
        assert t.metrics["pruned_at"] in (1, 2) and t.metrics["epochs"] == t.metrics["pruned_at"]
    for t in complete:
        assert t.metrics["epochs"] == 4
    for t in trials:  # every child is rewarded at the first rung, the fidelity all of them reach
        assert t.reward == pytest.approx(t.metrics["val_acc_history"][0])
    # replaying the rule over the stored histories gives the same decisions
    seen = []
    for t in trials:
        history = t.metrics["val_acc_history"]
        for epoch in (1, 2):
            if len(history) >= epoch and not keep_going(history[epoch - 1],
                                                        [h[epoch - 1] for h in seen if len(h) >= epoch], 2):
                assert t.state == "PRUNED" and t.metrics["pruned_at"] == epoch
                break
        else:
            assert t.state == "COMPLETE"
        seen.append(history)
    assert all(b.state == "COMPLETE" for b in result.best)

"""The paper's rules that the loop must keep, checked against hand-computed numbers.

REINFORCE's moving-average baseline (Zoph & Le, 2017: ``b`` is an exponential moving average of
earlier rewards), the importance weights a batch with stale children needs, and the reward from
the best validation accuracy of the last 5 epochs. Each test computes the expected value without
the code under test, so that swapping a constant or skipping a step makes it fail.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nasforge import SearchConfig, Store, run_search
from nasforge.data.datasets import split_validation
from nasforge.estimators import train as train_mod
from nasforge.estimators.train import TrainEstimator
from nasforge.search import store_path
from nasforge.spaces.chain_cnn import ChainCNNSpace
from nasforge.strategies.reinforce import MAX_IMPORTANCE, Reinforce, moving_average

# ---- 9. the baseline: b <- decay * b + (1 - decay) * R ----------------------------------------------


def closed_form_average(rewards, decay):
    """The moving average written out: the first reward weighted decay^(n-1), the k-th
    (k >= 2) weighted (1 - decay) * decay^(n-k)."""
    n = len(rewards)
    total = decay ** (n - 1) * rewards[0]
    for k in range(1, n):
        total += (1 - decay) * decay ** (n - 1 - k) * rewards[k]
    return total


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=12), st.floats(0, 0.99))
def test_moving_average_baseline_weights_the_old_value_by_decay(rewards, decay):
    assert moving_average(None, rewards, decay) == pytest.approx(closed_form_average(rewards, decay), abs=1e-12)


def test_moving_average_baseline_by_hand():
    """Three numbers worked out on paper: a slow baseline stays near its old value."""
    assert moving_average(None, [1.0, 0.0], 0.9) == pytest.approx(0.9)
    assert moving_average(0.5, [1.0], 0.9) == pytest.approx(0.55)
    assert moving_average(None, [0.2], 0.9) == pytest.approx(0.2)


def test_reinforce_keeps_the_baseline_as_a_moving_average_of_every_reward_told():
    space = ChainCNNSpace(num_layers=2, dims=1)
    strategy = Reinforce(batch_size=2, baseline_decay=0.8)
    strategy.setup(space, seed=0)
    rewards = [1.0, 0.0, 0.5, 0.25]
    for reward in rewards:
        proposal = strategy.ask()
        strategy.tell(proposal.tokens, reward, proposal.info)
    assert strategy.updates == 2
    # 1.0; 0.8 * 1.0 + 0.2 * 0.0 = 0.8; 0.8 * 0.8 + 0.2 * 0.5 = 0.74; 0.8 * 0.74 + 0.2 * 0.25 = 0.642
    assert strategy.baseline == pytest.approx(0.642)


# ---- 10. importance weights for children sampled before the last update -----------------------------


def _grads(module):
    return {n: torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for n, p in module.named_parameters()}


@pytest.mark.parametrize("seed", [0, 1])
def test_a_batch_with_stale_children_follows_the_importance_weighted_gradient(seed):
    """Several workers: 6 children are out before the first result, so 2 of the second batch
    were drawn by the policy before the first update and 2 by the current one. The update's
    gradient must be that of -(1/m) sum w_k (R_k - b) log pi(a_k) - beta * mean entropy, with
    w_k = min(pi(a_k) / pi_old(a_k), MAX_IMPORTANCE) for the stale ones and 1 for the others."""
    space = ChainCNNSpace(num_layers=2, dims=1)
    beta, decay = 0.01, 0.9
    strategy = Reinforce(batch_size=4, learning_rate=0.05, entropy_weight=beta, baseline_decay=decay)
    strategy.setup(space, seed=seed)
    sampling_policy = copy.deepcopy(strategy.controller)
    first = [strategy.ask() for _ in range(6)]
    rewards = [0.9, 0.1, 0.6, 0.3]
    for proposal, reward in zip(first[:4], rewards):
        strategy.tell(proposal.tokens, reward, proposal.info)
    assert strategy.updates == 1
    fresh = [strategy.ask() for _ in range(2)]
    batch = [first[4], fresh[0], first[5], fresh[1]]  # results arrive in any order
    batch_rewards = [0.8, 0.2, 0.4, 0.7]
    tokens = [p.tokens for p in batch]
    stale = torch.tensor([1.0, 0.0, 1.0, 0.0])

    # by hand, on a copy of the policy as it is before the second update
    policy = copy.deepcopy(strategy.controller)
    log_probs, entropies = policy.score(tokens)
    old_log_probs = sampling_policy.score(tokens)[0].detach()
    ratio = torch.clamp(torch.exp(log_probs.detach() - old_log_probs), max=MAX_IMPORTANCE)
    weights = stale * ratio + (1 - stale)
    baseline = closed_form_average(rewards, decay)
    advantages = torch.tensor(batch_rewards) - baseline
    loss = -(weights * advantages * log_probs).mean() - beta * entropies.mean()
    loss.backward()
    expected = _grads(policy)
    assert float((ratio[stale.bool()] - 1).abs().max()) > 0.02  # the case really is off-policy

    for proposal, reward in zip(batch, batch_rewards):
        strategy.tell(proposal.tokens, reward, proposal.info)
    assert strategy.updates == 2
    got = _grads(strategy.controller)
    for name, value in expected.items():
        assert torch.allclose(got[name], value, rtol=1e-4, atol=1e-7), name

    # and the same batch without the weights gives a measurably different gradient
    policy.zero_grad()
    lp, h = policy.score(tokens)
    (-(advantages * lp).mean() - beta * h.mean()).backward()
    unweighted = _grads(policy)
    assert any(not torch.allclose(unweighted[n], expected[n], rtol=1e-3, atol=1e-6) for n in expected)


# ---- 11. reward: the best validation accuracy of the last 5 epochs ---------------------------------

# 6 epochs: the best of the last 5 (epoch 2, 0.8) is neither the last (0.5), nor the best overall
# (0.95), nor the best of the last 4 (0.6); the fake validation makes them whole signals of n
HISTORY = [0.95, 0.8, 0.2, 0.4, 0.6, 0.5]
BEST = 1


def fake_validation(monkeypatch, y_val, num_classes, history):
    """Replace the per-epoch validation pass with scores of accuracy round(history[epoch] * n) / n;
    return the list the calls go into and the accuracies they give."""
    calls = []
    n = len(y_val)
    accuracies = [round(a * n) / n for a in history]

    def predict(model, x, batch_size=1024):
        assert len(x) == n
        right = round(history[len(calls)] * n)
        calls.append(right)
        labels = np.array(y_val, copy=True)
        labels[right:] = (labels[right:] + 1) % num_classes
        scores = np.zeros((n, num_classes), dtype=np.float32)
        scores[np.arange(n), labels] = 1.0
        return scores

    monkeypatch.setattr(train_mod, "predict", predict)
    return calls, accuracies


def test_val_acc_is_the_best_of_the_last_5_epochs(monkeypatch, mnist1d_slice):
    estimator = TrainEstimator(epochs=len(HISTORY), batch_size=200, score_epochs=5, device="cpu")
    estimator.setup(ChainCNNSpace(num_layers=2, dims=1), mnist1d_slice)
    calls, accuracies = fake_validation(monkeypatch, estimator.y_val, mnist1d_slice.num_classes, HISTORY)
    tokens = ChainCNNSpace(num_layers=2, dims=1).sample(np.random.default_rng(0))
    metrics = estimator.evaluate(tokens, seed=1)
    assert len(calls) == len(HISTORY)
    assert metrics["val_acc_history"] == pytest.approx(accuracies)
    assert metrics["val_acc"] == pytest.approx(accuracies[BEST])
    assert metrics["val_acc_last"] == pytest.approx(accuracies[-1])


def test_the_search_rewards_the_cube_of_the_best_of_the_last_5_epochs(monkeypatch, mnist1d_slice, tmp_path):
    """Through the loop: the stored objective is that accuracy, the stored reward its cube."""
    config = SearchConfig(budget=1, seed=0, dataset="mnist1d")
    config.space = {"name": "chain-cnn", "num_layers": 2, "dims": 1}
    config.strategy = {"name": "random"}
    config.training = {"estimator": "train", "epochs": len(HISTORY), "batch_size": 200, "device": "cpu"}
    config.reward = {"metric": "val_acc", "transform": "cube"}
    config.execution = {"name": "inline"}
    _, (_, y_val) = split_validation(mnist1d_slice.x_train, mnist1d_slice.y_train, 0.2, 0)
    _, accuracies = fake_validation(monkeypatch, y_val, mnist1d_slice.num_classes, HISTORY)
    run_search(config, tmp_path / "exp", data=mnist1d_slice)
    with Store(store_path(tmp_path / "exp")) as store:
        (trial,) = store.trials()
    assert trial.state == "COMPLETE"
    assert trial.metrics["val_acc"] == pytest.approx(accuracies[BEST])
    assert trial.objective == pytest.approx(accuracies[BEST])
    assert trial.reward == pytest.approx(accuracies[BEST] ** 3)
    assert not math.isclose(trial.reward, accuracies[-1] ** 3)

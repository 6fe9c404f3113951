"""The neural optimiser of quantised weights (issue 17.3b): its weights are always on their levels,
its actions do what they say, REINFORCE's score is the hand-counted gradient of the log-probability,
both trainers improve a policy on a problem whose answer is known, and a real episode runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from nasforge.data.datasets import Dataset
from nasforge.quant import meta_train
from nasforge.quant.fake import weight_levels
from nasforge.quant.level_moves import ACTIONS, FEATURES, LevelMoveOptimizer, MovePolicy, snap, top_level


class Fixed(nn.Module):
    """A policy whose logits are the same three learnable numbers for every weight."""

    def __init__(self, logits):
        super().__init__()
        self.logits = nn.Parameter(torch.tensor(logits, dtype=torch.float32))

    def forward(self, x):
        return self.logits.expand(x.shape[0], len(ACTIONS))


def _steps(opt, w, n, seed=0):
    gen = torch.Generator().manual_seed(seed)
    for _ in range(n):
        w.grad = torch.randn(w.shape, generator=gen)
        opt.step()


@settings(max_examples=30, deadline=None)
@given(bits=st.sampled_from([1, 2, 4, 8]), seed=st.integers(0, 10_000))
def test_snap_gives_the_fake_quantised_weights(bits, seed):
    w = torch.randn(4, 3, 5, generator=torch.Generator().manual_seed(seed))
    level, scale = snap(w, bits)
    assert torch.allclose(level * scale, weight_levels(w, bits), atol=1e-6)
    assert level.abs().max() <= top_level(bits) and torch.equal(level, level.round())
    if bits == 1:
        assert set(level.unique().tolist()) <= {-1.0, 1.0}


@settings(max_examples=15, deadline=None)
@given(bits=st.sampled_from([1, 2, 4]), seed=st.integers(0, 1000))
def test_every_step_leaves_every_weight_on_a_level_of_its_channel(bits, seed):
    torch.manual_seed(seed)
    w = nn.Parameter(torch.randn(3, 8))
    opt = LevelMoveOptimizer([w], MovePolicy(start_gain=2.0), bits=bits,
                             generator=torch.Generator().manual_seed(seed))
    assert torch.allclose(w.detach(), weight_levels(w.detach(), bits) if bits > 1 else w.detach())
    _steps(opt, w, 5, seed)
    level, value = opt.state[w]["level"], w.detach()
    assert torch.equal(level, level.round()) and level.abs().max() <= top_level(bits)
    for c in range(3):  # one positive scale per channel: value = level * scale
        nonzero = level[c] != 0
        scale = value[c][nonzero] / level[c][nonzero]
        assert bool((scale > 0).all()) and torch.allclose(scale, scale[0].expand_as(scale), rtol=1e-5)
        assert bool((value[c][~nonzero] == 0).all())
    if bits == 1:
        assert set(level.unique().tolist()) <= {-1.0, 1.0}


@pytest.mark.parametrize("bits", [1, 2])
def test_actions_do_what_they_say(bits):
    for action, expected in (("stay", None), ("up", top_level(bits)), ("down", -top_level(bits))):
        w = nn.Parameter(torch.randn(2, 6, generator=torch.Generator().manual_seed(1)))
        logits = [-50.0] * 3
        logits[ACTIONS.index(action)] = 50.0
        opt = LevelMoveOptimizer([w], Fixed(logits), bits=bits)
        before = opt.state[w]["level"].clone()
        _steps(opt, w, 3)  # three moves reach the top of 2 bits (levels -1, 0, 1) from anywhere
        after = opt.state[w]["level"]
        assert torch.equal(after, before) if expected is None else bool((after == expected).all())


def test_the_start_policy_is_straight_through_with_the_drive_as_latent_weight():
    w = nn.Parameter(torch.randn(4, 10, generator=torch.Generator().manual_seed(3)))
    opt = LevelMoveOptimizer([w], MovePolicy(start_gain=1e4), bits=1)
    _steps(opt, w, 10)
    st_ = opt.state[w]
    clear = (st_["drive"].abs() > 1e-2)  # away from the threshold, where the sharp start is certain
    assert torch.equal(st_["level"][clear], torch.where(st_["drive"] >= 0, 1.0, -1.0)[clear])
    assert opt.moves > 0


def test_reinforce_score_is_the_hand_counted_log_probability_gradient():
    """For logits shared by every weight, d/dθ sum log softmax(θ)[a_i] = counts - n softmax(θ)."""
    policy = Fixed([0.3, -0.2, 0.1])
    w = nn.Parameter(torch.randn(5, 7, generator=torch.Generator().manual_seed(0)))
    gen = torch.Generator().manual_seed(5)
    opt = LevelMoveOptimizer([w], policy, bits=2, generator=gen, record=True)
    _steps(opt, w, 1)
    replay = meta_train.torch.Generator().manual_seed(5)
    probs = torch.softmax(policy.logits.detach(), 0)
    u = torch.rand(w.numel(), 1, generator=replay)
    actions = (probs.cumsum(0) < u).sum(1).clamp(max=2)
    counts = torch.bincount(actions, minlength=3).float()
    assert torch.allclose(opt.score[0], counts - w.numel() * probs, atol=1e-4)


def _bandit(policy, task, seed, sample_seed, record=False):
    """An episode stand-in: one action from the shared logits; reward 1 for "up"."""
    gen = torch.Generator().manual_seed(sample_seed)
    logp = torch.log_softmax(policy.logits, 0)
    action = int(torch.multinomial(logp.detach().exp(), 1, generator=gen))
    score = torch.autograd.grad(logp[action], [policy.logits])[0] if record else None
    return {"reward": float(action == ACTIONS.index("up")), "score": [score], "moves": 0}


@pytest.mark.parametrize("trainer", ["reinforce", "es"])
def test_both_trainers_learn_a_bandit(trainer):
    policy = Fixed([0.0, 0.0, 0.0])
    if trainer == "reinforce":
        meta_train.reinforce(policy, None, 40, episodes=8, lr=0.1, episode=_bandit)
    else:
        meta_train.evolution_strategies(policy, None, 40, pairs=8, sigma=0.5, lr=0.1, episode=_bandit)
    assert torch.softmax(policy.logits.detach(), 0)[ACTIONS.index("up")] > 0.8


def test_refuses_bit_widths_without_levels_and_a_bad_drive_rate():
    w = nn.Parameter(torch.randn(2, 3))
    with pytest.raises(ValueError, match="1, 2, 4 or 8"):
        LevelMoveOptimizer([w], MovePolicy(), bits=32)
    with pytest.raises(ValueError, match="drive_rate"):
        LevelMoveOptimizer([w], MovePolicy(), drive_rate=0)


def test_a_real_episode_trains_a_quantised_child_and_reports_its_accuracy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(160, 1, 40)).astype(np.float32)
    y = (x[:, 0, :20].sum(1) > 0).astype(np.int64)
    data = Dataset("toy", x[:120], y[:120], x[120:], y[120:], num_classes=2)
    task = meta_train.Task(data, bits=1, epochs=1, batch_size=32)
    out = meta_train.run_episode(MovePolicy(), task, seed=0, sample_seed=0, record=True, test=True)
    assert 0.0 <= out["reward"] <= 1.0 and 0.0 <= out["test_acc"] <= 1.0
    assert out["moves"] > 0 and len(out["score"]) == len(list(MovePolicy().parameters()))
    assert any(float(s.abs().sum()) > 0 for s in out["score"])
    assert len(FEATURES) == MovePolicy().hidden.in_features


def test_a_greedy_optimiser_takes_the_most_likely_action_and_records_nothing():
    w = nn.Parameter(torch.randn(2, 6, generator=torch.Generator().manual_seed(1)))
    opt = LevelMoveOptimizer([w], Fixed([0.0, 0.1, 0.2]), bits=2, greedy=True)  # "up" by a hair
    _steps(opt, w, 3)
    assert bool((opt.state[w]["level"] == 1).all())
    with pytest.raises(ValueError, match="greedy"):
        LevelMoveOptimizer([w], MovePolicy(), greedy=True, record=True)

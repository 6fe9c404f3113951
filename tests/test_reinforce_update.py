"""REINFORCE's update on a batch drawn by the current policy, checked against autograd of the
written-out loss: the first batch is its own baseline (no earlier rewards to average), later ones
use the moving average; and the settings it refuses, with the message that says why."""

from __future__ import annotations

import copy
import io
import os
import pickle

import pytest
import torch

from nasforge.spaces.chain_cnn import ChainCNNSpace
from nasforge.strategies.reinforce import MAX_IMPORTANCE, Reinforce, importance_weights, reinforce_loss

BETA = 0.01


def _grads(module):
    return {n: torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for n, p in module.named_parameters()}


def _expected_gradient(policy, tokens, rewards, baseline):
    """Autograd of -(1/m) sum (R_k - b) log pi(a_k) - beta * mean entropy, on a copy of the policy."""
    policy = copy.deepcopy(policy)
    policy.zero_grad()
    log_probs, entropies = policy.score(tokens)
    loss = -((torch.tensor(rewards) - baseline) * log_probs).mean() - BETA * entropies.mean()
    loss.backward()
    return _grads(policy), float(loss.detach())


def _tell_batch(strategy, rewards):
    proposals = [strategy.ask() for _ in rewards]
    return proposals, [p.tokens for p in proposals]


@pytest.mark.parametrize("seed", [0, 3])
def test_first_batch_is_its_own_baseline_and_later_batches_use_the_moving_average(seed):
    strategy = Reinforce(batch_size=3, learning_rate=0.05, entropy_weight=BETA, baseline_decay=0.5)
    strategy.setup(ChainCNNSpace(num_layers=2, dims=1), seed=seed)
    losses = []
    original_update = strategy.update
    strategy.update = lambda *a, **k: losses.append(original_update(*a, **k)) or losses[-1]
    # batch 1: no earlier rewards, so b is its mean, 0.6; after it the average is 0.9 -> 0.6 -> 0.6
    # (decay 0.5); batch 2 uses that, and leaves 0.6 -> 0.4 -> 0.6 -> 0.55
    for rewards, baseline in (([0.9, 0.3, 0.6], 0.6), ([0.2, 0.8, 0.5], 0.6)):
        proposals, tokens = _tell_batch(strategy, rewards)
        expected, loss = _expected_gradient(strategy.controller, tokens, rewards, baseline)
        for p, r in zip(proposals, rewards):
            strategy.tell(p.tokens, r, p.info)
        got = _grads(strategy.controller)
        for name, value in expected.items():
            assert torch.allclose(got[name], value, rtol=1e-4, atol=1e-7), name
        assert losses[-1] == pytest.approx(loss, rel=1e-5)  # update() returns the loss it stepped on
    assert strategy.updates == 2
    assert strategy.baseline == pytest.approx(0.55)


def test_importance_weights_truncate_at_the_bound_exactly():
    log_probs = torch.tensor([0.0, 0.0, 0.0])
    w = importance_weights(log_probs, [-float(torch.log(torch.tensor(MAX_IMPORTANCE))), -5.0, -1.0],
                           [True, True, True])
    assert w[0] == pytest.approx(MAX_IMPORTANCE) and w[1] == MAX_IMPORTANCE  # e^5 > 10 is cut to 10
    assert w[2] == pytest.approx(float(torch.exp(torch.tensor(1.0))))


def test_reinforce_loss_applies_weights_to_the_advantages_only():
    lp = torch.tensor([-1.0, -2.0], requires_grad=True)
    h = torch.tensor([0.5, 1.5])
    loss = reinforce_loss(lp, h, torch.tensor([1.0, 0.0]), 0.5, 0.1, torch.tensor([2.0, 3.0]))
    # -(2 * 0.5 * -1 + 3 * -0.5 * -2) / 2 - 0.1 * 1.0 = -(-1 + 3) / 2 - 0.1
    assert float(loss.detach()) == pytest.approx(-1.1)
    loss.backward()
    assert lp.grad.tolist() == pytest.approx([-0.5, 0.75])  # -(w_k (R_k - b)) / m


@pytest.mark.parametrize("setting, message", [
    ({"batch_size": 0}, "reinforce: batch_size must be at least 1, got 0"),
    ({"baseline_decay": 1.0}, r"reinforce: baseline_decay must be in \[0, 1\), got 1.0"),
    ({"baseline_decay": -0.1}, r"reinforce: baseline_decay must be in \[0, 1\), got -0.1"),
    ({"learning_rate": 0.0}, "reinforce: learning_rate must be positive, got 0.0"),
    ({"max_resamples": -1}, "reinforce: max_resamples must be a non-negative integer, got -1"),
    ({"max_resamples": True}, "reinforce: max_resamples must be a non-negative integer, got True"),
    ({"max_resamples": 2.0}, "reinforce: max_resamples must be a non-negative integer, got 2.0"),
])
def test_bad_settings_are_refused_with_the_value(setting, message):
    with pytest.raises(ValueError, match=message):
        Reinforce(**setting)


def test_settings_at_their_bounds_are_accepted():
    s = Reinforce(batch_size=1, baseline_decay=0.0, max_resamples=0, learning_rate=1e-9)
    assert (s.batch_size, s.baseline_decay, s.max_resamples) == (1, 0.0, 0)


def test_importance_weights_are_exactly_one_for_fresh_children_whatever_was_stored():
    w = importance_weights(torch.tensor([-1.0, -2.0]), [-3.0, -0.5], [False, False])
    assert w.tolist() == [1.0, 1.0]


# ---- saved states ------------------------------------------------------------------------------------


def _played(strategy, rewards):
    for r in rewards:
        p = strategy.ask()
        strategy.tell(p.tokens, r, p.info)


def _older(state, form: str):
    """A current state as the two earlier formats saved it."""
    controller = torch.load(io.BytesIO(state["policy"]), weights_only=True)["controller"]
    optimizer = torch.load(io.BytesIO(state["policy_optimizer"]), weights_only=True)
    older = {k: v for k, v in state.items() if k not in ("policy", "policy_optimizer")}
    if form == "inline":
        older.update(controller=controller, optimizer=optimizer)
    else:
        buf = io.BytesIO()
        torch.save({"controller": controller, "optimizer": optimizer}, buf)
        older["policy"] = buf.getvalue()
    return older


@pytest.mark.parametrize("form", ["inline", "one policy part"])
def test_a_state_saved_in_an_earlier_format_still_loads(form):
    """Older stores hold the controller and optimiser state dicts themselves, or both in one
    ``policy`` part; such a state must give the same future as the current format."""
    space = ChainCNNSpace(num_layers=2, dims=1)
    a = Reinforce(batch_size=2, learning_rate=0.05)
    a.setup(space, seed=4)
    _played(a, [0.1, 0.7, 0.4])
    legacy = _older(a.state_dict(), form)
    b = Reinforce(batch_size=2, learning_rate=0.05)
    b.setup(space, seed=99)
    b.load_state_dict(legacy)
    for x, y in zip(a.controller.parameters(), b.controller.parameters()):
        assert torch.equal(x, y)
    assert b.optimizer.state_dict()["state"].keys() == a.optimizer.state_dict()["state"].keys()
    for _ in range(4):
        pa, pb = a.ask(), b.ask()
        assert pa.tokens == pb.tokens
        a.tell(pa.tokens, 0.5, pa.info)
        b.tell(pb.tokens, 0.5, pb.info)
    for x, y in zip(a.controller.parameters(), b.controller.parameters()):
        assert torch.equal(x, y)


class _RunsCode:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_a_tampered_policy_in_a_saved_state_runs_no_code(tmp_path):
    """The policy bytes come from the store, a file: they are read with torch's weights-only loader."""
    marker = tmp_path / "ran"
    strategy = Reinforce(batch_size=2)
    strategy.setup(ChainCNNSpace(num_layers=2, dims=1), seed=0)
    state = strategy.state_dict()
    state["policy"] = pickle.dumps({"controller": _RunsCode(marker), "optimizer": {}})
    with pytest.raises(Exception):
        strategy.load_state_dict(state)
    assert not marker.exists()


def _params_equal(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.controller.parameters(), b.controller.parameters()))


def _fresh_copy(state, space, **settings):
    b = Reinforce(**settings)
    b.setup(space, seed=1234)
    b.load_state_dict(state)
    return b


def test_a_state_taken_after_an_update_holds_the_updated_policy():
    """The serialised policy is cached between updates; a state taken after an update must not
    hand back the policy from before it."""
    space = ChainCNNSpace(num_layers=2, dims=1)
    a = Reinforce(batch_size=2, learning_rate=0.05)
    a.setup(space, seed=2)
    before = a.state_dict()
    _played(a, [0.9, 0.1])
    assert a.updates == 1
    after = _fresh_copy(a.state_dict(), space, batch_size=2, learning_rate=0.05)
    assert _params_equal(a, after)
    assert not _params_equal(_fresh_copy(before, space, batch_size=2, learning_rate=0.05), a)


def test_a_stale_child_waiting_in_the_buffer_keeps_its_sampling_probability_across_a_round_trip():
    """Two workers: four children out, the first two make an update, the third waits in the
    buffer when the state is saved. The loaded copy must weight it as stale, as the original does."""
    space = ChainCNNSpace(num_layers=2, dims=1)
    settings = dict(batch_size=2, learning_rate=0.05)
    a = Reinforce(**settings)
    a.setup(space, seed=6)
    out = [a.ask() for _ in range(4)]
    for p, r in zip(out[:3], [0.9, 0.1, 0.7]):
        a.tell(p.tokens, r, p.info)
    assert a.updates == 1 and len(a.buffer) == 1
    b = _fresh_copy(a.state_dict(), space, **settings)
    a.tell(out[3].tokens, 0.2, out[3].info)
    b.tell(out[3].tokens, 0.2, out[3].info)
    assert a.updates == b.updates == 2
    assert _params_equal(a, b)


def test_a_state_without_origins_or_known_rewards_still_loads():
    """States saved before ``buffer_origin`` and ``known`` existed: the buffered children count as
    drawn by the current policy, and nothing is known yet."""
    space = ChainCNNSpace(num_layers=2, dims=1)
    a = Reinforce(batch_size=3, dedup=True)
    a.setup(space, seed=1)
    _played(a, [0.3, 0.6, 0.2, 0.8])
    state = a.state_dict()
    del state["buffer_origin"], state["known"]
    b = _fresh_copy(state, space, batch_size=3, dedup=True)
    assert b.buffer_origin == [(None, b.updates)] and b.known == {}
    _played(b, [0.5, 0.5])
    assert b.updates == 2


class SixSpace(ChainCNNSpace):
    """Six architectures, so that a sampler repeats itself quickly."""

    name = "six"

    @property
    def decisions(self):
        return super().decisions[:0] + [type(super().decisions[0])("a", (0, 1)),
                                        type(super().decisions[0])("b", (0, 1, 2))]

    def arch_hash(self, tokens):
        return "-".join(map(str, tokens))

    def validate(self, tokens):
        return tuple(tokens)


def test_with_dedup_the_rewards_already_known_survive_a_round_trip():
    """With 3 of 6 architectures told, most samples are repeats that dedup learns from at once
    and replaces: the loaded copy must know those rewards too, and so make the same moves."""
    space = SixSpace(num_layers=1, dims=1)
    settings = dict(batch_size=2, dedup=True, max_resamples=5, learning_rate=0.01)
    a = Reinforce(**settings)
    a.setup(space, seed=0)
    for r in (0.1, 0.2, 0.3):
        p = a.ask()
        a.tell(p.tokens, r, p.info)
    assert len(a.known) == 3
    b = _fresh_copy(a.state_dict(), space, **settings)
    for r in (0.5, 0.6, 0.7, 0.8):
        pa, pb = a.ask(), b.ask()
        assert pa.tokens == pb.tokens and a.updates == b.updates
        a.tell(pa.tokens, r, pa.info)
        b.tell(pb.tokens, r, pb.info)
    assert a.updates > 3  # repeats were learnt from without an evaluation
    assert _params_equal(a, b)

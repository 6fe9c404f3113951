"""The LSTM controller and REINFORCE: probabilities, gradients, learning, and saved state."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from nasforge.spaces.base import Decision, SearchSpace
from nasforge.spaces.chain_cnn import ChainCNNSpace
from nasforge.strategies.controller import Controller, plan_steps
from nasforge.strategies.reinforce import Reinforce, reinforce_loss


class TinySkipSpace(SearchSpace):
    """Three layers with skip decisions, small enough to enumerate (2*2*2 * 2 * 4 = 128 architectures)."""

    name = "tiny-skip"

    @property
    def decisions(self):
        return [
            Decision("L0.op", ("a", "b"), layer=0),
            Decision("L1.from_L0", (0, 1), layer=1, source=0),
            Decision("L1.op", ("a", "b"), layer=1),
            Decision("L2.from_L0", (0, 1), layer=2, source=0),
            Decision("L2.from_L1", (0, 1), layer=2, source=1),
            Decision("L2.op", ("a", "b"), layer=2),
            Decision("head", (0, 1, 2, 3)),
        ]


def all_tokens(space):
    return list(itertools.product(*[range(d.size) for d in space.decisions]))


def test_plan_has_one_anchor_per_layer_with_its_skip_decisions():
    steps = plan_steps(TinySkipSpace().decisions)
    assert [(s.kind, s.indices) for s in steps] == [
        ("anchor", ()), ("choice", (0,)), ("anchor", (1,)), ("choice", (2,)),
        ("anchor", (3, 4)), ("choice", (5,)), ("choice", (6,))]


def test_probabilities_of_all_architectures_sum_to_one():
    space = TinySkipSpace()
    torch.manual_seed(1)
    controller = Controller(space.decisions, init_range=1.0)  # far from uniform
    log_probs, _ = controller.score(all_tokens(space))
    assert math.isclose(float(log_probs.detach().exp().sum()), 1.0, rel_tol=1e-5)
    assert float(log_probs.detach().exp().max()) > 1.5 / len(log_probs)


def test_sampled_frequencies_match_scored_probabilities():
    space = TinySkipSpace()
    torch.manual_seed(2)
    controller = Controller(space.decisions, init_range=0.7)
    tokens = all_tokens(space)
    probs = controller.score(tokens)[0].exp().detach().numpy()
    sampled, _, _ = controller.run(generator=torch.Generator().manual_seed(0), batch=20000)
    index = {t: i for i, t in enumerate(tokens)}
    counts = np.bincount([index[tuple(r)] for r in sampled.tolist()], minlength=len(tokens))
    assert np.abs(counts / 20000 - probs).max() < 0.01


def test_anchor_probability_is_the_papers_formula():
    space = TinySkipSpace()
    torch.manual_seed(3)
    c = Controller(space.decisions, init_range=0.5)
    # recompute P(L0 feeds L1) by hand from the anchors' hidden states
    zeros = torch.zeros(1, c.hidden_size)
    state = [(zeros, zeros) for _ in c.cells]
    h0, state = c._cell(c.start, state)            # anchor of layer 0
    h, state = c._cell(c.no_input, state)            # L0.op
    x = c.embeddings["0"](torch.tensor([1]))         # chose "b"
    h1, _ = c._cell(x, state)                        # anchor of layer 1
    p = torch.sigmoid(c.v(torch.tanh(c.w_prev(h0) + c.w_curr(h1))))
    tokens = (1, 1, 0, 0, 0, 0, 0)
    head0 = torch.log_softmax(c.heads["0"](h), -1)[0, 1]
    # log P of the first two decisions = log softmax(L0.op = b) + log p(L1.from_L0 = 1)
    full, _ = c.score([tokens])
    rest = full - head0 - torch.log(p).squeeze()
    others = [t for t in all_tokens(space) if t[:2] == (1, 1)]
    marginal = torch.logsumexp(c.score(others)[0], 0)
    assert torch.allclose(marginal, head0 + torch.log(p).squeeze(), atol=1e-5)
    assert float(rest.detach()) <= 0


def test_reinforce_gradient_matches_autograd_of_hand_written_loss():
    space = TinySkipSpace()
    torch.manual_seed(4)
    strategy = Reinforce(entropy_weight=0.01, batch_size=3, learning_rate=1e-3)
    strategy.setup(space, seed=4)
    batch = [(1, 0, 1, 1, 0, 1, 3), (0, 1, 0, 0, 1, 1, 2), (1, 1, 1, 1, 1, 0, 0)]
    rewards = [0.9, 0.2, 0.5]
    strategy.baseline = 0.4
    c = strategy.controller
    # hand-written: -(1/m) sum (R - b) log pi(a) - w * mean entropy, each term scored separately
    c.zero_grad()
    terms = []
    for tokens, r in zip(batch, rewards):
        lp, h = c.score([tokens])
        terms.append(-(r - 0.4) * lp[0] - 0.01 * h[0])
    (sum(terms) / 3).backward()
    expected = {n: None if p.grad is None else p.grad.clone() for n, p in c.named_parameters()}
    c.zero_grad()
    lp, h = c.score(batch)
    reinforce_loss(lp, h, torch.tensor(rewards), 0.4, 0.01).backward()
    compared = 0
    for n, p in c.named_parameters():
        if expected[n] is None:
            assert p.grad is None or not p.grad.any(), n
            continue
        assert torch.allclose(p.grad, expected[n], atol=1e-6), n
        compared += 1
    assert compared > 10


def test_reinforce_gradient_is_unbiased_estimate_of_expected_reward_gradient():
    """Sum over all architectures of pi(a) (R(a) - b) grad log pi(a) equals grad of E[R]."""
    space = TinySkipSpace()
    torch.manual_seed(5)
    c = Controller(space.decisions, init_range=0.5)
    tokens = all_tokens(space)
    reward = torch.tensor([float(sum(t)) / 10 for t in tokens])
    lp, _ = c.score(tokens)
    (lp.exp() * reward).sum().backward()
    exact = [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in c.parameters()]
    c.zero_grad()
    lp, _ = c.score(tokens)
    weights = lp.exp().detach()
    (-(weights * (reward - 0.3) * lp).sum()).backward()  # baseline 0.3 adds nothing in expectation
    for p, e in zip(c.parameters(), exact):
        got = torch.zeros_like(p) if p.grad is None else -p.grad
        assert torch.allclose(got, e, atol=1e-5)


@pytest.mark.parametrize("target_seed", [1, 3])
def test_controller_learns_the_rewarded_architecture(target_seed):
    """Synthetic reward: the cubed share of decisions that match one target architecture.

    Shared anchor attention can settle a skip decision early, so the test uses fixed targets and
    a fixed number of updates; both reach the target with probability above 0.9.
    """
    space = ChainCNNSpace(num_layers=3, dims=1)
    target = space.sample(np.random.default_rng(target_seed))
    strategy = Reinforce(learning_rate=0.005, batch_size=4, entropy_weight=0.02)
    strategy.setup(space, seed=target_seed)
    for _ in range(300 * 4):
        p = strategy.ask()
        matches = np.mean([a == b for a, b in zip(p.tokens, target)])
        strategy.tell(p.tokens, float(matches) ** 3, p.info)
    prob = float(strategy.controller.score([target])[0].detach().exp())
    assert prob > 0.9, prob
    assert strategy.updates == 300


def test_init_is_uniform_in_range_and_defaults_are_the_papers():
    s = Reinforce()
    assert s.settings() == {"hidden_size": 35, "num_layers": 2, "init_range": 0.08, "learning_rate": 0.0006,
                            "batch_size": 8, "baseline_decay": 0.95, "entropy_weight": 1e-4, "dedup": False,
                            "max_resamples": 100}
    s.setup(ChainCNNSpace(), seed=0)
    for p in s.controller.parameters():
        assert float(p.detach().abs().max()) <= 0.08
    assert len(s.controller.cells) == 2 and s.controller.cells[0].hidden_size == 35
    assert isinstance(s.optimizer, torch.optim.Adam) and s.optimizer.param_groups[0]["lr"] == 0.0006


@pytest.mark.parametrize("dedup", [False, True])
def test_state_round_trip_gives_the_same_future(dedup):
    space = ChainCNNSpace(num_layers=3)
    a = Reinforce(batch_size=3, dedup=dedup)
    a.setup(space, seed=7)
    for i in range(7):  # mid-batch, with a queue and a buffer
        p = a.ask()
        a.tell(p.tokens, 0.1 * i, p.info)
    saved = a.state_dict()
    b = Reinforce(batch_size=3, dedup=dedup)
    b.setup(space, seed=123)
    b.load_state_dict(saved)
    for i in range(6):
        pa, pb = a.ask(), b.ask()
        assert pa.tokens == pb.tokens
        a.tell(pa.tokens, 0.3, pa.info)
        b.tell(pb.tokens, 0.3, pb.info)
    for x, y in zip(a.controller.parameters(), b.controller.parameters()):
        assert torch.equal(x, y)
    assert a.baseline == b.baseline


def test_update_from_sampling_graphs_equals_rescoring(monkeypatch):
    """The fast path (differentiating the graphs kept from sampling) is the re-scoring update."""
    space = ChainCNNSpace(num_layers=3)
    fast, slow = Reinforce(batch_size=4, learning_rate=0.05), Reinforce(batch_size=4, learning_rate=0.05)
    fast.setup(space, seed=5)
    slow.setup(space, seed=5)
    rescored = []
    original_score = fast.controller.score
    monkeypatch.setattr(fast.controller, "score", lambda tokens: rescored.append(tokens) or original_score(tokens))
    rng = np.random.default_rng(0)
    for i in range(24):
        pf, ps = fast.ask(), slow.ask()
        assert pf.tokens == ps.tokens
        reward = float(rng.random())
        slow.kept = {}  # as after a resume: the slow strategy re-scores every batch
        fast.tell(pf.tokens, reward, pf.info)
        slow.tell(ps.tokens, reward, ps.info)
    assert fast.updates == slow.updates == 6 and rescored == []
    for x, y in zip(fast.controller.parameters(), slow.controller.parameters()):
        assert torch.allclose(x, y, rtol=0, atol=1e-6)
    fresh = Reinforce(batch_size=4)
    fresh.setup(space, seed=5)
    assert not torch.equal(fast.controller.cells[0].weight_ih, fresh.controller.cells[0].weight_ih)


def _repeats(dedup: bool) -> tuple:
    """Proposals made, proposals already evaluated, and updates, for 40 asks on the tiny space."""
    space = TinySkipSpace()
    strategy = Reinforce(batch_size=4, learning_rate=0.02, dedup=dedup, max_resamples=1000)
    strategy.setup(space, seed=0)
    told, repeats = set(), 0
    for _ in range(40):
        p = strategy.ask()
        repeats += space.arch_hash(p.tokens) in told
        told.add(space.arch_hash(p.tokens))
        strategy.tell(p.tokens, float(p.tokens[-1] == 3), p.info)  # rewards one head choice
    return len(told), repeats, strategy.updates


def test_dedup_proposes_only_new_architectures_and_learns_from_the_repeats_it_skips():
    distinct, repeats, updates = _repeats(dedup=False)
    assert repeats > 0 and updates == 10  # the policy concentrates, so plain sampling repeats
    distinct, repeats, updates = _repeats(dedup=True)
    assert repeats == 0 and distinct == 40
    assert updates > 10  # skipped repeats were taught with their known reward, costing no evaluation


@pytest.mark.parametrize("bad", [{"batch_size": 0}, {"baseline_decay": 1.0}, {"learning_rate": 0},
                                 {"max_resamples": -1}])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError):
        Reinforce(**bad)

"""A space lets the controllers propose only what it can evaluate (issue 13, items 3 and 13).

Spaces that cannot evaluate every in-range token sequence (NAS-Bench-Graph has no all-skip
network; a table made from a sample holds only its rows) define ``allowed_next``; the controller
masks each choice with it. Checked here: the masked policy is a proper distribution over the
allowed architectures, sampling agrees with scoring, gradients stay finite, a space without
restrictions gets exactly the numbers it got before, and REINFORCE and PPO never spend a query on
an architecture NAS-Bench-Graph or the mnist1d-chain table refuses.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

import nasforge  # noqa: F401  (registers the benchmark spaces)
from nasforge.spaces import create_space
from nasforge.strategies import create_strategy
from nasforge.strategies.controller import Controller
from test_controller import TinySkipSpace  # the same small space, restricted here

class TinyMaskedSpace(TinySkipSpace):
    """test_controller's three layers with skip bits (128 token sequences), of which only ``rows``
    are evaluable."""

    name = "tiny-masked"

    def __init__(self, rows):
        self.rows = sorted(set(rows))
        self.follow = {}
        for row in self.rows:
            for i, value in enumerate(row):
                self.follow.setdefault(row[:i], set()).add(value)


    def allowed_next(self, prefix):
        return tuple(sorted(self.follow.get(tuple(prefix), ()))) or None


def every_sequence(space):
    return list(itertools.product(*[range(d.size) for d in space.decisions]))


@pytest.fixture(scope="module")
def tiny():
    """A quarter of the sequences, drawn so that some skip bits and some ops are forced."""
    everything = every_sequence(TinyMaskedSpace([]))
    rng = np.random.default_rng(0)
    rows = [everything[i] for i in rng.choice(len(everything), size=32, replace=False)]
    return TinyMaskedSpace(rows)


def test_the_masked_policy_is_a_distribution_over_the_allowed_architectures_only(tiny):
    torch.manual_seed(1)
    c = Controller(tiny.decisions, init_range=1.0, allowed_next=tiny.allowed_next)  # far from uniform
    log_probs, _ = c.score(tiny.rows)
    assert math.isclose(float(log_probs.detach().exp().sum()), 1.0, rel_tol=1e-5)
    sampled, sampled_lp, _ = c.run(generator=torch.Generator().manual_seed(0), batch=20000)
    allowed = set(tiny.rows)
    assert {tuple(r) for r in sampled.tolist()} <= allowed
    index = {t: i for i, t in enumerate(tiny.rows)}
    counts = np.bincount([index[tuple(r)] for r in sampled.tolist()], minlength=len(tiny.rows))
    assert np.abs(counts / 20000 - log_probs.detach().exp().numpy()).max() < 0.01
    rescored, _ = c.score(sampled[:50].tolist())  # re-scoring gives the probabilities sampled from
    assert torch.allclose(rescored, sampled_lp[:50], atol=1e-6)


def test_masked_gradients_are_finite_and_the_entropy_is_the_masked_distributions(tiny):
    torch.manual_seed(2)
    c = Controller(tiny.decisions, init_range=0.5, allowed_next=tiny.allowed_next)
    log_probs, entropies = c.score(tiny.rows)
    (-(log_probs * torch.linspace(0, 1, len(tiny.rows))).mean() - 0.1 * entropies.mean()).backward()
    assert all(torch.isfinite(p.grad).all() for p in c.parameters() if p.grad is not None)
    # the expected per-architecture entropy terms sum (weighted by probability) to the entropy of
    # the distribution over allowed architectures: H = -sum p log p
    p = log_probs.detach().exp()
    assert math.isclose(float((p * entropies.detach()).sum()), float(-(p * log_probs.detach()).sum()), rel_tol=1e-4)


def test_a_space_without_restrictions_gets_the_unmasked_numbers_bit_for_bit():
    space = TinyMaskedSpace([])  # allowed_next answers None everywhere
    torch.manual_seed(3)
    plain = Controller(space.decisions, init_range=0.5)
    hooked = Controller(space.decisions, init_range=0.5, allowed_next=space.allowed_next)
    hooked.load_state_dict(plain.state_dict())
    a = plain.run(generator=torch.Generator().manual_seed(5), batch=64)
    b = hooked.run(generator=torch.Generator().manual_seed(5), batch=64)
    for x, y in zip(a, b):
        assert torch.equal(x, y)


def test_tokens_from_outside_the_mask_are_scored_unmasked_not_as_impossible(tiny):
    outside = next(t for t in every_sequence(tiny) if t not in set(tiny.rows))
    c = Controller(tiny.decisions, allowed_next=tiny.allowed_next)
    log_prob, entropy = c.score([outside])
    assert torch.isfinite(log_prob).all() and torch.isfinite(entropy).all()


def _all_skip(space, tokens) -> bool:
    return all(space.op_names[tokens[i]] == "skip" for i in (0, 2, 4, 6))


@pytest.mark.parametrize("strategy", ["reinforce", "ppo"])
def test_controllers_never_propose_the_all_skip_network_nas_bench_graph_lacks(strategy):
    """Rewarding skip layers drives the policy towards the all-skip network; before the mask,
    REINFORCE proposed it (and was charged a query for each) 253 times in these 300 asks."""
    space = create_space("nbgraph-proteins")  # five ops: skip is one of them
    s = create_strategy(strategy, batch_size=4, learning_rate=0.05)
    s.setup(space, seed=0)
    proposed, near = [], 0
    for _ in range(300):
        p = s.ask()
        proposed.append(p.tokens)
        skips = sum(space.op_names[p.tokens[i]] == "skip" for i in (0, 2, 4, 6))
        near += skips == 3
        s.tell(p.tokens, skips / 4, p.info)
    assert not any(_all_skip(space, t) for t in proposed)
    for t in proposed:
        space.lookup(t)  # every proposal is in the table
    assert near > 100  # the policy did learn to want skips: the mask, not luck, kept it out


def test_reinforce_on_the_benchmark_runner_is_charged_for_no_refused_architecture():
    """Minimising parameters, a refused query (failure penalty 0) out-scores every real network,
    so a policy that may propose the all-skip network learns to: before the mask, 259 of these
    300 queries were spent on it."""
    from nasforge.compare.runner import RunSpec, run_one

    run = run_one(RunSpec("nbgraph-proteins", "reinforce", 0, {"batch_size": 4, "learning_rate": 0.05}, 300, None,
                          reward={"metric": "params_m", "direction": "minimize"}))
    assert run["error"] is None and run["queries"] == 300
    assert run["failures"] == 0, run["first_failure"]


def test_the_mnist1d_table_steers_a_controller_to_its_rows():
    space = create_space("mnist1d-chain")
    rows = {tuple(int(v) for v in r) for r in space.all_metrics()["tokens"]}
    walk = [()]
    while len(walk[0]) < len(space.decisions):  # every prefix the trie offers leads to a row
        walk = [p + (v,) for p in walk for v in space.allowed_next(p)]
    assert set(walk) == rows
    s = create_strategy("reinforce", batch_size=4)
    s.setup(space, seed=0)
    for _ in range(40):
        p = s.ask()
        assert tuple(p.tokens) in rows
        s.tell(p.tokens, space.lookup(p.tokens)["val_acc"], p.info)
    assert create_space("mnist1d-chain-nearest").allowed_next is None  # answers anything: no mask

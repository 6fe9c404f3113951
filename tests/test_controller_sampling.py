"""The controller against a hand-run LSTM, and its masked sampling (``allowed_next``): every sample
is allowed, the renormalised probabilities of the allowed architectures sum to one, and sampled
frequencies follow them, with skip bits forced by the space costing nothing."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest
import torch

from nasforge.spaces.base import Decision
from nasforge.strategies.controller import Controller, allowed_next_of

PLAIN = [Decision("a", (0, 1, 2)), Decision("b", (0, 1, 2)), Decision("c", (0, 1))]


def test_log_probability_is_that_of_an_lstm_carrying_its_state_through_the_decisions():
    """By hand: two stacked LSTM cells start from zeros and the learned start input; each
    decision's softmax reads the top hidden state; the chosen value's embedding is the next input."""
    torch.manual_seed(0)
    c = Controller(PLAIN, hidden_size=8, num_layers=2, init_range=0.5)
    tokens = (2, 0, 1)
    state = [(torch.zeros(1, 8), torch.zeros(1, 8)) for _ in range(2)]
    x, total = c.start, torch.zeros(())
    for i, choice in enumerate(tokens):
        for layer, cell in enumerate(c.cells):
            state[layer] = cell(x, state[layer])
            x = state[layer][0]
        total = total + torch.log_softmax(c.heads[str(i)](x), -1)[0, choice]
        x = c.embeddings[str(i)](torch.tensor([choice]))
    got, _ = c.score([tokens])
    assert float(got[0].detach()) == pytest.approx(float(total), abs=1e-6)


def test_run_samples_one_architecture_by_default():
    c = Controller(PLAIN, hidden_size=8)
    tokens, log_probs, entropies = c.run(generator=torch.Generator().manual_seed(0))
    assert tokens.shape == (1, 3) and log_probs.shape == entropies.shape == (1,)


def test_allowed_next_of_a_space_is_its_hook_or_none():
    hook = lambda prefix: None  # noqa: E731
    assert allowed_next_of(SimpleNamespace(allowed_next=hook)) is hook
    assert allowed_next_of(SimpleNamespace(allowed_next=None)) is None


# ---- masks --------------------------------------------------------------------------------------------


def plain_allowed(prefix):
    """b must differ from a; c must be 0 when a is 2; anything at the first decision."""
    if len(prefix) == 1:
        return [v for v in range(3) if v != prefix[0]]
    if len(prefix) == 2 and prefix[0] == 2:
        return [0]
    return None


def plain_valid(t):
    return t[1] != t[0] and (t[0] != 2 or t[2] == 0)


SKIP = [
    Decision("L0.op", (0, 1), layer=0),
    Decision("L1.from_L0", (0, 1), layer=1, source=0),
    Decision("L1.op", (0, 1), layer=1),
    Decision("L2.from_L0", (0, 1), layer=2, source=0),
    Decision("L2.from_L1", (0, 1), layer=2, source=1),
    Decision("L2.op", (0, 1), layer=2),
]


def skip_allowed(prefix):
    """Layer 2 reads at least one layer, and only from layer 0 when layer 1 has op 1."""
    if len(prefix) == 3 and prefix[2] == 1:  # L2.from_L0 after L1.op = 1: forced on
        return [1]
    if len(prefix) == 4:
        if prefix[2] == 1:  # L2.from_L1 forbidden
            return [0]
        if prefix[3] == 0:  # nothing chosen yet: layer 1 is forced
            return [1]
    return None


def skip_valid(t):
    if t[2] == 1:
        return t[3] == 1 and t[4] == 0
    return t[3] + t[4] >= 1


@pytest.mark.parametrize("decisions, allowed, valid", [(PLAIN, plain_allowed, plain_valid),
                                                       (SKIP, skip_allowed, skip_valid)], ids=["choices", "skips"])
def test_masked_probabilities_cover_exactly_the_allowed_architectures(decisions, allowed, valid):
    torch.manual_seed(1)
    c = Controller(decisions, hidden_size=8, init_range=1.0, allowed_next=allowed)
    every = list(itertools.product(*[range(d.size) for d in decisions]))
    good = [t for t in every if valid(t)]
    assert 1 < len(good) < len(every)
    log_probs, entropies = c.score(good)
    assert float(log_probs.detach().exp().sum()) == pytest.approx(1.0, abs=1e-5)
    assert torch.isfinite(entropies).all() and (entropies >= 0).all()
    tokens, sampled_lp, _ = c.run(generator=torch.Generator().manual_seed(0), batch=4000)
    rows = [tuple(r) for r in tokens.tolist()]
    assert all(valid(r) for r in rows)
    # the probability a sample carries is the one scoring gives it, and frequencies follow them
    scored = dict(zip(good, log_probs.detach().exp().tolist()))
    assert torch.allclose(sampled_lp.detach().exp(), torch.tensor([scored[r] for r in rows]), atol=1e-5)
    counts = {t: 0 for t in good}
    for r in rows:
        counts[r] += 1
    assert max(abs(counts[t] / 4000 - scored[t]) for t in good) < 0.03


def test_a_forced_value_costs_nothing_and_tokens_from_outside_the_mask_are_scored_unmasked():
    torch.manual_seed(2)
    free = Controller(PLAIN, hidden_size=8, init_range=1.0)
    masked = Controller(PLAIN, hidden_size=8, init_range=1.0, allowed_next=plain_allowed)
    masked.load_state_dict(free.state_dict())
    # (2, 0, 0): c is forced to 0 after a = 2, so masked log pi = log p(a=2) + log p(b=0 | b in {0, 1})
    lp_free = free.score([(2, 0, 0), (2, 1, 0)])[0].detach()
    lp_masked = float(masked.score([(2, 0, 0)])[0][0])
    c0 = free.score([(2, 0, 0), (2, 0, 1)])[0].detach()
    log_c0 = float(c0[0] - torch.logsumexp(c0, 0))  # log p(c = 0 | a = 2, b = 0), unmasked
    log_b_pair = float(torch.logsumexp(free.score([(2, 0, 0), (2, 0, 1), (2, 1, 0), (2, 1, 1)])[0].detach(), 0))
    # log p(a=2) + log p(b=0) = log pi(2,0,0) - log p(c=0 | ...); renormalised over b in {0, 1}
    expected = float(lp_free[0]) - log_c0 - (log_b_pair - float(torch.logsumexp(
        free.score([(2, b, c) for b in range(3) for c in range(2)])[0].detach(), 0)))
    assert lp_masked == pytest.approx(expected, abs=1e-5)
    # (2, 2, 1) breaks the mask at b: scored by the unmasked policy from there on
    assert float(masked.score([(2, 2, 1)])[0][0]) == pytest.approx(float(free.score([(2, 2, 1)])[0][0]), abs=1e-6)


def test_a_space_that_allows_nothing_is_an_error():
    c = Controller(PLAIN, hidden_size=8, allowed_next=lambda prefix: [] if len(prefix) == 1 else None)
    with pytest.raises(ValueError, match="the space allows no value of 'b' after \\[\\d\\]"):
        c.run(generator=torch.Generator().manual_seed(0))

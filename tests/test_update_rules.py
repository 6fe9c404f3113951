"""The update-rules space and its interpreter (issue 17.3a): SGD with momentum and Adam written as
tokens perform torch.optim's updates step by step; PowerSign and AddSign (Bello et al. 2017) and Bop
(Helwegen et al. 2019) perform their papers' formulas, written out by hand here; canonical twins
perform the same updates, and so do rules that share a hash by behaviour; a diverging rule fails its
trial with a reason."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nasforge.data.datasets import Dataset, load_dataset
from nasforge.estimators.base import TrialFailed, create_estimator
from nasforge.quant.fake import weight_levels
from nasforge.quant.rules import RuleOptimizer
from nasforge.spaces.base import SPACES, InvalidArchitectureError
from nasforge.spaces.update_rules import REFERENCE_RULES, UpdateRuleSpace

STEPS = 12


def gradients(seed: int, shape=(6, 5), steps: int = STEPS):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=gen) for _ in range(steps)]


def run_rule(name_or_rule, w0, grads, quantise=None, **constants):
    """The parameter after each step of the interpreter driven with the given gradients; the rule
    goes through the space's tokens first (tokens -> rule -> optimiser)."""
    space = UpdateRuleSpace(**constants)
    groups, lr = REFERENCE_RULES[name_or_rule] if isinstance(name_or_rule, str) else name_or_rule
    groups, lr = space.rule(space.tokens_for(groups, lr))
    p = torch.nn.Parameter(w0.clone())
    c = space.constants
    return stepped(p, RuleOptimizer([p], groups, lr, quantise=quantise, betas=(c["beta1"], c["beta2"]),
                                    gamma=c["gamma"], tau=c["tau"], eps=c["eps"]), grads)


def run_torch(make, w0, grads):
    p = torch.nn.Parameter(w0.clone())
    return stepped(p, make([p]), grads)


def stepped(p, opt, grads):
    """``p`` after each step of ``opt`` given the gradients ``grads``."""
    out = []
    for g in grads:
        p.grad = g.clone()
        opt.step()
        out.append(p.detach().clone())
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_sgd_momentum_as_tokens_is_torch_sgd(seed):
    w0 = torch.randn(6, 5, generator=torch.Generator().manual_seed(100 + seed))
    grads = gradients(seed)
    ours = run_rule("sgd-momentum", w0, grads)
    ref = run_torch(lambda ps: torch.optim.SGD(ps, lr=0.01, momentum=0.9), w0, grads)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("seed, scale", [(0, 1.0), (1, 1e-7)])  # 1e-7: eps matters
def test_adam_as_tokens_is_torch_adam(seed, scale):
    w0 = torch.randn(6, 5, generator=torch.Generator().manual_seed(100 + seed))
    grads = [g * scale * 10 ** (i % 3 - 1) for i, g in enumerate(gradients(seed))]  # scales vary: v_hat matters
    ours = run_rule("adam", w0, grads)
    ref = run_torch(lambda ps: torch.optim.Adam(ps, lr=1e-3), w0, grads)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert not torch.equal(ours[-1], w0)


def by_hand_sign_rule(w0, grads, lr, factor, beta=0.9):
    """PowerSign / AddSign as the paper writes them: m <- beta m + (1 - beta) g, then
    w <- w - lr * factor(sign(g) sign(m)) * g."""
    w, m, out = w0.clone(), torch.zeros_like(w0), []
    for g in grads:
        m = beta * m + (1 - beta) * g
        w = w - lr * factor(torch.sign(g) * torch.sign(m)) * g
        out.append(w)
    return out


@pytest.mark.parametrize("name, factor", [("powersign", torch.exp), ("addsign", lambda s: 1 + s)])
def test_powersign_and_addsign_follow_the_paper(name, factor):
    w0 = torch.randn(6, 5, generator=torch.Generator().manual_seed(5))
    grads = gradients(3)
    ours = run_rule(name, w0, grads)
    ref = by_hand_sign_rule(w0, grads, REFERENCE_RULES[name][1], factor)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_bop_flips_binary_weights_as_its_paper_says():
    """Bop on binary weights b = sign(w): m <- (1 - gamma) m + gamma g; b <- -b where |m| > tau and
    sign(m) = sign(b). As tokens it acts on the latent weight: a flip is w <- -w (update 2w, lr 1),
    so |w| and each channel's 1-bit scale stay, and sign(w) follows the paper's b."""
    gamma, tau = 0.1, 0.05
    w0 = torch.randn(6, 5, generator=torch.Generator().manual_seed(9))
    grads = gradients(4)
    ours = run_rule("bop", w0, grads, gamma=gamma, tau=tau)
    b, m = torch.sign(w0), torch.zeros_like(w0)
    flips = kept = 0
    for got, g in zip(ours, grads):
        m = (1 - gamma) * m + gamma * g
        flip = (m.abs() > tau) & (torch.sign(m) == b)
        flips, kept = flips + int(flip.sum()), kept + int((~flip).sum())
        b = torch.where(flip, -b, b)
        assert torch.equal(torch.sign(got), b)
        torch.testing.assert_close(got.abs(), w0.abs(), rtol=0, atol=0)
        torch.testing.assert_close(weight_levels(got, 1), b * w0.abs().mean(dim=1, keepdim=True))
    assert flips > 10 and kept > 10  # both outcomes happened


SPACE = UpdateRuleSpace(groups=3)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tokens=st.tuples(*[st.integers(0, d.size - 1) for d in SPACE.decisions]))
def test_canonical_twins_perform_the_same_updates(tokens):
    w0 = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    grads = gradients(2, shape=(4, 3), steps=3)
    quantise = lambda w: weight_levels(w, 1)  # noqa: E731
    a = run_rule(SPACE.rule(tokens), w0, grads, quantise, groups=3)
    b = run_rule(SPACE.rule(SPACE.canonical(tokens)), w0, grads, quantise, groups=3)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, equal_nan=True)


def test_canonical_ignores_dropped_operands_and_unread_groups():
    space = UpdateRuleSpace(groups=2)
    for rule, changes in (([("g", "m", "identity", "drop", "add")], ({"G2.op2": "v_hat"}, {"G1.op1": "w", "G1.u1": "exp"})),
                          ([("g", "m", "drop", "identity", "add")], ({"G2.op1": "v_hat"},)),
                          ([("g", "m", "identity", "exp", "keep_left")], ({"G2.op2": "w", "G2.u2": "sign"},))):
        base = space.tokens_for(rule, 0.1)
        values = space.encode(base)
        for change in changes:
            twin = space.decode({**values, **change})
            assert twin != base and space.arch_hash(twin) == space.arch_hash(base), (rule, change)
    other = space.decode({**values, "G2.op1": "m_hat"})
    assert space.arch_hash(other) != space.arch_hash(base)


def test_a_dropped_operand_reads_as_zero_whatever_it_was():
    space = UpdateRuleSpace(groups=1)
    a = space.tokens_for([("m_bop", "sign(g)", "drop", "identity", "add")], 1e-3)
    b = space.tokens_for([("g", "sign(g)", "drop", "identity", "add")], 1e-3)
    assert space.summary(a) == space.summary(b) == "0.001 * add(0, sign(g))"
    assert space.describe(a) == space.describe(b)


def test_one_optimiser_written_two_ways_has_one_hash():
    """The 1-bit search spent most of its budget on signSGD under other tokens; by behaviour they are one."""
    space = UpdateRuleSpace()
    sign_sgd = space.arch_hash(space.tokens_for([("sign(g)", "1", "identity", "identity", "keep_left")], 0.03))
    for exponent in ("1", "w", "m_bop", "r1"):  # they differ only where g is exactly 0 (0^x for x <= 0)
        written = [("m", "g", "exp", "identity", "keep_left"), ("g^3", exponent, "sign", "identity", "power")]
        assert space.arch_hash(space.tokens_for(written, 0.03)) == sign_sgd, exponent
    for other in ("sign(m_hat)", "m", "m_bop"):  # signSGD on another signal is another optimiser
        written = [(other, "1", "sign", "identity", "keep_left")]
        assert space.arch_hash(space.tokens_for(written, 0.03)) != sign_sgd, other
    doubled = space.tokens_for([("g", "g", "identity", "identity", "add")], 0.1)
    twice = [("g", "2", "identity", "identity", "multiply")]
    assert space.arch_hash(doubled) == space.arch_hash(space.tokens_for(twice, 0.1))
    assert space.arch_hash(doubled) != space.arch_hash(space.tokens_for(twice, 0.3))
    hashes = {space.arch_hash(space.tokens_for(rule, lr)) for rule, lr in REFERENCE_RULES.values()}
    hashes |= {space.arch_hash(space.tokens_for(rule, 0.01)) for rule, _ in REFERENCE_RULES.values()}
    assert len(hashes) == 2 * len(REFERENCE_RULES)
    assert UpdateRuleSpace(weight_bits=2).arch_hash(doubled) != space.arch_hash(doubled)  # settings count


@pytest.mark.parametrize("bits", [1, 2, 4])
def test_rules_that_share_a_hash_perform_the_same_updates(bits):
    """Over 1,500 random rules: wherever two canonical forms share a hash, they move the same weights
    the same way over steps of gradients the hash never saw (another seed and shape, magnitudes
    from 1e-5 to 1; none exactly 0, where the hash does not look). Compared in float64: an update
    of 1e4 written two ways rounds differently in float32. Where no update is finite, rules are
    told apart by their tokens."""
    space = UpdateRuleSpace(groups=3, weight_bits=bits)
    rng = np.random.default_rng(bits)
    classes = {}
    for _ in range(1500):
        canonical = space.canonical(space.sample(rng))
        classes.setdefault(space.arch_hash(canonical), set()).add(canonical)
    joined = [sorted(c) for c in classes.values() if len(c) > 1]
    assert len(joined) >= 20  # not vacuous: the space writes many rules more than one way
    gen = torch.Generator().manual_seed(21)

    def spread(low, high):  # magnitudes 10^low .. 10^high, element by element
        return 10 ** (low + (high - low) * torch.rand(6, 9, generator=gen, dtype=torch.float64))

    w0 = torch.randn(6, 9, generator=gen, dtype=torch.float64) * spread(-3, 0.5)
    grads = [torch.randn(6, 9, generator=gen, dtype=torch.float64) * spread(-5, 0) for _ in range(5)]
    quantise = lambda w: weight_levels(w, bits)  # noqa: E731
    for members in joined:
        assert all(space.behaviour(m) is not None for m in members)
        first = run_rule(space.rule(members[0]), w0, grads, quantise, groups=3, weight_bits=bits)
        for other in members[1:]:
            moved = run_rule(space.rule(other), w0, grads, quantise, groups=3, weight_bits=bits)
            for x, y in zip(first, moved):
                torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-9, equal_nan=True,
                                           msg=f"{space.summary(members[0])} and {space.summary(other)}")
    blow_up = [("1", "eps", "identity", "identity", "divide"), ("r1", "1", "exp", "identity", "keep_left")]
    infinite = space.tokens_for(blow_up, 0.1)
    assert space.behaviour(infinite) is None
    assert space.arch_hash(infinite) != space.arch_hash(space.tokens_for(blow_up, 0.3))


def test_a_rule_with_too_many_groups_or_an_unknown_rate_is_refused():
    with pytest.raises(InvalidArchitectureError, match="groups"):
        UpdateRuleSpace(groups=3).tokens_for(REFERENCE_RULES["bop"][0], 1.0)
    with pytest.raises(InvalidArchitectureError, match="learning rate"):
        UpdateRuleSpace().tokens_for(REFERENCE_RULES["adam"][0], 0.5)
    with pytest.raises(ValueError, match="weight bits"):
        UpdateRuleSpace(weight_bits=3)


@pytest.fixture(scope="module")
def tiny_digits() -> Dataset:
    d = load_dataset("digits")
    return Dataset("digits-tiny", d.x_train[:160], d.y_train[:160], d.x_test[:40], d.y_test[:40], d.num_classes)


def test_a_diverging_rule_fails_its_trial_with_a_reason(tiny_digits):
    space = SPACES.create("update-rules", child_layers=2)
    blow_up = [("w", "1", "exp", "identity", "keep_left"), ("r1", "1", "exp", "identity", "keep_left"),
               ("r2", "sign(g)", "negate", "identity", "add")]  # w <- w + exp(exp(w)) - sign(g)
    estimator = create_estimator("rule-train", epochs=1, batch_size=32)
    estimator.setup(space, tiny_digits)
    with pytest.raises(TrialFailed, match="update rule made"):
        estimator.evaluate(space.tokens_for(blow_up, 1.0), seed=0)
    metrics = estimator.evaluate(space.tokens_for(*REFERENCE_RULES["adam"]), seed=0)  # a sane rule trains
    assert metrics["weight_bits"] < 32 * metrics["params"] and np.isfinite(metrics["train_loss"])


@pytest.mark.parametrize("rule, reason", [
    ([("g", "m", "drop", "drop", "add")], "reads no gradient"),  # 0 + 0
    ([("w_q", "1", "identity", "identity", "multiply")], "reads no gradient"),  # a drift of the weights alone
    ([("g", "tau", "identity", "identity", "keep_left"), ("r1", "w", "drop", "identity", "add")],
     "reads no gradient"),  # the gradient is read only where it is dropped
    ([("g", "g", "identity", "identity", "subtract")], "never changes a weight"),  # g - g
])
def test_a_rule_that_cannot_learn_fails_untrained(tiny_digits, monkeypatch, rule, reason):
    space = SPACES.create("update-rules", child_layers=2)
    estimator = create_estimator("rule-train", epochs=1, batch_size=32)
    estimator.setup(space, tiny_digits)
    trained = []
    monkeypatch.setattr(estimator, "_train_once", lambda *a: trained.append(a))
    with pytest.raises(TrialFailed, match=reason):
        estimator.evaluate(space.tokens_for(rule, 1e-3), seed=0)
    assert not trained


@pytest.mark.parametrize("name", sorted(REFERENCE_RULES))
def test_every_reference_optimiser_can_learn(name):
    space = UpdateRuleSpace(groups=4)
    assert space.cannot_learn(space.tokens_for(*REFERENCE_RULES[name])) is None


def test_rule_train_refuses_a_network_space(tiny_digits):
    with pytest.raises(ValueError, match="update rules"):
        create_estimator("rule-train").setup(SPACES.create("chain-cnn", num_layers=2, dims=2), tiny_digits)


def test_repeats_score_the_mean_of_several_seeds_and_the_first_is_the_trials_own(tiny_digits):
    space = SPACES.create("update-rules", child_layers=2)
    tokens = space.tokens_for(*REFERENCE_RULES["addsign"])
    once = create_estimator("rule-train", epochs=2, batch_size=32, repeats=1)
    once.setup(space, tiny_digits)
    thrice = create_estimator("rule-train", epochs=2, batch_size=32, repeats=3)
    thrice.setup(space, tiny_digits)
    single, mean = once.evaluate(tokens, seed=7), thrice.evaluate(tokens, seed=7)
    runs = mean["val_acc_runs"]
    assert runs[0] == single["val_acc"]  # one repeat trains exactly as the estimator always did
    assert len(runs) == 3 and len(set(runs)) > 1  # other seeds, other trainings
    assert mean["val_acc"] == pytest.approx(np.mean(runs))
    assert len(mean["val_acc_history"]) == 2 and mean["params"] == single["params"]
    assert thrice.evaluate(tokens, seed=7)["val_acc_runs"] == runs  # the seeds follow from the trial's
    assert "val_acc_runs" in thrice.produces() and "val_acc_runs" not in single


@pytest.mark.parametrize("repeats", [0, -1, 1.5, True])
def test_repeats_must_be_a_positive_integer(repeats):
    with pytest.raises(ValueError, match="repeats must be an integer of at least 1"):
        create_estimator("rule-train", repeats=repeats)

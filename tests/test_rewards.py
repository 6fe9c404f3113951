"""Rewards: MnasNet's formula against hand-computed values, constraints, other objectives, parsing."""

from __future__ import annotations

import pytest

from nasforge.objectives.constraints import Constraint, MnasNetTerm, mnasnet_reward, parse_constraint
from nasforge.objectives.objective import CallableObjective, Objective, WeightedSum
from nasforge.objectives.rewards import Scorer, evaluate_metrics

# ACC = 0.8, T = 2.  By hand: 2^0.07 = e^(0.07 ln 2) = e^0.0485203 = 1.0497166
AT, BELOW, ABOVE = 2.0, 1.0, 4.0
SOFT = {AT: 0.8, BELOW: 0.8 * 1.0497166, ABOVE: 0.8 / 1.0497166}  # 0.8, 0.839773, 0.762110
HARD = {AT: 0.8, BELOW: 0.8, ABOVE: 0.8 * (4 / 2) ** -1}  # alpha = 0 below, beta = -1 above: 0.4


@pytest.mark.parametrize("latency", [AT, BELOW, ABOVE])
def test_mnasnet_reward_at_below_and_above_the_target(latency):
    assert mnasnet_reward(0.8, latency, 2.0, -0.07, -0.07) == pytest.approx(SOFT[latency], rel=1e-6)
    assert mnasnet_reward(0.8, latency, 2.0, 0.0, -1.0) == pytest.approx(HARD[latency], rel=1e-9)


@pytest.mark.parametrize("latency", [AT, BELOW, ABOVE])
def test_scorer_modes_give_the_mnasnet_reward_and_keep_soft_trials_feasible(latency):
    metrics = {"val_acc": 0.8, "latency_ms": latency}
    for mode, expected in (("soft", SOFT), ("mnasnet-hard", HARD)):
        value, reward, feasible, violations = Scorer(Objective(transform="identity"),
                                                     [parse_constraint("latency_ms<=2")], mode).evaluate(metrics)
        assert reward == pytest.approx(expected[latency], rel=1e-6) and value == pytest.approx(reward)
        assert feasible
        assert violations == (["soft: latency_ms = 4 violates latency_ms<=2"] if latency == ABOVE else [])
    # the paper's cube applies to the MnasNet score
    cubed = Scorer(Objective(transform="cube"), [Constraint("latency_ms", "<=", 2)], "soft").evaluate(metrics)
    assert cubed.reward == pytest.approx(SOFT[latency] ** 3, rel=1e-6)


def test_mnasnet_terms_for_any_metric_in_either_direction():
    # params as LAT: 3e5 against a target of 2e5 -> 0.9 * 1.5^-0.07 (hand: 1.5^0.07 = e^0.0283826 = 1.0287892)
    soft = Scorer(Objective(transform="identity"), terms=[MnasNetTerm.soft("params", 2e5)])
    assert soft.evaluate({"val_acc": 0.9, "params": 3e5}).reward == pytest.approx(0.9 / 1.0287892, rel=1e-6)
    # a metric that is better large: ptq_acc 0.4 against a target of 0.5 is 1.25 "too far"
    term = MnasNetTerm(Constraint("ptq_acc", ">=", 0.5), 0.0, -1.0)
    scorer = Scorer(Objective(transform="identity"), terms=[term])
    assert scorer.evaluate({"val_acc": 0.9, "ptq_acc": 0.4}).reward == pytest.approx(0.9 * 0.8)
    assert scorer.evaluate({"val_acc": 0.9, "ptq_acc": 0.6}).reward == pytest.approx(0.9)
    with pytest.raises(ValueError, match="positive"):
        Scorer(Objective(), terms=[MnasNetTerm.hard("latency_ms", 2)]).evaluate({"val_acc": 0.9, "latency_ms": 0})


def test_a_worse_factor_always_lowers_the_reward_of_a_minimised_objective():
    scorer = Scorer(Objective("params", "minimize", "identity"), [Constraint("latency_ms", "<=", 2)], "soft")
    fast = scorer.evaluate({"params": 1000, "latency_ms": 1})
    slow = scorer.evaluate({"params": 1000, "latency_ms": 4})
    assert slow.reward < -1000 < fast.reward
    assert slow.value > 1000 > fast.value  # the adjusted value stays "smaller is better"


def test_hard_constraints_make_trials_infeasible_with_a_penalty():
    constraints = [parse_constraint("latency_ms<=2"), parse_constraint("val_acc >= 0.5")]
    scorer = Scorer(Objective(transform="identity", failure_penalty=-1.0), constraints)
    ok = scorer.evaluate({"val_acc": 0.9, "latency_ms": 2.0})  # at the limit is within it
    assert ok == (0.9, 0.9, True, [])
    bad = scorer.evaluate({"val_acc": 0.4, "latency_ms": 3.0})
    assert not bad.feasible and bad.reward == -1.0 and bad.value == 0.4
    assert bad.violations == ["latency_ms = 3 violates latency_ms<=2", "val_acc = 0.4 violates val_acc>=0.5"]
    # the reward of an infeasible trial can be graded by how far it is over (relative excess)
    graded = Scorer(Objective(transform="identity"), constraints, infeasible_reward=-1.0, excess_weight=2.0)
    assert graded.evaluate({"val_acc": 0.4, "latency_ms": 3.0}).reward == pytest.approx(-1 - 2 * (0.5 + 0.2))
    # never the best: a feasible trial beats any infeasible one
    assert scorer.better(ok, bad) and not scorer.better(bad, ok)
    assert scorer.better(ok, scorer.evaluate({"val_acc": 0.6, "latency_ms": 1.0}))
    with pytest.raises(KeyError, match="latency_ms"):
        scorer.evaluate({"val_acc": 0.9})


def test_weighted_sum_and_callables():
    weighted = WeightedSum({"val_acc": 1.0, "params": 1e-6})  # params is better small: subtracted
    assert weighted.value({"val_acc": 0.9, "params": 2e5}) == pytest.approx(0.7)
    value, reward, feasible, _ = evaluate_metrics({"val_acc": 0.9, "params": 2e5}, weighted)
    assert value == pytest.approx(0.7) and reward == pytest.approx(0.7) and feasible
    with pytest.raises(ValueError, match="unknown metric 'joules'"):
        WeightedSum({"joules": 1.0}).check()
    assert WeightedSum({"joules": 1.0}, {"joules": "minimize"}).value({"joules": 3}) == -3
    plain = Scorer(lambda m: m["val_acc"] - m["latency_ms"] / 100)
    assert plain.evaluate({"val_acc": 0.9, "latency_ms": 10}).reward == pytest.approx(0.8)
    lower = Scorer(CallableObjective(lambda m: m["latency_ms"], direction="minimize"))
    assert lower.better(lower.evaluate({"latency_ms": 1}), lower.evaluate({"latency_ms": 2}))


def test_from_config_section():
    scorer = Scorer.from_config({"metric": "val_acc", "transform": "identity",
                                 "constraints": ["latency_ms<=2"], "constraint_mode": "mnasnet-hard"})
    assert scorer.evaluate({"val_acc": 0.8, "latency_ms": 4}).reward == pytest.approx(0.4)
    weighted = Scorer.from_config({"metric": "val_acc", "transform": "cube", "weights": {"val_acc": 1, "params": 1e-6}})
    assert weighted.evaluate({"val_acc": 0.9, "params": 2e5}).reward == pytest.approx(0.7 ** 3)
    with pytest.raises(ValueError, match="constraint mode"):
        Scorer.from_config({"constraints": ["latency_ms<=2"], "constraint_mode": "sloppy"})
    with pytest.raises(ValueError, match="unexpected keyword"):
        Scorer.from_config({"metric": "val_acc", "colour": "red"})
    assert Scorer.from_config({"metric": "val_acc"}).evaluate({"val_acc": 0.5}).reward == 0.5 ** 3


def test_parse_constraint():
    assert parse_constraint("latency_ms<=2") == Constraint("latency_ms", "<=", 2.0)
    assert parse_constraint(" params >= 1e5 ") == Constraint("params", ">=", 1e5)
    assert parse_constraint("size_bytes<=-0") == Constraint("size_bytes", "<=", 0.0)
    assert str(parse_constraint("latency_ms<=2.5")) == "latency_ms<=2.5"
    assert parse_constraint("energy<=3", known=["energy"]).metric == "energy"


@pytest.mark.parametrize("text, message", [
    ("latncy_ms<=2", "unknown metric 'latncy_ms'"),
    ("latency_ms<2", "unknown operator '<'"),
    ("latency_ms==2", "unknown operator '=='"),
    ("latency_ms=>2", "unknown operator '=>'"),
    ("latency_ms<=fast", "limit 'fast' is not a number"),
    ("latency_ms<=", "limit '' is not a number"),
    ("latency_ms<=inf", "limit must be finite"),
    ("latency_ms<=nan", "limit must be finite"),
    ("latency_ms 2", "expected METRIC<=LIMIT"),
    ("", "expected METRIC<=LIMIT"),
])
def test_parse_errors_name_the_problem(text, message):
    with pytest.raises(ValueError, match=message):
        parse_constraint(text)


def test_constraint_checks_its_fields():
    with pytest.raises(ValueError, match="operator"):
        Constraint("latency_ms", "<", 2)
    with pytest.raises(ValueError, match="finite"):
        Constraint("latency_ms", "<=", float("inf"))
    with pytest.raises(ValueError, match="positive"):
        Scorer(Objective(), [Constraint("latency_ms", "<=", 0)], "soft").check()

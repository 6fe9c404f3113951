"""The scorer's rules at their edges: which side of a limit counts as met, which exponent applies
below and above a MnasNet target, what is refused and how the refusal reads, and how trials are
ranked. Expected numbers are worked out by hand in the comments."""

from __future__ import annotations

import math

import pytest

from nasforge.objectives.constraints import Constraint, MnasNetTerm, mnasnet_reward, parse_constraint
from nasforge.objectives.objective import CallableObjective, Objective, WeightedSum
from nasforge.objectives.rewards import Evaluation, Scorer, evaluate_metrics


# ---- objectives -------------------------------------------------------------------------------------


def test_objective_reward_follows_direction_and_transform():
    assert Objective().reward(0.5) == 0.125  # the paper's cube
    assert Objective(transform="square").reward(0.5) == 0.25
    assert Objective(direction="minimize", transform="identity").reward(2.0) == -2.0
    assert Objective(direction="minimize", transform="cube").reward(2.0) == -8.0


def test_objective_better_is_strict_in_its_direction():
    up, down = Objective(), Objective(direction="minimize")
    assert up.better(0.6, 0.5) and not up.better(0.5, 0.6) and not up.better(0.5, 0.5)
    assert down.better(0.5, 0.6) and not down.better(0.6, 0.5) and not down.better(0.5, 0.5)


def test_callable_objective_checks_its_fields_and_refuses_non_finite_values():
    with pytest.raises(ValueError, match="direction must be one of"):
        CallableObjective(lambda m: 1.0, direction="up").check()
    with pytest.raises(ValueError, match="is not callable"):
        CallableObjective(3.0).check()
    CallableObjective(lambda m: 1.0, direction="minimize").check()
    with pytest.raises(ValueError, match="objective 'mine' is nan"):
        CallableObjective(lambda m: math.nan, name="mine").value({})


# ---- constraints ------------------------------------------------------------------------------------


def test_a_value_exactly_at_the_limit_meets_the_constraint_either_way():
    assert Constraint("latency_ms", "<=", 2.0).satisfied(2.0)
    assert not Constraint("latency_ms", "<=", 2.0).satisfied(2.0001)
    assert Constraint("val_acc", ">=", 0.9).satisfied(0.9)
    assert not Constraint("val_acc", ">=", 0.9).satisfied(0.8999)


def test_excess_is_relative_to_the_limit_or_absolute_at_a_zero_limit():
    assert Constraint("latency_ms", "<=", 2.0).excess(3.0) == pytest.approx(0.5)
    assert Constraint("val_acc", ">=", 0.8).excess(0.6) == pytest.approx(0.25)
    assert Constraint("drop", "<=", 0.0).excess(0.3) == pytest.approx(0.3)  # divided by 1, not 0
    assert Constraint("drop", "<=", 0.0).excess(-1.0) == 0.0


def test_a_non_finite_constraint_metric_is_named_in_the_error():
    with pytest.raises(ValueError, match="constraint metric 'latency_ms' is nan"):
        Constraint("latency_ms", "<=", 2.0).value({"latency_ms": math.nan})


def test_a_mnasnet_ratio_needs_a_positive_target():
    with pytest.raises(ValueError, match="positive values"):
        Constraint("latency_ms", "<=", 0.0).ratio(1.0)
    with pytest.raises(ValueError, match="positive values"):
        Constraint("latency_ms", "<=", 2.0).ratio(0.0)


def test_an_unknown_metric_error_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown metric 'lat'; known metrics: latency_ms, val_acc$"):
        parse_constraint("lat<=2", known=["val_acc", "latency_ms"])


# ---- MnasNet ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("latency, target", [(1.0, 0.0), (0.0, 1.0), (1.0, -1.0), (-1.0, 1.0)])
def test_mnasnet_reward_refuses_non_positive_latency_or_target(latency, target):
    with pytest.raises(ValueError, match="MnasNet reward needs positive latency and target"):
        mnasnet_reward(0.8, latency, target, -0.07, -0.07)


def test_mnasnet_reward_takes_targets_below_one():
    # 0.25 ms against 0.5 ms: ratio 0.5, below the target, so alpha: 0.8 * 0.5^-0.5 = 0.8 * sqrt(2)
    assert mnasnet_reward(0.8, 0.25, 0.5, -0.5, -1.0) == pytest.approx(0.8 * math.sqrt(2))


def test_mnasnet_soft_and_hard_terms_use_the_papers_exponents_on_both_sides():
    """Soft: w = -0.07 below and above; hard: w = 0 below (factor 1), -1 above. Target 2 ms."""
    below, above = {"latency_ms": 1.0}, {"latency_ms": 4.0}
    soft = MnasNetTerm.soft("latency_ms", 2.0)
    assert soft.factor(below) == pytest.approx(0.5 ** -0.07)  # 1.0497166
    assert soft.factor(above) == pytest.approx(2.0 ** -0.07)  # 0.9526372
    hard = MnasNetTerm.hard("latency_ms", 2.0)
    assert hard.factor(below) == 1.0
    assert hard.factor(above) == pytest.approx(0.5)
    # for a metric that is better large, the ratio turns round: 0.4 against >= 0.5 is 1.25 too far
    assert MnasNetTerm.hard("ptq_acc", 0.5, ">=").factor({"ptq_acc": 0.4}) == pytest.approx(0.8)
    assert MnasNetTerm.soft("ptq_acc", 0.5, ">=").factor({"ptq_acc": 1.0}) == pytest.approx(0.5 ** -0.07)


# ---- weighted sums ----------------------------------------------------------------------------------


def test_weighted_sum_refuses_what_it_cannot_add_and_says_why():
    with pytest.raises(ValueError, match="a weighted sum needs at least one metric"):
        WeightedSum({}).check()
    with pytest.raises(ValueError, match="weight of 'val_acc' must be a finite number, got inf"):
        WeightedSum({"val_acc": math.inf}).check()
    with pytest.raises(ValueError, match="direction of 'mine' must be one of .*, got 'up'"):
        WeightedSum({"mine": 1.0}, {"mine": "up"}).check()
    with pytest.raises(KeyError, match=r"weighted-sum metric 'params' not among the measured metrics \['val_acc'\]"):
        WeightedSum({"params": 1e-6}).value({"val_acc": 0.5})
    with pytest.raises(ValueError, match="weighted sum is inf"):
        WeightedSum({"val_acc": 1.0}).value({"val_acc": math.inf})


def test_weighted_sum_subtracts_minimised_metrics():
    # 2 * 0.5 - 1e-6 * 300000 = 1.0 - 0.3
    assert WeightedSum({"val_acc": 2.0, "params": 1e-6}).value({"val_acc": 0.5, "params": 3e5}) == pytest.approx(0.7)


# ---- the scorer -------------------------------------------------------------------------------------


def _ev(value, feasible=True):
    return Evaluation(value, value, feasible, [])


def test_scorer_ranks_feasible_first_then_strictly_by_value():
    up, down = Scorer(), Scorer(Objective(direction="minimize"))
    assert up.better(_ev(0.1), None)
    assert up.better(_ev(0.1), _ev(0.9, feasible=False))
    assert not up.better(_ev(0.9, feasible=False), _ev(0.1))
    assert up.better(_ev(0.6), _ev(0.5)) and not up.better(_ev(0.5), _ev(0.5))
    assert down.better(_ev(0.5), _ev(0.6)) and not down.better(_ev(0.5), _ev(0.5))
    assert up.better(_ev(0.9, feasible=False), _ev(0.5, feasible=False))  # both infeasible: by value


def test_evaluate_metrics_uses_the_default_objective_the_mode_and_the_options():
    assert evaluate_metrics({"val_acc": 0.5}).reward == pytest.approx(0.125)
    over = {"val_acc": 0.8, "latency_ms": 4.0}
    limit = [Constraint("latency_ms", "<=", 2.0)]
    soft = evaluate_metrics(over, Objective(transform="identity"), limit, mode="soft")
    assert soft.feasible and soft.reward == pytest.approx(0.8 * 2.0 ** -0.07)
    hard = evaluate_metrics(over, Objective(transform="identity"), limit, infeasible_reward=-1.0, excess_weight=2.0)
    assert not hard.feasible and hard.reward == pytest.approx(-1.0 - 2.0 * 1.0)  # excess (4 - 2) / 2 = 1


# ---- from a [reward] config section -----------------------------------------------------------------


def test_from_config_carries_every_setting_of_a_constrained_objective():
    scorer = Scorer.from_config({"metric": "val_acc", "transform": "identity", "failure_penalty": -0.5,
                                 "constraints": ["latency_ms<=2", Constraint("my_metric", ">=", 1.0)],
                                 "constraint_mode": "hard", "infeasible_reward": -1.0, "excess_weight": 2.0})
    assert [str(c) for c in scorer.constraints] == ["latency_ms<=2", "my_metric>=1"]  # objects kept as given
    assert scorer.failure_penalty == -0.5
    over = scorer.evaluate({"val_acc": 0.9, "latency_ms": 3.0, "my_metric": 1.0})
    assert not over.feasible and over.reward == pytest.approx(-1.0 - 2.0 * 0.5)  # excess (3 - 2) / 2
    plain = Scorer.from_config({"constraints": ["latency_ms<=2"]})
    assert plain.evaluate({"val_acc": 0.9, "latency_ms": 3.0}).reward == 0.0  # the failure penalty, no excess term


def test_from_config_builds_a_weighted_sum_with_its_own_settings():
    scorer = Scorer.from_config({"weights": {"val_acc": 1.0, "mine": 0.5}, "directions": {"mine": "minimize"},
                                 "failure_penalty": -1.0})
    assert isinstance(scorer.objective, WeightedSum) and scorer.transform == "identity"
    assert scorer.failure_penalty == -1.0
    assert scorer.evaluate({"val_acc": 0.8, "mine": 0.4}).value == pytest.approx(0.6)  # 0.8 - 0.5 * 0.4
    # a single metric in the same section is replaced by the weights
    assert isinstance(Scorer.from_config({"metric": "val_acc", "weights": {"val_acc": 1.0}}).objective, WeightedSum)
    assert Scorer.from_config({"weights": {"val_acc": 1.0}}).failure_penalty == 0.0  # the default penalty
    squared = Scorer.from_config({"weights": {"val_acc": 1.0}, "transform": "square"})
    assert squared.evaluate({"val_acc": 0.5}).reward == pytest.approx(0.25)


def test_from_config_refuses_what_a_weighted_sum_cannot_take():
    with pytest.raises(ValueError, match=r"\[reward\]: a weighted sum is maximised; give each metric's direction "
                                         r"in 'directions' instead"):
        Scorer.from_config({"weights": {"val_acc": 1.0}, "direction": "minimize"})
    with pytest.raises(ValueError, match=r"\[reward\]: \['speed'\] do not apply to a weighted sum"):
        Scorer.from_config({"weights": {"val_acc": 1.0}, "speed": 2})
    Scorer.from_config({"weights": {"val_acc": 1.0}, "direction": "maximize"})  # the default is fine


def test_metric_names_are_every_metric_the_score_reads():
    scorer = Scorer(Objective("val_acc"), [Constraint("latency_ms", "<=", 2.0)],
                    terms=[MnasNetTerm.soft("params", 1e5)])
    assert scorer.metric_names() == {"val_acc", "latency_ms", "params"}
    assert Scorer(WeightedSum({"val_acc": 1.0, "params": 1e-6})).metric_names() == {"val_acc", "params"}
    assert Scorer(Objective("val_acc"), [Constraint("latency_ms", "<=", 2.0)]).metric_names() == {"val_acc", "latency_ms"}
    assert Scorer(lambda m: 1.0).metric_names() is None  # a function may read anything


# ---- refusals say what is wrong ----------------------------------------------------------------------


@pytest.mark.parametrize("make, error, message", [
    (lambda: Objective(direction="up").check(), ValueError, r"direction must be one of \('maximize', 'minimize'\), got 'up'"),
    (lambda: Objective(transform="log").check(), ValueError,
     r"reward transform must be one of \['cube', 'identity', 'square'\], got 'log'"),
    (lambda: Objective(failure_penalty=math.nan).check(), ValueError, "failure penalty must be a finite number"),
    (lambda: Objective("latency_ms").value({"val_acc": 0.5}), KeyError,
     r"objective metric 'latency_ms' not among the measured metrics \['val_acc'\]"),
    (lambda: Objective().value({"val_acc": math.inf}), ValueError, "objective metric 'val_acc' is inf"),
    (lambda: Scorer(WeightedSum({"val_acc": 1.0}, transform="log")).check(), ValueError,
     r"reward transform must be one of \['cube', 'identity', 'square'\], got 'log'"),
    (lambda: Scorer(constraints=["latency_ms<=2"]).check(), ValueError,
     r"constraints must be Constraint objects, got 'latency_ms<=2' \(see parse_constraint\)"),
    (lambda: Scorer(infeasible_reward=math.inf).check(), ValueError,
     "infeasible reward and excess weight must be finite numbers"),
    (lambda: Scorer(excess_weight=-1.0).check(), ValueError, "excess_weight must be non-negative, got -1.0"),
    (lambda: Scorer(constraints=[Constraint("latency_ms", "<=", 0.0)], mode="soft").check(), ValueError,
     "soft mode turns latency_ms<=0 into a MnasNet target, which must be positive"),
])
def test_refusals_name_the_setting_and_the_value(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_limits_that_only_a_mnasnet_target_refuses():
    Scorer(constraints=[Constraint("ptq_acc_drop", "<=", 0.0)], mode="hard").check()  # a hard limit may be 0
    Scorer(constraints=[Constraint("latency_ms", "<=", 0.5)], mode="soft").check()  # a target may be below 1


def test_soft_mode_adds_its_factors_to_the_given_terms():
    """Both apply: 0.8 * (4 / 2)^-0.07 from the soft constraint, times (3e5 / 2e5)^-1 from the hard term."""
    scorer = Scorer(Objective(transform="identity"), [Constraint("latency_ms", "<=", 2.0)], "soft",
                    terms=[MnasNetTerm.hard("params", 2e5)])
    reward = scorer.evaluate({"val_acc": 0.8, "latency_ms": 4.0, "params": 3e5}).reward
    assert reward == pytest.approx(0.8 * 2.0 ** -0.07 / 1.5)


class _ScoreObject:
    """An objective object that happens to be callable too: its ``value`` is what counts."""

    direction, transform, failure_penalty, label = "maximize", "identity", 0.0, "score"

    def check(self):
        pass

    def value(self, metrics):
        return metrics["val_acc"]

    def __call__(self, metrics):
        raise AssertionError("the scorer must use value(), not call the objective")


def test_an_objective_object_is_used_as_it_is_and_a_plain_function_is_wrapped():
    assert Scorer(_ScoreObject()).evaluate({"val_acc": 0.7}).value == pytest.approx(0.7)
    assert Scorer(_ScoreObject()).label == "score" and Scorer(Objective("params", "minimize")).label == "params"
    wrapped = Scorer(lambda m: 2 * m["val_acc"])
    assert isinstance(wrapped.objective, CallableObjective)
    assert wrapped.evaluate({"val_acc": 0.7}).value == pytest.approx(1.4)

"""Multi-objective regularized evolution: objectives parsing, NSGA-II parent choice (rank, then
crowding; feasible first, failed last), resume, and a better front than random search."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

import nasforge  # noqa: F401  (registers the benchmark spaces)
from nasforge.objectives.pareto import hypervolume, pareto_front
from nasforge.spaces import create_space
from nasforge.strategies import create_strategy
from nasforge.strategies.evolution import parse_objectives

OBJECTIVES = ["val_acc:max", "latency_ms:min"]


def test_objectives_take_explicit_or_registered_directions():
    assert parse_objectives(["val_acc:max", "latency_ms", "params:maximize"]) == (
        ["val_acc", "latency_ms", "params"], ["maximize", "minimize", "maximize"])


@pytest.mark.parametrize("objectives, message", [
    ("val_acc:max", "non-empty list"), ([], "non-empty list"), (["speed"], "unknown metric"),
    (["val_acc:up"], "max or min"), (["val_acc", "val_acc:min"], "given twice"), ([3], "must be a string"),
])
def test_bad_objectives_are_refused(objectives, message):
    with pytest.raises(ValueError, match=f"evolution.*{message}"):
        create_strategy("evolution", objectives=objectives)


def _told(population, sample_size=None):
    """An evolution whose population is exactly ``population``: (tokens, metrics, feasible) each."""
    space = create_space("nbgraph-cora")
    strategy = create_strategy("evolution", population_size=len(population),
                               sample_size=sample_size or len(population), objectives=OBJECTIVES)
    strategy.setup(space, 0)
    for _ in population:
        strategy.ask()  # the random phase
    for tokens, metrics, feasible in population:
        strategy.tell(tokens, 0.5, {"metrics": metrics, "feasible": feasible})
    return strategy


def _parents(strategy, n=40):
    return {tuple(strategy.ask().info["parent"]) for _ in range(n)}


T = [(i, 0, 1, 0, 2, 0, 3) for i in range(6)]  # six distinct architectures of nbgraph-cora


def test_parents_are_the_extremes_of_the_first_front():
    # A and B are the extremes of the front {A, B, C}; D is dominated by C; crowding prefers A, B
    population = [(T[0], {"val_acc": 0.90, "latency_ms": 5.0}, True),
                  (T[1], {"val_acc": 0.80, "latency_ms": 1.0}, True),
                  (T[2], {"val_acc": 0.85, "latency_ms": 3.0}, True),
                  (T[3], {"val_acc": 0.84, "latency_ms": 3.5}, True)]
    assert _parents(_told(population)) == {T[0], T[1]}
    # with tournaments of two, C (front 0, finite crowding) beats D (front 1) whenever they meet
    parents = _parents(_told(population, sample_size=2), n=200)
    assert T[2] in parents and parents <= {T[0], T[1], T[2], T[3]}
    strategy = _told(population, sample_size=2)
    keys = strategy._crowded_keys()
    assert keys[2] < keys[3] and keys[0] < keys[2] and keys[1] < keys[2]


def test_feasible_beat_infeasible_which_beat_failed_members():
    population = [(T[0], {"val_acc": 0.99, "latency_ms": 0.1}, False),  # dominates all, but infeasible
                  (T[1], {"val_acc": 0.50, "latency_ms": 9.0}, True),  # feasible, the worst values
                  (T[2], {}, False)]  # failed: no metrics
    assert _parents(_told(population)) == {T[1]}
    keys = _told(population)._crowded_keys()
    assert keys[1] < keys[0] < keys[2]


def test_members_without_a_finite_value_count_as_failed():
    strategy = _told([(T[0], {"val_acc": float("nan"), "latency_ms": 1.0}, True),
                      (T[1], {"val_acc": 0.5}, True),
                      (T[2], {"val_acc": 0.4, "latency_ms": 2.0}, True)])
    assert [m[2] for m in strategy.population] == [None, None, (0.4, 2.0)]
    assert _parents(strategy) == {T[2]}


def _step(strategy, space, n):
    out = []
    for _ in range(n):
        proposal = strategy.ask()
        metrics = space.lookup(proposal.tokens)
        strategy.tell(proposal.tokens, metrics["val_acc"], {**proposal.info, "metrics": metrics, "feasible": True})
        out.append(tuple(proposal.tokens))
    return out


def test_state_round_trip_resumes_the_same_search():
    space = create_space("nbgraph-cora")
    original = create_strategy("evolution", population_size=8, sample_size=4, objectives=OBJECTIVES)
    original.setup(space, 1)
    _step(original, space, 20)
    buffer = io.BytesIO()
    torch.save(original.state_dict(), buffer)
    state = torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)
    restored = create_strategy("evolution", population_size=8, sample_size=4, objectives=OBJECTIVES)
    restored.setup(space, 99)
    restored.load_state_dict(state)
    assert restored.population == original.population
    assert _step(restored, space, 15) == _step(original, space, 15)


def test_single_objective_state_keeps_its_old_format():
    space = create_space("nbgraph-cora")
    strategy = create_strategy("evolution", population_size=4, sample_size=2)
    strategy.setup(space, 0)
    _step(strategy, space, 6)
    assert all(len(member) == 2 for member in strategy.state_dict()["population"])


def _front_hv(space, strategy_name, settings, seed, budget, ref):
    strategy = create_strategy(strategy_name, **settings)
    strategy.setup(space, seed)
    looked_up = [space.lookup(t) for t in _step(strategy, space, budget)]
    points = [[m["val_acc"], m["latency_ms"]] for m in looked_up]
    return hypervolume(np.array(points), ref, ["maximize", "minimize"])


@pytest.mark.slow
def test_multi_objective_evolution_finds_a_better_front_than_random_search():
    space = create_space("nbgraph-cora")
    table = space.all_metrics()
    ref = [float(table["val_acc"].min()), float(table["latency_ms"].max())]
    points = np.stack([table["val_acc"], table["latency_ms"]], axis=1)
    best = hypervolume(points[pareto_front(points, ["maximize", "minimize"])], ref, ["maximize", "minimize"])
    evo = [_front_hv(space, "evolution", {"objectives": OBJECTIVES}, s, 150, ref) for s in range(4)]
    rnd = [_front_hv(space, "random", {}, s, 150, ref) for s in range(4)]
    assert max(evo) <= best * (1 + 1e-9)
    assert np.mean(evo) > np.mean(rnd)

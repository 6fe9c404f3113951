"""Pareto machinery against brute force and hand examples, and the ``nasforge pareto`` command."""

from __future__ import annotations

import argparse
import itertools
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nasforge.cli.pareto import add_pareto_parser
from nasforge.config import ConfigError
from nasforge.objectives.pareto import (as_minimization, crowding_distance, hypervolume, non_dominated_sort,
                                        pareto_front, pareto_ranks, rank_and_crowding, reference_point)
from nasforge.search import store_path
from nasforge.store import Store


def _dominates(a, b, directions) -> bool:
    """Brute force, straight from the definition, in the metrics' own directions."""
    no_worse = all((x >= y) if d == "maximize" else (x <= y) for x, y, d in zip(a, b, directions))
    better = any((x > y) if d == "maximize" else (x < y) for x, y, d in zip(a, b, directions))
    return no_worse and better


point_sets = st.integers(1, 4).flatmap(lambda m: st.tuples(
    st.lists(st.lists(st.integers(0, 5), min_size=m, max_size=m), min_size=0, max_size=25),
    st.lists(st.sampled_from(["maximize", "minimize"]), min_size=m, max_size=m)))


@settings(max_examples=150, deadline=None)
@given(point_sets)
def test_non_dominated_sort_agrees_with_brute_force(data):
    points, directions = data
    fronts = non_dominated_sort(np.array(points, dtype=float).reshape(len(points), len(directions)), directions)
    assert sorted(i for f in fronts for i in f) == list(range(len(points)))  # a partition
    rank = {int(i): r for r, f in enumerate(fronts) for i in f}
    for i, p in enumerate(points):
        dominators = [j for j, q in enumerate(points) if _dominates(q, p, directions)]
        # nothing in its own or a later front dominates it; something in the front before does
        assert all(rank[j] < rank[i] for j in dominators)
        if rank[i] > 0:
            assert any(rank[j] == rank[i] - 1 for j in dominators)
        else:
            assert not dominators
    if points:
        assert set(pareto_front(points, directions)) == set(fronts[0].tolist())
        assert [rank[i] for i in range(len(points))] == pareto_ranks(points, directions).tolist()


def test_directions_matter():
    points = [[0.9, 300], [0.8, 100], [0.7, 200]]  # accuracy, parameters
    assert set(pareto_front(points, ["maximize", "minimize"])) == {0, 1}
    assert set(pareto_front(points, ["minimize", "minimize"])) == {1, 2}
    assert set(pareto_front(points, ["maximize", "maximize"])) == {0}
    with pytest.raises(ValueError, match="directions"):
        pareto_front(points, ["maximize", "smaller"])
    with pytest.raises(ValueError, match="NaN"):
        pareto_front([[np.nan, 1.0]])


def test_crowding_distance_and_ranks_by_hand():
    # minimise both; x spans 6, y spans 5
    points = [[0, 5], [1, 3], [3, 2], [6, 0]]
    # B: (3 - 0)/6 + (5 - 2)/5 = 1.1;  C: (6 - 1)/6 + (3 - 0)/5 = 1.4333;  the ends are infinite
    assert np.allclose(crowding_distance(points), [np.inf, 1.1, 5 / 6 + 0.6, np.inf])
    # a maximised metric has the same crowding: distance is symmetric
    assert np.allclose(crowding_distance(points, ["maximize", "minimize"]), crowding_distance(points))
    assert np.allclose(crowding_distance([[1, 1], [1, 1], [1, 1]]), [np.inf, 0, np.inf])
    population = points + [[6, 5], [7, 6]]  # two dominated points, fronts 1 and 2
    ranks, crowding = rank_and_crowding(population)
    assert ranks.tolist() == [0, 0, 0, 0, 1, 2]
    assert np.allclose(crowding, [np.inf, 1.1, 5 / 6 + 0.6, np.inf, np.inf, np.inf])  # alone in fronts 1, 2


def test_hypervolume_by_hand_in_two_and_three_dimensions():
    # accuracy up, parameters down, reference (0.5, 400): boxes 0.4 x 100 and 0.3 x 300 overlap 0.3 x 100
    points = [[0.9, 300], [0.8, 100], [0.7, 200]]  # the last is dominated and adds nothing
    assert hypervolume(points, [0.5, 400], ["maximize", "minimize"]) == pytest.approx(100.0)
    assert hypervolume([[0.9, 300]], [0.95, 400], ["maximize", "minimize"]) == 0.0  # not past the reference
    # minimise all three, reference (4, 4, 4): boxes 6, 12 and 3; pairwise overlaps 4, 1, 2; triple 1
    cube = [[1, 2, 3], [2, 1, 2], [3, 3, 1]]
    assert hypervolume(cube[:2], [4, 4, 4]) == pytest.approx(6 + 12 - 4)
    assert hypervolume(cube, [4, 4, 4]) == pytest.approx(6 + 12 + 3 - 4 - 1 - 2 + 1)
    flipped = [[-x, y, -z] for x, y, z in cube]
    assert hypervolume(flipped, [-4, 4, -4], ["maximize", "minimize", "maximize"]) == pytest.approx(15)
    assert hypervolume([], [1, 1]) == 0.0


def _inclusion_exclusion(points, ref):
    total = 0.0
    for size in range(1, len(points) + 1):
        for subset in itertools.combinations(points, size):
            corner = np.max(subset, axis=0)
            total += (-1) ** (size + 1) * np.prod(np.clip(ref - corner, 0, None))
    return total


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 4).flatmap(lambda m: st.lists(
    st.lists(st.floats(0, 1, allow_nan=False, width=32), min_size=m, max_size=m), min_size=1, max_size=7)))
def test_hypervolume_agrees_with_inclusion_exclusion(points):
    points = np.array(points, dtype=float)
    ref = np.full(points.shape[1], 1.1)
    assert hypervolume(points, ref) == pytest.approx(_inclusion_exclusion(points, ref), abs=1e-12)


def _hypervolume_monte_carlo(points, reference, directions, samples: int, seed: int):
    """Estimate and standard error, by uniform samples in the box between the best values and the
    reference: an oracle that shares nothing with the exact computation but the definition."""
    a = as_minimization(points, directions)
    ref = as_minimization([reference], directions)[0]
    a = a[(a < ref).all(axis=1)]
    if len(a) == 0:
        return 0.0, 0.0
    low = a.min(axis=0)
    box = float(np.prod(ref - low))
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, samples, 10_000):
        u = rng.uniform(low, ref, size=(min(10_000, samples - start), len(ref)))
        hits += int((a[None, :, :] <= u[:, None, :]).all(axis=2).any(axis=1).sum())
    p = hits / samples
    return box * p, box * float(np.sqrt(p * (1 - p) / samples))


@pytest.mark.parametrize("m, seed", [(2, 0), (3, 1), (4, 2)])
def test_hypervolume_agrees_with_monte_carlo(m, seed):
    rng = np.random.default_rng(seed)
    points = rng.random((30, m))
    directions = list(rng.choice(["maximize", "minimize"], m))
    ref = reference_point(points, directions)
    exact = hypervolume(points, ref, directions)
    estimate, stderr = _hypervolume_monte_carlo(points, ref, directions, samples=60_000, seed=seed)
    assert abs(estimate - exact) < 4 * stderr + 1e-9


# ---- against Optuna's (private) implementations, which pareto.py does not use: see why there ---------
grid_or_floats = st.one_of(st.integers(0, 5).map(float), st.floats(0, 1, allow_nan=False, width=32))
point_sets_with_reference = st.integers(1, 4).flatmap(lambda m: st.tuples(
    st.lists(st.lists(grid_or_floats, min_size=m, max_size=m), min_size=0, max_size=20),
    st.lists(grid_or_floats, min_size=m, max_size=m),
    st.lists(st.sampled_from(["maximize", "minimize"]), min_size=m, max_size=m)))


@settings(max_examples=150, deadline=None)
@given(point_sets_with_reference)
def test_fronts_equal_optunas_non_domination_ranks(data):
    """Ties, duplicates, one metric, one point and no points included."""
    from optuna.study._multi_objective import _fast_non_domination_rank

    points, _, directions = data
    points = np.array(points, dtype=float).reshape(len(points), len(directions))
    expected = _fast_non_domination_rank(as_minimization(points, directions))
    assert pareto_ranks(points, directions).tolist() == expected.tolist()


@settings(max_examples=150, deadline=None)
@given(point_sets_with_reference)
def test_hypervolume_equals_optunas(data):
    """Points worse than the reference in some metric, or equal to it, add nothing (Optuna refuses
    the worse ones, so they are dropped before asking it)."""
    from optuna._hypervolume import compute_hypervolume

    points, reference, directions = data
    points = np.array(points, dtype=float).reshape(len(points), len(directions))
    a = as_minimization(points, directions)
    ref = as_minimization([reference], directions)[0]
    expected = compute_hypervolume(a[(a <= ref).all(axis=1)], ref)
    assert hypervolume(points, reference, directions) == pytest.approx(expected, rel=1e-12, abs=0)


def test_reference_point_is_the_worst_value_pushed_past_the_range():
    ref = reference_point([[0.9, 300], [0.7, 100]], ["maximize", "minimize"])
    assert np.allclose(ref, [0.7 - 0.02, 300 + 20])


# ---- nasforge pareto ------------------------------------------------------------------------------------
@pytest.fixture()
def experiment(tmp_path):
    path = tmp_path / "exp"
    trials = [  # val_acc (also the stored objective), params, latency_ms
        ({"val_acc": 0.90, "params": 3000, "latency_ms": 2.0}, "COMPLETE"),
        ({"val_acc": 0.80, "params": 1000, "latency_ms": 1.0, "joules": 3.0}, "COMPLETE"),  # unregistered
        ({"val_acc": 0.70, "params": 2000, "latency_ms": 0.5}, "COMPLETE"),  # dominated in (acc, params)
        ({"val_acc": 0.95, "params": 500, "latency_ms": 9.0}, "COMPLETE"),  # infeasible (stored as the loop does)
        ({"params": 10}, "FAILED"),
        ({"params": 700}, "COMPLETE"),  # no val_acc in its metrics: falls back to the stored objective
    ]
    with Store(store_path(path)) as store:
        store.set_config({"reward": {"metric": "val_acc", "direction": "maximize"}, "space": {"name": "x"}})
        for number, (metrics, state) in enumerate(trials):
            trial_id = store.add_trial(number, [number, 1], f"h{number}", 0, {})
            objective = 0.6 if number == 5 else metrics.get("val_acc")
            store.finish_trial(trial_id, state, metrics, objective if state == "COMPLETE" else None, 0.0,
                               feasible=number != 3)
    return path


def _run(argv):
    parser = argparse.ArgumentParser(prog="nasforge")
    add_pareto_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_pareto_command_json_table_and_plot(experiment, tmp_path, capsys):
    assert _run(["pareto", "--experiment", str(experiment), "--metrics", "val_acc,params", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [t["trial"] for t in out["front"]] == [0, 1, 5]  # best accuracy first; 2 dominated, 3 infeasible
    assert out["directions"] == ["maximize", "minimize"] and out["skipped"]["infeasible"] == 1
    # the reference: worst accuracy 0.6 - 10% of (0.9 - 0.6), worst parameters 3000 + 10% of (3000 - 700)
    assert np.allclose(out["reference"], [0.57, 3230])
    # by hand, in (accuracy above 0.57) x (parameters below 3230): 0.33 x 230 + 0.23 x 2000 + 0.03 x 300
    assert out["hypervolume"] == pytest.approx(0.33 * 230 + 0.23 * 2000 + 0.03 * 300)
    plot = tmp_path / "front.png"
    assert _run(["pareto", "--experiment", str(experiment), "--metrics", "val_acc,params,latency_ms",
                 "--reference", "0.5,4000,10", "--plot", str(plot), "--include-infeasible"]) == 0
    text = capsys.readouterr().out
    assert "hypervolume" in text and "reference 0.5, 4000, 10" in text and "left out: 1 missing a metric" in text
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pareto_command_errors(experiment):
    with pytest.raises(ConfigError, match="reports watts; they report: joules, latency_ms, params, val_acc"):
        _run(["pareto", "--experiment", str(experiment), "--metrics", "val_acc,watts"])
    with pytest.raises(ConfigError, match="'joules' has no known direction"):
        _run(["pareto", "--experiment", str(experiment), "--metrics", "val_acc,joules"])
    assert _run(["pareto", "--experiment", str(experiment), "--metrics", "val_acc,joules", "--directions",
                 "max,min"]) == 0
    with pytest.raises(ConfigError, match="--directions"):
        _run(["pareto", "--experiment", str(experiment), "--metrics", "val_acc,joules", "--directions", "max"])
    with pytest.raises(ConfigError, match="--reference has 1 values"):
        _run(["pareto", "--experiment", str(experiment), "--metrics", "val_acc,params", "--reference", "1"])
    with pytest.raises(ConfigError, match="at least two"):
        _run(["pareto", "--experiment", str(experiment), "--metrics", "val_acc"])


def test_a_tables_own_metric_has_its_direction_in_a_fresh_process(tmp_path):
    """nb201's ``ptq_acc_drop`` is registered by the table's module; ``nasforge pareto`` run on its
    own (a fresh process) loads the searched space, so the metric's direction is known."""
    from cli_paths import json_out, nasforge, ok

    ok(nasforge(["search", "--space", "nb201-cifar10", "--strategy", "random", "--budget", "12",
                 "--experiment", "e"], cwd=tmp_path))
    run = nasforge(["pareto", "--experiment", "e", "--metrics", "val_acc,ptq_acc_drop", "--json"], cwd=tmp_path)
    ok(run)
    assert json_out(run)["directions"] == ["maximize", "minimize"]


def test_a_real_search_under_a_hard_limit_keeps_its_infeasible_trials_off_the_front(tmp_path, monkeypatch, capsys):
    """Through the CLI: a constrained search, then pareto on the limited metric, as a user runs them."""
    from nasforge.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["search", "--space", "nbgraph-cora", "--strategy", "random", "--budget", "12", "--quiet",
                 "--experiment", "hard", "--constraint", "latency_ms<=2.5"]) == 0
    with Store(store_path(tmp_path / "hard"), readonly=True) as store:
        done = store.trials(["COMPLETE"])
    over = {t.number for t in done if not t.feasible}
    assert over and len(over) < len(done)  # the limit splits the sample: the test can see a mistake
    capsys.readouterr()
    assert main(["pareto", "--experiment", "hard", "--metrics", "val_acc,latency_ms", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["skipped"]["infeasible"] == len(over) and not {t["trial"] for t in out["front"]} & over
    assert main(["pareto", "--experiment", "hard", "--metrics", "val_acc,latency_ms", "--json",
                 "--include-infeasible"]) == 0
    assert json.loads(capsys.readouterr().out)["skipped"]["infeasible"] == 0


def test_after_a_multi_objective_search_the_front_is_of_its_objectives(tmp_path, monkeypatch, capsys):
    from nasforge.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["search", "--space", "nbgraph-cora", "--strategy", "evolution", "--budget", "12", "--quiet",
                 "--experiment", "mo", "--set", 'strategy.objectives=["val_acc:max","latency_ms:min"]']) == 0
    capsys.readouterr()
    assert main(["pareto", "--experiment", "mo", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["metrics"] == ["val_acc", "latency_ms"] and out["directions"] == ["maximize", "minimize"]
    assert main(["pareto", "--experiment", "mo"]) == 0  # the table reads as the other tables do
    text = capsys.readouterr().out
    first = out["front"][0]
    assert f"{100 * first['val_acc']:.2f}%" in text and "architecture" in text
    assert str(first["tokens"]) not in text

"""The search command's objective and constraint flags: parsing, normal form, validation before
any trial, the metrics a child is asked to measure, and (end to end) a constrained search."""

from __future__ import annotations

import json
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nasforge.cli import build_parser, main
from nasforge.cli.search import _overrides_from_args
from nasforge.objectives.constraints import parse_constraint


def overrides(*argv: str):
    return _overrides_from_args(build_parser().parse_args(["search", *argv]))


def test_objective_takes_the_registered_direction_unless_given():
    assert overrides("--objective", "latency_ms")["reward"] == {"metric": "latency_ms", "direction": "minimize"}
    assert overrides("--objective", "val_acc")["reward"] == {"metric": "val_acc", "direction": "maximize"}
    assert overrides("--objective", "params", "--direction", "maximize")["reward"]["direction"] == "maximize"


def test_constraints_are_normalised_appended_to_the_file_and_the_mode_is_set(tmp_path):
    config = tmp_path / "s.toml"
    config.write_text('[reward]\nmetric = "val_acc"\nconstraints = ["params<=50000"]\n')
    reward = overrides("--config", str(config), "--constraint", "latency_ms <= 2.50",
                       "--constraint", "val_acc>=0.9", "--constraint", "params<=5e4",
                       "--constraint-mode", "mnasnet-hard")["reward"]
    # the file's constraint stays first; the repeated params limit is not added twice
    assert reward["constraints"] == ["params<=50000", "latency_ms<=2.5", "val_acc>=0.9"]
    assert reward["constraint_mode"] == "mnasnet-hard" and reward["metric"] == "val_acc"


def test_a_trained_child_is_asked_to_measure_what_the_reward_names():
    given = overrides("--constraint", "latency_ms<=2", "--constraint", "peak_memory_bytes<=1e6",
                      "--constraint", "params<=1e5", "--set", "training.measure=[\"size_bytes\"]")
    # params and FLOPs are always measured; size_bytes was asked for already and stays first
    assert given["training"]["measure"] == ["size_bytes", "latency_ms", "peak_memory_bytes"]
    assert "training" not in overrides("--objective", "val_acc", "--constraint", "params<=1e5")
    weighted = overrides("--set", 'reward.weights={"val_acc": 1, "peak_memory_bytes": 1e-6}')
    assert weighted["training"]["measure"] == ["peak_memory_bytes"]


@pytest.mark.parametrize("argv, message", [
    (["--constraint", "speed<=2"], "unknown metric 'speed'"),
    (["--constraint", "latency_ms<=fast"], "limit 'fast' is not a number"),
    (["--constraint", "latency_ms<2"], "unknown operator '<'"),
    (["--constraint", "latency_ms<=inf"], "limit must be finite"),
    (["--constraint", "<=2"], "expected METRIC<=LIMIT"),
    (["--constraint-mode", "medium"], "--constraint-mode must be one of hard, soft, mnasnet-hard"),
    (["--objective", "speed"], "--objective: unknown metric 'speed'"),
    (["--metric", "val_ac"], "--metric: unknown metric 'val_ac' (did you mean 'val_acc'?)"),
    (["--constraint", "param<=5"], "unknown metric 'param' (did you mean 'params'?)"),
    (["--metric", "x"], "analog_drift_{60,3600,86400,2592000}s, "),  # one entry per family of horizons
    (["--objective", "val_acc", "--metric", "params"], "disagree"),
    (["--direction", "up"], "direction must be maximize or minimize"),
])
def test_bad_flags_exit_2_naming_the_problem_before_anything_is_stored(tmp_path, monkeypatch, capsys,
                                                                      argv, message):
    monkeypatch.chdir(tmp_path)
    code = main(["search", "--space", "nbgraph-cora", "--budget", "2", "--experiment", "exp", *argv])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("nasforge search: error:")
    assert not (tmp_path / "exp").exists() and not (tmp_path / "runs").exists()


@settings(max_examples=60, deadline=None)
@given(metric=st.sampled_from(["latency_ms", "params", "val_acc", "peak_memory_bytes"]),
       op=st.sampled_from(["<=", ">="]),
       limit=st.floats(allow_nan=False, allow_infinity=False, width=64),
       spaces=st.sampled_from(["", " ", "  "]))
def test_the_normal_form_parses_back_to_the_same_constraint(metric, op, limit, spaces):
    text = f"{metric}{spaces}{op}{spaces}{limit!r}"
    normal = overrides("--constraint", text)["reward"]["constraints"]
    assert len(normal) == 1
    again = parse_constraint(normal[0])
    assert (again.metric, again.op) == (metric, op)
    assert again.limit == limit  # exactly: a resumed search must compare equal limits equal


def test_constrained_tabular_search_end_to_end(tmp_path, monkeypatch, capsys):
    """Needs search.py to score with Scorer.from_config (feasible column, feasible-only best)."""
    from nasforge.spaces import create_space
    from nasforge.store import Store

    space = create_space("nbgraph-cora")
    limit = float(np.percentile(space.all_metrics()["latency_ms"], 25))
    monkeypatch.chdir(tmp_path)
    code = main(["search", "--space", "nbgraph-cora", "--strategy", "random", "--budget", "40", "--seed", "1",
                 "--objective", "val_acc", "--constraint", f"latency_ms<={limit}", "--experiment", "exp",
                 "--quiet"])
    assert code == 0, capsys.readouterr()
    with Store(tmp_path / "exp" / "trials.sqlite", create=False) as store:
        trials = store.trials(["COMPLETE"])
        stored = store.config()["reward"]
        best = store.best(1, "maximize")[0]
    assert stored["constraints"] == [f"latency_ms<={limit!r}"]
    over = [t for t in trials if t.metrics["latency_ms"] > limit]
    assert over, "with 40 random queries some must be over the 25th percentile"
    assert not any(t.feasible for t in over) and all(t.feasible for t in trials if t not in over)
    assert best.metrics["latency_ms"] <= limit
    meeting = [t.metrics["val_acc"] for t in trials if t.metrics["latency_ms"] <= limit]
    assert best.metrics["val_acc"] == max(meeting)
    json.dumps(stored)


@pytest.mark.slow
def test_latency_constrained_training_search_measures_latency(tmp_path, monkeypatch, capsys, mnist1d_npz):
    from nasforge.store import Store

    monkeypatch.chdir(tmp_path)
    code = main(["search", "--dataset", mnist1d_npz, "--layers", "2", "--strategy", "random", "--budget", "3",
                 "--epochs", "1", "--constraint", "latency_ms<=0.001", "--experiment", "exp", "--quiet"])
    assert code == 0, capsys.readouterr()
    with Store(tmp_path / "exp" / "trials.sqlite", create=False) as store:
        trials = store.trials(["COMPLETE"])
        assert store.config()["training"]["measure"] == ["latency_ms"]
        assert store.best(1, "maximize") == []  # no CPU network runs in a microsecond: nothing feasible
    assert len(trials) == 3
    for t in trials:
        assert t.metrics["latency_ms"] > 0.001 and t.metrics["latency_threads"] == 1 and not t.feasible


def test_a_mnasnet_weighted_objective_is_labelled_as_such_and_the_metric_shown_raw(tmp_path, monkeypatch, capsys):
    """Under MnasNet factors the stored objective is the metric times a factor: a column headed by
    the metric's name must hold the metric itself, never the weighted value."""
    from nasforge.store import Store, store_path

    monkeypatch.chdir(tmp_path)
    argv = ["--space", "nbgraph-cora", "--budget", "4", "--experiment", "exp", "--quiet",
            "--constraint", "latency_ms<=0.0001", "--constraint-mode", "mnasnet-hard"]
    assert main(["search", *argv]) == 0
    with Store(store_path(tmp_path / "exp"), readonly=True) as store:
        trials = [t for t in store.trials() if t.state == "COMPLETE"]
    assert trials and all(t.objective < t.metrics["val_acc"] for t in trials)  # every child is over the limit
    capsys.readouterr()
    assert main(["trials", "--experiment", "exp"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if "trial" in line and "state" in line)
    assert "val_acc*MnasNet" in header and "latency_ms" in header
    rows = {cells[1]: cells for cells in ([c.strip() for c in line.split("│")] for line in out.splitlines())
            if len(cells) > 2}
    for t in trials:
        cells = rows[str(t.number)]
        assert f"{100 * t.metrics['val_acc']:.2f}%" in cells and f"{t.objective:.4g}" in cells


def test_a_limit_no_trial_meets_is_said_as_such(tmp_path, monkeypatch, capsys):
    """Every child over a hard limit: the search ends with exit 1 naming the limit, not a hint to
    retrain, and best says the trials completed but broke it, not that none completed."""
    monkeypatch.chdir(tmp_path)
    assert main(["search", "--space", "nbgraph-cora", "--budget", "4", "--experiment", "exp", "--quiet",
                 "--constraint", "latency_ms<=0.0001"]) == 1
    out = capsys.readouterr().out
    assert "no trial meets the hard constraints" in out and "all 4 completed trials" in out and "next:" not in out
    assert main(["best", "--experiment", "exp"]) == 2
    assert "none of the 4 completed trials meets the search's hard constraints" in capsys.readouterr().err


def test_under_soft_limits_the_table_says_whether_each_trial_kept_them(tmp_path, monkeypatch, capsys):
    """Soft mode stores every trial as feasible; the table must not print "feasible yes" for a trial
    over a limit, and a limited metric that has a column of its own is not shown twice."""
    from nasforge.store import Store, store_path

    monkeypatch.chdir(tmp_path)
    assert main(["search", "--space", "nbgraph-cora", "--strategy", "random", "--budget", "12", "--quiet",
                 "--experiment", "soft", "--constraint", "latency_ms<=2.5", "--constraint", "params<=1e9",
                 "--constraint-mode", "soft"]) == 0
    with Store(store_path(tmp_path / "soft"), readonly=True) as store:
        trials = {str(t.number): t for t in store.trials(["COMPLETE"])}
    held = {n: t.metrics["latency_ms"] <= 2.5 for n, t in trials.items()}
    assert all(t.feasible for t in trials.values()) and len(set(held.values())) == 2  # both kinds present
    capsys.readouterr()
    assert main(["trials", "--experiment", "soft"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = [c.strip() for c in next(line for line in lines if "trial" in line and "state" in line).split("┃")]
    assert "within limits" in header and "feasible" not in header and header.count("params") == 1
    column = header.index("within limits")
    rows = [[c.strip() for c in line.split("│")] for line in lines if line.count("│") > 3]
    assert {r[1]: r[column] == "yes" for r in rows if r[1] in trials} == held

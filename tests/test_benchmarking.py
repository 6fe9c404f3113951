"""The strategy benchmark harness: runs, files, numbers that agree with the tables, the analytic check."""

from __future__ import annotations

import argparse
import csv
import itertools
import json

import numpy as np
import pytest

import nasforge  # noqa: F401  (registers the benchmark spaces)
from nasforge.compare import analytic, report
from nasforge.compare.runner import (BenchmarkPlan, at_checkpoint, resolve_benchmarks, resolve_strategies,
                                          run_benchmark)
from nasforge.cli.benchmark import add_benchmark_parser
from nasforge.config import ConfigError
from nasforge.spaces import create_space
from nasforge.strategies.base import STRATEGIES, Proposal, Strategy


@pytest.fixture(scope="module")
def small_result():
    plan = BenchmarkPlan(["random", "reinforce"], ["nb201-cifar10", "nbgraph-proteins"], [0, 1], budget=30,
                         checkpoints=[10, 20], settings={"reinforce": {"batch_size": 4}})
    return run_benchmark(plan, workers=1)


def test_runner_writes_files_and_consistent_numbers(small_result, tmp_path):
    result = small_result
    written = report.save(result, tmp_path, "both", command="test")
    assert written["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(tmp_path / "runs.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 2 * 2 * 3  # benchmarks x strategies x seeds x checkpoints (10, 20, 30)
    assert {r["checkpoint"] for r in rows} == {"10", "20", "30"} and not any(r["error"] for r in rows)
    data = json.loads((tmp_path / "runs.json").read_text())
    assert len(data["runs"]) == 8 and data["plan"]["checkpoints"] == [10, 20, 30]
    assert data["references"]["nb201-cifar10"]["single_accuracy"] is True
    assert data["references"]["nbgraph-proteins"]["single_accuracy"] is False
    reloaded = report.load_result(tmp_path / "runs.json")  # re-plot and re-tabulate without running
    assert [r["regret_mean"] for r in reloaded.summary()] == pytest.approx([r["regret_mean"] for r in result.summary()])

    for run in result.runs:
        ref = result.references[run["benchmark"]]
        space = create_space(run["benchmark"])
        curve = run["curve"]
        assert run["queries"] == 30 and len(curve["regret"]) == 30 and run["error"] is None
        regret = np.array(curve["regret"])
        assert (regret >= 0).all()
        assert (np.diff(curve["best_val"]) >= 0).all()  # best validation never gets worse
        if ref["single_accuracy"]:
            assert (np.diff(regret) <= 0).all()  # with val = test, regret never rises
        np.testing.assert_allclose(regret, ref["max_test"] - np.array(curve["best_test"]))
        for c in (10, 20, 30):
            point = at_checkpoint(run, c, "queries")
            looked_up = space.lookup(point["best_tokens"])
            assert looked_up["test_acc"] == pytest.approx(point["best_test"])
            assert looked_up["val_acc"] == pytest.approx(point["best_val"])
            assert point["regret"] == pytest.approx(ref["max_test"] - looked_up["test_acc"])
    proteins = result.references["nbgraph-proteins"]
    assert proteins["max_test"] >= proteins["oracle_test"]
    summary = {(r["benchmark"], r["strategy"], r["checkpoint"]): r for r in result.summary()}
    mean = np.mean([at_checkpoint(r, 20, "queries")["regret"] for r in result.ok_runs("nb201-cifar10", "random")])
    assert summary[("nb201-cifar10", "random", 20)]["regret_mean"] == pytest.approx(mean)


def test_process_pool_gives_the_same_runs(small_result):
    plan = BenchmarkPlan(["random", "reinforce"], ["nbgraph-proteins"], [0, 1], budget=30, checkpoints=[10, 20],
                         settings={"reinforce": {"batch_size": 4}})
    pooled = run_benchmark(plan, workers=2)
    assert pooled.workers == 2
    alone = [r for r in small_result.runs if r["benchmark"] == "nbgraph-proteins"]
    assert [r["curve"] for r in pooled.runs] == [r["curve"] for r in alone]


def test_budget_in_simulated_seconds():
    plan = BenchmarkPlan(["random"], ["nbgraph-proteins"], [3], budget_seconds=12, checkpoints=[5])
    result = run_benchmark(plan, workers=1)
    run = result.runs[0]
    assert run["queries"] == 12 and run["simulated_seconds"] == pytest.approx(12.0)  # 1 s per query
    assert at_checkpoint(run, 5, "seconds")["queries"] == 5
    assert [r["checkpoint"] for r in result.summary()] == [5, 12]


class _HalfInvalid(Strategy):
    """Every other proposal is the all-skip network, which NAS-Bench-Graph does not contain."""

    name = "half-invalid"

    def setup(self, space, seed):
        super().setup(space, seed)
        self.count, self.rewards = 0, []

    def ask(self):
        self.count += 1
        if self.count % 2:
            return Proposal(self.space.sample(self.rng))
        return Proposal((4, 0, 4, 0, 4, 0, 4))  # "skip" is op 4 of proteins' five

    def tell(self, tokens, reward, info):
        self.rewards.append(reward)


def test_failed_lookups_count_as_queries_and_get_the_penalty(monkeypatch):
    monkeypatch.setitem(STRATEGIES._items, "half-invalid", _HalfInvalid)
    plan = BenchmarkPlan(["half-invalid"], ["nbgraph-proteins"], [0], budget=10, failure_penalty=-1.0)
    run = run_benchmark(plan, workers=1).runs[0]
    assert run["error"] is None and run["queries"] == 10 and run["failures"] == 5
    assert run["failed_queries"] == [2, 4, 6, 8, 10]
    assert at_checkpoint(run, 4, "queries")["failures"] == 2


def test_a_strategy_that_raises_fails_only_its_run(monkeypatch):
    class Broken(_HalfInvalid):
        def ask(self):
            raise RuntimeError("boom")

    monkeypatch.setitem(STRATEGIES._items, "broken", Broken)
    result = run_benchmark(BenchmarkPlan(["broken", "random"], ["nbgraph-proteins"], [0], budget=5), workers=1)
    assert [bool(r["error"]) for r in result.runs] == [True, False]
    assert "RuntimeError: boom" in result.errors()[0]["error"]


# ---- the analytic expectation -------------------------------------------------------------------
def test_analytic_regret_matches_brute_force_on_a_tiny_table():
    val = np.array([0.5, 0.7, 0.7, 0.9, 0.9, 0.2])  # ties at the top and in the middle
    test = np.array([0.6, 0.65, 0.8, 0.7, 0.95, 0.3])
    weights = np.array([1.0, 2.0, 1.0, 1.0, 3.0, 0.5])
    p = weights / weights.sum()
    for k in (1, 2, 3, 4):
        exact = 0.0  # every ordered sequence of k draws; the first draw of the top validation wins
        for seq in itertools.product(range(6), repeat=k):
            first_best = seq[int(np.argmax(val[list(seq)]))]
            exact += np.prod(p[list(seq)]) * (test.max() - test[first_best])
        assert analytic.expected_regret(val, test, [k], weights)[0] == pytest.approx(exact, abs=1e-12)
        mc = analytic.simulate_random_search(val, test, k, runs=20000, seed=k, weights=weights)
        assert abs(mc.mean() - exact) < 4 * mc.std() / np.sqrt(len(mc)) + 1e-9
    # without ties, with equal weights: P(best of k is row i) = F_i^k - F_{i-1}^k
    v = np.arange(5.0)
    assert analytic.expected_best_test(v, v, [2])[0] == pytest.approx(sum(i * (2 * i + 1) for i in range(5)) / 25)


def test_row_weights_count_token_sequences():
    assert (analytic.row_weights(create_space("nb201-cifar10")) == 1).all()
    weights = analytic.row_weights(create_space("nbgraph-proteins"))
    assert len(weights) == 2021 and (weights >= 1).all()
    assert weights.sum() == 5 ** 4 * 2 * 3 * 4 - 2 * 3 * 4  # every wiring and op choice, minus all-skip ones


def test_runner_random_search_matches_the_analytic_regret_on_nb201():
    space = create_space("nb201-cifar10")
    expected = analytic.random_search_regret(space, [25, 100])["expected_regret"]
    seeds = list(range(60))
    plan = BenchmarkPlan(["random"], ["nb201-cifar10"], seeds, budget=100, checkpoints=[25],
                         settings={"random": {"dedup": False}})  # exactly the analytic model
    result = run_benchmark(plan, workers=1)
    assert expected[1] == pytest.approx(0.00565, abs=2e-4)  # about 0.56 points
    for k, value in zip((25, 100), expected):
        regrets = np.array([at_checkpoint(r, k, "queries")["regret"] for r in result.runs])
        se = regrets.std(ddof=1) / np.sqrt(len(regrets))
        assert abs(regrets.mean() - value) < 3 * se, (k, regrets.mean(), value, se)


# ---- names and the command line -----------------------------------------------------------------
def test_names_resolve_and_bad_ones_are_refused():
    assert resolve_benchmarks(["nbgraph-all"]) == [f"nbgraph-{d}" for d in nasforge.tables.NBGRAPH_DATASETS]
    shipped = ["nb201-cifar10"] + [f"nbgraph-{d}" for d in nasforge.tables.NBGRAPH_DATASETS]
    assert resolve_benchmarks(["all"])[:10] == shipped  # then any table built with `nasforge tabulate`
    assert resolve_strategies(["all"]) == STRATEGIES.names()
    with pytest.raises(ConfigError, match="unknown benchmark 'nb301'"):
        resolve_benchmarks(["nb301"])
    with pytest.raises(ConfigError, match="chain-cnn"):  # a real space, but not a benchmark
        resolve_benchmarks(["chain-cnn"])
    with pytest.raises(ConfigError, match="unknown strategy 'nope'.*random"):
        resolve_strategies(["random", "nope"])
    with pytest.raises(ConfigError, match="budget"):
        BenchmarkPlan(["random"], ["nb201-cifar10"], [0], budget=10, budget_seconds=5).check()
    with pytest.raises(ConfigError, match="not among those run"):
        BenchmarkPlan(["random"], ["nb201-cifar10"], [0], budget=10, settings={"reinforce": {}}).check()


@pytest.fixture()
def cli_main(monkeypatch):
    """``nasforge.cli.main`` with the benchmark command, whether or not cli.py adds it itself yet."""
    from nasforge import cli

    original = cli.build_parser

    def build():
        parser = original()
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        if "benchmark" not in sub.choices:
            add_benchmark_parser(sub)
        return parser

    monkeypatch.setattr(cli, "build_parser", build)
    return cli.main


@pytest.mark.parametrize("args, message", [
    (["--strategies", "nope"], "unknown strategy 'nope'"),
    (["--benchmarks", "nb201-cifar10,bogus"], "unknown benchmark 'bogus'"),
    (["--strategies", "random", "--set", "random.bogus=1"], "bogus"),
    (["--strategies", "random", "--set", "reinforce.learning_rate=0.1"], "not among those run"),
    (["--strategies", "reinforce", "--set", "reinforce.learning_rate=-1"], "learning_rate must be positive"),
    (["--set", "learning_rate=1"], "STRATEGY.KEY=VALUE"),
    (["--seed-list", "1,x"], "--seed-list"),
])
def test_cli_refuses_bad_input_with_status_2(cli_main, capsys, tmp_path, args, message):
    assert cli_main(["benchmark", "--out", str(tmp_path / "out"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_runs_and_writes(cli_main, capsys, tmp_path):
    out = tmp_path / "bench"
    code = cli_main(["benchmark", "--strategies", "random", "--benchmarks", "nbgraph-proteins", "--seed-list", "4,5",
                     "--budget", "15", "--checkpoints", "5", "--workers", "1", "--format", "csv", "--out", str(out)])
    assert code == 0
    assert {p.name for p in out.iterdir()} == {"runs.csv", "summary.csv", "anytime.png"}
    text = capsys.readouterr().out
    assert "regret @5q" in text and "nbgraph-proteins" in text
    assert cli_main(["benchmark", "--strategies", "random", "--out", str(out)]) == 2  # never overwrites


def test_the_harness_defaults_apply_under_the_settings_given_and_are_recorded(small_result):
    from nasforge.compare.runner import TABULAR_DEFAULTS

    assert TABULAR_DEFAULTS["reinforce"]["learning_rate"] == 0.02
    runs = {r["strategy"]: r for r in small_result.runs}
    # batch_size was given; the rest of the harness defaults fill in around it
    assert runs["reinforce"]["settings"] == {**TABULAR_DEFAULTS["reinforce"], "batch_size": 4}
    assert runs["random"]["settings"] == {}
    paper = BenchmarkPlan(["reinforce"], ["nb201-cifar10"], [0], budget=5,
                          settings={"reinforce": {"learning_rate": 0.0006}}).tasks()[0]
    assert paper.settings["learning_rate"] == 0.0006 and paper.settings["entropy_weight"] == 0.003


def test_a_comparison_runs_the_search_strategies_unless_told_otherwise():
    from nasforge.compare.runner import NOT_COMPARED, compared_strategies
    from nasforge.cli.benchmark import NOT_COMPARED_HELP, plan_from_args

    assert set(compared_strategies()) == set(STRATEGIES.names()) - set(NOT_COMPARED)
    assert {"random", "reinforce", "bananas", "tpe"} <= set(compared_strategies())
    assert NOT_COMPARED_HELP == " and ".join(NOT_COMPARED)  # the --help text names the same ones
    parser = argparse.ArgumentParser()
    add_benchmark_parser(parser.add_subparsers())
    assert plan_from_args(parser.parse_args(["benchmark"])).strategies == compared_strategies()
    assert "enumerate" in resolve_strategies(["all"])

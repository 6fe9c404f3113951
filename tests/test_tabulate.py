"""`nasforge tabulate`, its table file, the own-table / mnist1d-chain spaces and the enumerate strategy."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nasforge.tables import TabularEstimator
from nasforge.tables.own_table import MNIST1DChainNearestSpace, MNIST1DChainSpace, OwnTableSpace
from nasforge.tables.table_file import TableFileError, read_table, write_table
from nasforge.cli import main
from nasforge.data.datasets import split_validation
from nasforge.estimators.train_and_test import TrainAndTestEstimator
from nasforge.spaces import InvalidArchitectureError, create_space
from nasforge.store import Store
from nasforge.strategies import create_strategy
from nasforge.strategies.enumerate_space import count_architectures, space_size, tokens_at

TINY = ["--layers", "2", "--epochs", "1"]
IDENTITY = ("tokens", "val_acc", "val_acc_last", "test_acc", "params", "flops", "seed", "trial")


def tabulate(tmp_path, data, name, *extra):
    exp, out = tmp_path / name, tmp_path / f"{name}.jsonl.gz"
    code = main(["tabulate", "--experiment", str(exp), "--out", str(out), "--dataset", data, "--quiet",
                 *TINY, *extra])
    return code, exp, out


@pytest.fixture()
def table4(tmp_path, mnist1d_npz):
    code, exp, out = tabulate(tmp_path, mnist1d_npz, "full", "--sample", "4")
    assert code == 0
    return out


def test_tabulate_writes_a_table_of_distinct_trained_architectures(table4, mnist1d_npz):
    header, rows = read_table(table4)
    assert len(rows) == 4 == header["rows"]
    assert header["space"] == {"name": "chain-cnn", "num_layers": 2, "dims": 1}
    assert header["dataset"]["name"] == mnist1d_npz
    n_val = len(split_validation(np.zeros(600), np.load(mnist1d_npz)["y_train"], 0.2, 0)[1][1])
    sizes = header["dataset"]
    assert (sizes["train"], sizes["val"], sizes["test"]) == (600 - n_val, n_val, 200)
    assert header["recipe"]["epochs"] == 1 and header["estimator"] == "train-and-test"
    assert header["nasforge_version"] and header["strategy"]["name"] == "random"
    space = create_space("chain-cnn", num_layers=2)
    assert len({space.arch_hash(r["tokens"]) for r in rows}) == 4
    for r in rows:
        assert 0 <= r["val_acc"] <= 1 and 0 <= r["test_acc"] <= 1
        assert r["params"] > 0 and r["flops"] > 0 and r["latency_ms"] > 0 and r["train_seconds"] > 0
        # accuracies are counts over the validation / 200 test signals
        assert abs(r["val_acc"] * n_val - round(r["val_acc"] * n_val)) < 1e-4
        assert abs(r["test_acc"] * 200 - round(r["test_acc"] * 200)) < 1e-4
    assert sorted(r["trial"] for r in rows) == [0, 1, 2, 3]


def test_interrupted_and_resumed_gives_the_same_rows(tmp_path, mnist1d_npz, table4, monkeypatch):
    calls = {"n": 0}
    original = TrainAndTestEstimator.evaluate

    def stop_on_third(self, tokens, seed):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # Ctrl+C while the third child trains
        return original(self, tokens, seed)

    monkeypatch.setattr(TrainAndTestEstimator, "evaluate", stop_on_third)
    code, exp, out = tabulate(tmp_path, mnist1d_npz, "cut", "--sample", "4")
    assert code == 130 and not out.exists()
    monkeypatch.setattr(TrainAndTestEstimator, "evaluate", original)
    code = main(["tabulate", "--experiment", str(exp), "--out", str(out), "--sample", "4", "--resume", "--quiet"])
    assert code == 0
    with Store(exp / "trials.sqlite", create=False) as store:
        trials = store.trials()
    complete = [t.number for t in trials if t.state == "COMPLETE"]
    assert sorted(complete) == [0, 1, 2, 3]  # each architecture trained to the end once
    assert [t.number for t in trials if t.state != "COMPLETE"] == [2]  # the interrupted attempt, then retried
    _, resumed = read_table(out)
    _, full = read_table(table4)
    assert [{k: r[k] for k in IDENTITY} for r in resumed] == [{k: r[k] for k in IDENTITY} for r in full]


def test_resume_extends_a_sample_and_refuses_other_settings(tmp_path, mnist1d_npz, capsys):
    code, exp, out = tabulate(tmp_path, mnist1d_npz, "grow", "--sample", "2")
    assert code == 0 and len(read_table(out)[1]) == 2
    assert main(["tabulate", "--experiment", str(exp), "--out", str(out), "--sample", "3", "--resume",
                 "--quiet"]) == 0
    assert len(read_table(out)[1]) == 3
    assert main(["tabulate", "--experiment", str(exp), "--out", str(out), "--sample", "3", "--resume",
                 "--layers", "3"]) == 2
    assert "space.num_layers is 2" in capsys.readouterr().err
    assert main(["tabulate", "--experiment", str(exp), "--out", str(out), "--sample", "3", "--resume",
                 "--seed", "5"]) == 2
    assert "seed is 0" in capsys.readouterr().err
    assert main(["tabulate", "--experiment", str(exp), "--out", str(out), "--all", "--resume"]) == 2
    assert "made with --sample" in capsys.readouterr().err
    # flags that agree with the stored settings are fine
    assert main(["tabulate", "--experiment", str(exp), "--out", str(out), "--sample", "3", "--resume",
                 "--epochs", "1", "--quiet"]) == 0


def test_tabulate_refuses_bad_requests(tmp_path, mnist1d_npz, capsys):
    code, _, _ = tabulate(tmp_path, mnist1d_npz, "big", "--all")
    assert code == 2 and "more than the 200,000 that may be enumerated" in capsys.readouterr().err
    code, _, _ = tabulate(tmp_path, mnist1d_npz, "zero", "--sample", "0")
    assert code == 2 and "--sample must be at least 1" in capsys.readouterr().err
    code = main(["tabulate", "--experiment", str(tmp_path / "t"), "--out", str(tmp_path / "t.gz"), "--sample", "2",
                 "--space", "mnist1d-chain"])
    assert code == 2 and "already a table" in capsys.readouterr().err
    code = main(["tabulate", "--experiment", str(tmp_path / "none"), "--out", str(tmp_path / "n.gz"),
                 "--sample", "2", "--resume"])
    assert code == 2 and "nothing to resume" in capsys.readouterr().err


# ---- the table space ---------------------------------------------------------------------------
def test_lookup_matches_the_file(table4):
    header, rows = read_table(table4)
    space = OwnTableSpace(table=str(table4))
    assert [d.name for d in space.decisions] == header["decisions"]
    estimator = TabularEstimator()
    estimator.setup(space)
    for i, row in enumerate(rows):
        got = estimator.evaluate(row["tokens"], seed=0)
        for column in ("val_acc", "val_acc_last", "test_acc", "params", "flops", "latency_ms", "train_seconds"):
            assert got[column] == row[column]
        assert got["table_row"] == i and got["table_distance"] == 0
        assert got["simulated_seconds"] == pytest.approx(np.mean([r["train_seconds"] for r in rows]))
    table = space.all_metrics()
    assert table["tokens"].tolist() == [r["tokens"] for r in rows]
    assert table["test_acc"].tolist() == [r["test_acc"] for r in rows]


def test_architectures_outside_the_table(table4):
    space = OwnTableSpace(table=str(table4))
    rows = space.all_metrics()["tokens"]
    outside = next(t for t in (tokens_at(space.base, i) for i in range(space_size(space.base)))
                   if space.canonical(t) not in space.table.index)
    with pytest.raises(InvalidArchitectureError, match="is not in the table"):
        space.lookup(outside)
    nearest = OwnTableSpace(table=str(table4), match="nearest")
    got = nearest.lookup(outside)
    d = (rows != np.asarray(space.canonical(outside))).sum(axis=1)
    assert got["table_distance"] == d.min() > 0 and got["table_row"] == int(np.argmin(d))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_sample_mutate_and_neighbours_stay_in_the_table(seed, table_path_4rows):
    space = OwnTableSpace(table=table_path_4rows)
    rng = np.random.default_rng(seed)
    tokens = space.sample(rng)
    assert tokens in space.table.index
    child = space.mutate(tokens, rng)
    assert child in space.table.index and child != tokens
    d = space._distances(tokens)
    assert (d[space.table.index[child]]) == d[d > 0].min()  # a nearest other row
    neighbours = space.neighbours(tokens)
    assert len(neighbours) == 3 and tokens not in neighbours
    assert all(n in space.table.index for n in neighbours)
    assert [d[space.table.index[n]] for n in neighbours] == sorted(d[space.table.index[n]] for n in neighbours)


@settings(max_examples=30, deadline=None)
@given(values=st.lists(st.tuples(st.floats(0, 1), st.floats(1e-3, 1e3), st.integers(0, 10**9)), min_size=1, max_size=6))
def test_table_file_round_trip(values, tmp_path_factory):
    rows = [{"tokens": [i, 1], "val_acc": v, "val_acc_last": v, "test_acc": v, "params": n, "flops": n,
             "latency_ms": ms, "train_seconds": ms, "seed": n, "trial": i} for i, (v, ms, n) in enumerate(values)]
    path = tmp_path_factory.mktemp("rt") / "t.jsonl.gz"
    write_table(path, {"space": {"name": "x"}, "decisions": ["a", "b"], "dataset": {}, "recipe": {"epochs": 1}}, rows)
    header, back = read_table(path)
    assert header["rows"] == len(rows) and header["recipe"] == {"epochs": 1}
    for row, got in zip(rows, back):
        for key, value in row.items():
            assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-12)


@pytest.fixture(scope="module")
def table_path_4rows(tmp_path_factory):
    """A hand-written table (no training): four 2-layer architectures with made-up numbers."""
    space = create_space("chain-cnn", num_layers=2)
    rng = np.random.default_rng(0)
    rows, seen = [], set()
    while len(rows) < 4:
        t = space.canonical(space.sample(rng))
        if t in seen:
            continue
        seen.add(t)
        rows.append({"tokens": list(t), "val_acc": 0.1 * len(rows), "val_acc_last": 0.1, "test_acc": 0.2,
                     "params": 100 + len(rows), "flops": 1000, "latency_ms": 0.5, "train_seconds": 1.0 + len(rows),
                     "seed": 7, "trial": len(rows)})
    path = tmp_path_factory.mktemp("tables") / "hand.jsonl.gz"
    write_table(path, {"space": {"name": "chain-cnn", "num_layers": 2, "dims": 1},
                       "decisions": [d.name for d in space.decisions], "dataset": {"name": "made-up"},
                       "recipe": {}}, rows)
    return str(path)


def _rewrite(src, dst, header_change=None, drop_column=None, rows=None):
    with gzip.open(src, "rt") as f:
        lines = f.read().splitlines()
    header = json.loads(lines[0])
    body = [json.loads(line) for line in lines[1:]]
    if header_change:
        header_change(header)
    if drop_column:
        i = header["columns"].index(drop_column)
        header["columns"].pop(i)
        body = [r[:i] + r[i + 1:] for r in body]
    if rows is not None:
        body = rows(body)
    with gzip.open(dst, "wt") as f:
        f.write("\n".join([json.dumps(header)] + [json.dumps(r) for r in body]) + "\n")
    return str(dst)


def test_bad_tables_give_clear_errors(tmp_path, table_path_4rows):
    with pytest.raises(TableFileError, match="does not exist"):
        OwnTableSpace(table=str(tmp_path / "missing.jsonl.gz"))
    with pytest.raises(ValueError, match="needs a table file"):
        OwnTableSpace()
    (tmp_path / "plain.txt").write_text("not gzip")
    with pytest.raises(TableFileError, match="not a gzipped nasforge table"):
        OwnTableSpace(table=str(tmp_path / "plain.txt"))
    no_test = _rewrite(table_path_4rows, tmp_path / "a.gz", drop_column="test_acc")
    with pytest.raises(TableFileError, match=r"lacks the columns \['test_acc'\]"):
        OwnTableSpace(table=no_test)
    other_space = _rewrite(table_path_4rows, tmp_path / "b.gz",
                           header_change=lambda h: h["space"].update(num_layers=3))
    with pytest.raises(TableFileError, match="decisions do not match"):
        OwnTableSpace(table=other_space)
    with pytest.raises(TableFileError, match="was made from space .* not from one with num_layers = 4"):
        OwnTableSpace(table=table_path_4rows, space={"name": "chain-cnn", "num_layers": 4})
    with pytest.raises(TableFileError, match="measured on made-up, not on mnist1d"):
        OwnTableSpace(table=table_path_4rows, dataset="mnist1d")
    short = _rewrite(table_path_4rows, tmp_path / "c.gz", rows=lambda body: body[:2])
    with pytest.raises(TableFileError, match="promises 4 rows, the file holds 2"):
        OwnTableSpace(table=short)
    repeated = _rewrite(table_path_4rows, tmp_path / "d.gz", rows=lambda body: [body[0], body[1], body[2], body[0]])
    with pytest.raises(TableFileError, match="row 4 repeats the architecture of row 1"):
        OwnTableSpace(table=repeated)
    bad_token = _rewrite(table_path_4rows, tmp_path / "e.gz",
                         rows=lambda body: [[[9] * len(body[0][0])] + body[0][1:]] + body[1:])
    with pytest.raises(TableFileError, match="row 1: token for 'L0.op' is 9"):
        OwnTableSpace(table=bad_token)
    with pytest.raises(ValueError, match="match must be one of"):
        OwnTableSpace(table=table_path_4rows, match="closest")


def test_search_on_own_table_through_the_cli(tmp_path, table_path_4rows, capsys):
    code = main(["search", "--space", "own-table", "--set", f"space.table={table_path_4rows}", "--strategy",
                 "random", "--budget", "3", "--experiment", str(tmp_path / "s"), "--quiet"])
    assert code == 0
    code = main(["search", "--space", "own-table", "--set", f"space.table={tmp_path / 'nope.gz'}",
                 "--budget", "3", "--experiment", str(tmp_path / "s2")])
    assert code == 2 and "does not exist" in capsys.readouterr().err


# ---- the shipped MNIST-1D table ------------------------------------------------------------------
def test_mnist1d_chain_is_shipped_and_consistent():
    space = MNIST1DChainSpace()
    header = space.table.header
    assert header["space"] == {"name": "chain-cnn", "num_layers": 4, "dims": 1}
    assert header["dataset"]["name"] == "mnist1d" and header["rows"] >= 500
    table = space.all_metrics()
    assert len(table["val_acc"]) == header["rows"]
    assert ((0 <= table["test_acc"]) & (table["test_acc"] <= 1)).all()
    assert (table["latency_ms"] > 0).all() and (table["params"] > 0).all()
    best = space.best("val_acc")
    assert space.lookup(best["tokens"])["val_acc"] == table["val_acc"].max()
    assert MNIST1DChainNearestSpace().lookup(space.base.sample(np.random.default_rng(1)))["table_distance"] >= 0


def test_mnist1d_chain_runs_in_the_benchmark_harness():
    from nasforge.compare import BenchmarkPlan, run_benchmark
    from nasforge.compare.runner import tabular_benchmarks

    assert {"mnist1d-chain", "mnist1d-chain-nearest"} <= set(tabular_benchmarks())
    plan = BenchmarkPlan(strategies=["random", "evolution"], benchmarks=["mnist1d-chain"], seeds=[0], budget=30)
    result = run_benchmark(plan, workers=1)
    assert all(r["error"] is None and r["failures"] == 0 for r in result.runs)


# ---- enumerate ----------------------------------------------------------------------------------------
def test_enumerate_covers_a_small_space_once():
    space = create_space("chain-cnn", num_layers=1)
    # per layer: conv 4 kernels x 4 filters x 2 strides, 2 poolings x 4 kernels x 2 strides, identity;
    # readout 2; head: depth 0, or depth 1-2 with 3 widths
    assert count_architectures(space) == (4 * 4 * 2 + 2 * 4 * 2 + 1) * 2 * (1 + 2 * 3) == 686
    strategy = create_strategy("enumerate")
    strategy.setup(space, 0)
    seen = [strategy.ask().tokens for _ in range(300)]
    clone = create_strategy("enumerate")
    clone.setup(space, 0)
    clone.load_state_dict(json.loads(json.dumps(strategy.state_dict())))
    seen += [clone.ask().tokens for _ in range(386)]
    assert len({space.arch_hash(t) for t in seen}) == 686
    with pytest.raises(ValueError, match="every architecture of chain-cnn has been proposed"):
        clone.ask()
    with pytest.raises(ValueError, match="more than the 100 that may be enumerated"):
        count_architectures(space, limit=100)


@pytest.mark.slow
def test_tabulate_all_trains_every_architecture_once(tmp_path, mnist1d_npz):
    exp, out = tmp_path / "all", tmp_path / "all.jsonl.gz"
    assert main(["tabulate", "--experiment", str(exp), "--out", str(out), "--dataset", mnist1d_npz, "--quiet",
                 "--all", "--layers", "1", "--epochs", "1"]) == 0
    header, rows = read_table(out)
    space = create_space("chain-cnn", num_layers=1)
    assert header["strategy"] == {"name": "enumerate"} and len(rows) == 686
    assert len({space.arch_hash(r["tokens"]) for r in rows}) == 686
    assert len(OwnTableSpace(table=str(out)).all_metrics()["val_acc"]) == 686


# ---- the train-and-test estimator ----------------------------------------------------------------------
def test_train_and_test_trains_like_train_and_scores_the_same_weights_on_test(mnist1d_slice):
    import torch

    from nasforge.estimators import create_estimator
    from nasforge.estimators.train import predict, train_network

    space = create_space("chain-cnn", num_layers=2)
    tokens = space.canonical(space.sample(np.random.default_rng(3)))
    plain = create_estimator("train", epochs=2)
    plain.setup(space, mnist1d_slice)
    both = create_estimator("train-and-test", epochs=2)
    both.setup(space, mnist1d_slice)
    a, b = plain.evaluate(tokens, 11), both.evaluate(tokens, 11)
    for key in ("val_acc", "val_acc_last", "val_acc_history", "params", "flops"):
        assert a[key] == b[key]
    # the test accuracy by hand: train the same way, then count correct test predictions
    torch.manual_seed(11)
    model = both.build(tokens)
    train_network(model, both.x_train, both.y_train, both.recipe, 11, both.device, both.x_val, both.y_val)
    correct = (predict(model, torch.as_tensor(mnist1d_slice.x_test)).argmax(1) == mnist1d_slice.y_test).sum()
    assert b["test_acc"] == correct / 200
    assert b["latency_ms"] > 0


def test_train_and_test_refuses_bad_settings():
    with pytest.raises(ValueError, match="given settings for estimator 'train'"):
        TrainAndTestEstimator(estimator="train")
    with pytest.raises(ValueError, match="latency_repeats must be a positive integer"):
        TrainAndTestEstimator(latency_repeats=0)
    with pytest.raises(ValueError, match="latency_warmup must be a non-negative integer"):
        TrainAndTestEstimator(latency_warmup=-1)

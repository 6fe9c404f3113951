"""Hardware metrics where searches get them: a trained child measures what it is asked to, the
tabular benchmarks expose their hardware columns, and the benchmark runner scores with
constraints, passes the metrics to ``tell`` and never reports an architecture over a limit."""

from __future__ import annotations

import numpy as np
import pytest

import nasforge  # noqa: F401  (registers the benchmark spaces)
from nasforge.compare.runner import BenchmarkPlan, reference, run_benchmark
from nasforge.config import ConfigError
from nasforge.estimators.train import TrainEstimator
from nasforge.objectives.hardware import measure_peak_memory, model_size_bytes
from nasforge.objectives.registry import METRICS
from nasforge.spaces import create_space
from nasforge.strategies.base import STRATEGIES
from nasforge.strategies.random_search import RandomSearch


# ---- child training ------------------------------------------------------------------------------------
def _estimator(data, **settings) -> TrainEstimator:
    estimator = TrainEstimator(epochs=1, batch_size=64, score_epochs=1, device="cpu", **settings)
    space = create_space("chain-cnn", num_layers=2, dims=1)
    estimator.setup(space, data)
    return estimator


def _tokens(estimator):
    return estimator.space.sample(np.random.default_rng(4))


def test_default_training_stays_cheap_and_measures_no_latency(mnist1d_slice):
    estimator = _estimator(mnist1d_slice)
    metrics = estimator.evaluate(_tokens(estimator), seed=0)
    assert metrics["params"] > 0 and metrics["flops"] > 0
    assert not {"latency_ms", "peak_memory_bytes", "size_bytes"} & set(metrics)


def test_requested_hardware_metrics_are_measured_on_the_trained_child(mnist1d_slice):
    estimator = _estimator(mnist1d_slice, measure=["latency_ms", "peak_memory_bytes", "size_bytes"],
                           latency_repeats=5, latency_warmup=1, size_bits=8)
    tokens = _tokens(estimator)
    metrics = estimator.evaluate(tokens, seed=0)
    fresh = estimator.build(tokens)  # same shapes: size and peak memory do not depend on the weights
    assert metrics["size_bytes"] == model_size_bytes(fresh, 8)
    assert metrics["size_bytes"] >= metrics["params"]  # one byte per parameter at 8 bits, plus buffers
    assert metrics["peak_memory_bytes"] == measure_peak_memory(fresh, mnist1d_slice.input_shape)
    assert metrics["latency_ms"] > 0 and metrics["latency_p90_ms"] >= metrics["latency_ms"]
    assert metrics["latency_threads"] == 1 and metrics["latency_batch_size"] == 1
    assert {"latency_ms", "latency_cv", "peak_memory_bytes", "size_bytes"} <= set(METRICS)
    assert estimator.settings()["measure"] == ["latency_ms", "peak_memory_bytes", "size_bytes"]


@pytest.mark.parametrize("settings, message", [
    ({"measure": ["speed"]}, "cannot measure \\['speed'\\]"), ({"measure": ["params"]}, "always reported"),
    ({"latency_repeats": 0}, "latency_repeats"), ({"latency_threads": 0}, "latency_threads"),
    ({"latency_warmup": -1}, "latency_warmup"), ({"size_bits": 0}, "size_bits"),
])
def test_bad_measurement_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        TrainEstimator(**settings)


# ---- tabular hardware columns -------------------------------------------------------------------------
def test_tabular_benchmarks_expose_their_hardware_metrics():
    graph = create_space("nbgraph-cora")
    metrics = graph.lookup(graph.sample(np.random.default_rng(0)))
    assert metrics["latency_ms"] == pytest.approx(1000 * metrics["latency_s"])
    assert metrics["params"] == round(metrics["params_m"] * 1e6)
    cell = create_space("nb201-cifar10")
    metrics = cell.lookup((1, 2, 3, 1, 2, 3))
    for kind in ("ptq", "qat", "analog"):
        assert metrics[f"{kind}_acc_drop"] == pytest.approx(metrics["fp_acc"] - metrics[f"{kind}_acc"])
        assert METRICS[f"{kind}_acc_drop"].direction == "minimize"


# ---- the runner ---------------------------------------------------------------------------------------
class _Spy(RandomSearch):
    """Random search that keeps what it is told."""

    told: list = []

    def tell(self, tokens, reward, info):
        super().tell(tokens, reward, info)
        _Spy.told.append((tuple(tokens), reward, info))


def _limit() -> float:
    return float(np.percentile(create_space("nbgraph-cora").all_metrics()["latency_ms"], 25))


def test_runner_scores_with_the_mnasnet_reward_and_passes_the_metrics(monkeypatch):
    monkeypatch.setitem(STRATEGIES._items, "spy", _Spy)
    _Spy.told = []
    limit = _limit()
    reward = {"metric": "val_acc", "constraints": [f"latency_ms<={limit!r}"], "constraint_mode": "mnasnet-hard"}
    run_benchmark(BenchmarkPlan(["spy"], ["nbgraph-cora"], [0], budget=30, reward=reward), workers=1)
    assert len(_Spy.told) == 30
    over = 0
    for tokens, told_reward, info in _Spy.told:
        m = info["metrics"]
        ratio = m["latency_ms"] / limit
        expected = m["val_acc"] * (1.0 if ratio <= 1 else 1 / ratio)  # ACC · (LAT/T)^w, w = 0 or -1
        assert told_reward == pytest.approx(expected, rel=1e-12)
        assert info["feasible"] is True  # MnasNet modes penalise, they do not exclude
        over += ratio > 1
    assert 0 < over < 30


def test_constrained_runs_report_only_architectures_within_the_limit():
    limit = _limit()
    constraint = f"latency_ms<={limit!r}"
    space = create_space("nbgraph-cora")
    table = space.all_metrics()
    ok = table["latency_ms"] <= limit
    ref = reference("nbgraph-cora", (constraint,))
    assert ref["max_test"] == table["test_acc"][ok].max() and ref["max_val"] == table["val_acc"][ok].max()
    for mode in ("hard", "mnasnet-hard", "soft"):
        plan = BenchmarkPlan(["random", "evolution"], ["nbgraph-cora"], [0, 1], budget=60,
                             reward={"constraints": [constraint], "constraint_mode": mode},
                             record=["val_acc", "latency_ms"],
                             settings={"evolution": {"population_size": 10, "sample_size": 5}})
        for run in run_benchmark(plan, workers=1).runs:
            assert run["error"] is None
            points = np.array(run["points"])
            meets = points[:, 1] <= limit
            assert run["infeasible"] == int((~meets).sum()) > 0
            assert run["curve"]["best_val"][-1] == points[meets, 0].max()
            for improvement in run["improvements"]:
                assert space.lookup(improvement["tokens"])["latency_ms"] <= limit
            assert min(run["curve"]["regret"]) >= 0


@pytest.mark.parametrize("plan, message", [
    (dict(benchmarks=["nb201-cifar10"], reward={"constraints": ["latency_ms<=3"]}), "has no \\['latency_ms'\\]"),
    (dict(benchmarks=["nbgraph-cora"], record=["speed"]), "unknown metrics \\['speed'\\]"),
    (dict(benchmarks=["nbgraph-cora"], reward={"constraints": ["latency_ms<=x"]}), "is not a number"),
    (dict(benchmarks=["nbgraph-cora"], reward={"constraint_mode": "medium"}), "constraint mode"),
])
def test_bad_reward_or_record_settings_are_refused_before_running(plan, message):
    with pytest.raises(ConfigError, match=message):
        BenchmarkPlan(["random"], seeds=[0], budget=5, **plan).check()

"""The executor contract, checked for every built-in executor of the registry: the same tasks give
the same outcomes on each as the estimator gives when called directly (kind, trial id, metrics
with wall-clock timings aside, error text), a failing task fails alone, and every submitted task
comes back once. The estimator is a real one (zero-cost proxies of a 2-layer chain-cnn on
scikit-learn's digits): its metrics depend on the tokens and on the seed, which initialises the
network, so an executor that loses either, or mixes tasks up, is seen. Ray starts a private local
instance on loopback, behind the ``ray_offline`` fixture (tests/conftest.py).
"""

from __future__ import annotations

import math
from typing import Any, Dict, List

import numpy as np
import pytest

from nasforge.build import estimator_recipe
from nasforge.config import SearchConfig
from nasforge.execution.base import EXECUTORS, EstimatorRecipe, Outcome, Task, create_executor, evaluate_task
from nasforge.spaces.base import SPACES

#: Settings and marks per built-in executor; a new one without an entry fails here.
EXECUTOR_CASES: Dict[str, Dict[str, Any]] = {
    "inline": {"settings": {}, "marks": []},
    "local": {"settings": {"workers": 1}, "marks": [pytest.mark.slow]},  # a worker process: 10 s here
    "ray": {"settings": {"workers": 1}, "marks": [pytest.mark.slow]},  # a Ray start takes 20-60 s
}
PARAMS = [pytest.param(name, marks=EXECUTOR_CASES.get(name, {}).get("marks", []), id=name)
          for name in sorted(EXECUTORS.builtins)]

def recipe() -> EstimatorRecipe:
    config = SearchConfig(budget=3, seed=0, dataset="digits")
    config.space = {"name": "chain-cnn", "num_layers": 2, "dims": 2}
    config.strategy = {"name": "random"}
    config.training = {"estimator": "zero-cost", "batch_size": 16, "proxies": ["synflow", "snip", "naswot"]}
    return estimator_recipe(config.to_dict())


SPACE = SPACES.create("chain-cnn", num_layers=2, dims=2)
SIZE = len(SPACE.decisions)
A, B = SPACE.sample(np.random.default_rng(1)), SPACE.sample(np.random.default_rng(2))
TASKS = [Task(0, A, seed=1), Task(1, A, seed=2), Task(2, B, seed=1),
         Task(3, A[:-1], seed=1)]  # the last has a token missing: an error


def comparable(outcome: Outcome) -> Dict[str, Any]:
    metrics = {k: v for k, v in outcome.metrics.items() if "seconds" not in k}
    return {"trial_id": outcome.trial_id, "kind": outcome.kind, "error": outcome.error, "metrics": metrics}


def same(got: Dict[str, Any], want: Dict[str, Any]) -> bool:
    """Equal, floats to 1e-6 relative: a worker may run with another number of torch threads."""
    if got.keys() != want.keys():
        return False
    for key, value in want.items():
        other = got[key]
        if isinstance(value, float) and isinstance(other, float):
            if not (math.isclose(value, other, rel_tol=1e-6, abs_tol=1e-9) or (math.isnan(value) and math.isnan(other))):
                return False
        elif isinstance(value, dict):
            if not isinstance(other, dict) or not same(other, value):
                return False
        elif value != other:
            return False
    return True


@pytest.fixture(scope="module")
def expected() -> List[Dict[str, Any]]:
    """What the estimator gives for each task when called directly, in this process."""
    estimator = recipe().build()
    outcomes = [comparable(evaluate_task(estimator, task)) for task in TASKS]
    assert [o["kind"] for o in outcomes] == ["ok", "ok", "ok", "error"]
    assert f"expects {SIZE} tokens, got {SIZE - 1}" in outcomes[-1]["error"]
    first, reseeded, other = (o["metrics"] for o in outcomes[:3])
    assert not same(first, reseeded) and not same(first, other)  # seed and tokens both matter
    return outcomes


def run_all(executor) -> List[Outcome]:
    outcomes: List[Outcome] = []
    pending = list(TASKS)
    while pending or executor.running():
        while pending and executor.running() < executor.slots:
            executor.submit(pending.pop(0))
        outcomes += executor.wait(timeout=120)
    return outcomes


@pytest.mark.parametrize("name", PARAMS)
def test_the_same_tasks_give_the_same_outcomes_on_every_executor(name, expected, request):
    if name not in EXECUTOR_CASES:
        pytest.fail(f"executor {name!r} is registered but has no case in EXECUTOR_CASES: add one")
    if name == "ray":
        pytest.importorskip("ray")
        request.getfixturevalue("ray_offline")  # its processes reach nothing beyond loopback
    executor = create_executor(name, **EXECUTOR_CASES[name]["settings"])
    executor.start(recipe())
    try:
        outcomes = run_all(executor)
    finally:
        executor.shutdown()
    got = sorted((comparable(o) for o in outcomes), key=lambda o: o["trial_id"])
    assert [o["trial_id"] for o in got] == [t.trial_id for t in TASKS]  # each once
    for have, want in zip(got, expected):
        assert same(have, want), (have, want)

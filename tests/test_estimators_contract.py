"""The estimator contract, checked for every built-in estimator of the registry on a real, tiny
evaluation: ``setup(space, data)`` then ``evaluate`` returns exactly the metric names
``produces()`` declares (with pruning, plus the fidelity keys ``Estimator.fidelity_metrics`` names), fresh estimators give the same metrics for the
same tokens and seed (wall-clock timings aside), and an estimator with a checkpoint (``save`` /
``load``) continues after a reload exactly as the original does. A built-in without a case fails.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, NamedTuple, Optional

import numpy as np
import pytest

from nasforge.data.datasets import Dataset, load_dataset
from nasforge.estimators.base import ESTIMATORS, Estimator, create_estimator
from nasforge.spaces.base import SPACES, SearchSpace

#: Keys that hold wall-clock measurements: they differ between two runs of the same evaluation.
TIMED = ("seconds", "latency", "peak_memory")


class Case(NamedTuple):
    settings: Dict[str, Any]
    space: Callable[[], SearchSpace]
    uses_data: bool = True
    context: Optional[Dict[str, Any]] = None  # what the search would hand the task


def _chain() -> SearchSpace:
    return SPACES.create("chain-cnn", num_layers=2, dims=2)


QUICK_TRAIN = {"epochs": 2, "batch_size": 32}
CASES: Dict[str, List[Case]] = {
    "train": [Case(QUICK_TRAIN, _chain),
              Case({**QUICK_TRAIN, "measure": ["latency_ms", "size_bytes", "flops_with_pooling", "peak_memory_bytes"],
                    "latency_repeats": 2, "latency_warmup": 0}, _chain),
              # pruned at its first rung: earlier children of its bracket all did better there
              Case({**QUICK_TRAIN, "pruning": {"eta": 2, "min_epochs": 1, "brackets": 1}}, _chain,
                   context={"rungs": {1: [1.0, 1.0, 1.0]}}),
              Case({**QUICK_TRAIN, "pruning": {"eta": 2, "min_epochs": 1, "brackets": 1}}, _chain,
                   context={"rungs": {1: [0.0, 0.0, 0.0]}})],
    "train-and-test": [Case({**QUICK_TRAIN, "latency_repeats": 2, "latency_warmup": 0}, _chain)],
    "shared-weights": [Case({"warmup_steps": 3, "steps": 2, "batch_size": 16}, _chain),
                       # single-path one-shot mode, chosen by the space
                       Case({"warmup_steps": 3, "steps": 2, "batch_size": 16},
                            lambda: SPACES.create("nb201-cell", cells_per_stage=1, channels=4)),
                       Case({"warmup_steps": 3, "steps": 2, "batch_size": 16},
                            lambda: SPACES.create("mobile-blocks", stages=[[8, 1], [12, 2]], max_blocks=2))],
    "zero-cost": [Case({"batch_size": 16, "num_batches": 2}, _chain)],
    "synthetic": [Case({"seconds": 0}, _chain)],
    "tabular": [Case({}, lambda: SPACES.create("nb201-cifar10"), uses_data=False),
                Case({"seconds_per_query": 2.5}, lambda: SPACES.create("mnist1d-chain"), uses_data=False)],
    "rule-train": [Case({"epochs": 2, "batch_size": 32}, lambda: SPACES.create("update-rules", child_layers=2)),
                   Case({"epochs": 1, "batch_size": 32, "repeats": 1}, lambda: SPACES.create("update-rules", child_layers=2))],
}
#: Contract breaches found by these tests, left to the code's owners (strict: fixing one fails here).
UNDECLARED: dict = {}  # (estimator, case) -> why it may not declare a metric it produces (none today)
PARAMS = [pytest.param(name, i, id=f"{name}-{i}") for name in sorted(ESTIMATORS.builtins)
          for i in range(len(CASES.get(name, [None])))]

@pytest.fixture(scope="module")
def tiny_digits() -> Dataset:
    """160 training and 40 test images of scikit-learn's digits (8 x 8, 10 classes)."""
    d = load_dataset("digits")
    return Dataset("digits-tiny", d.x_train[:160], d.y_train[:160], d.x_test[:40], d.y_test[:40], d.num_classes)


def built(name: str, index: int, data: Dataset, **extra: Any) -> Estimator:
    if name not in CASES:
        pytest.fail(f"estimator {name!r} is registered but has no case in CASES: add one")
    case = CASES[name][index]
    estimator = create_estimator(name, **{**case.settings, **extra})
    estimator.setup(case.space(), data if case.uses_data else None)
    estimator.context = dict(case.context or {})
    return estimator


def some_tokens(estimator: Estimator, seed: int = 0) -> tuple:
    """A sample the estimator trains: update rules that cannot learn fail untrained by design."""
    rng = np.random.default_rng(seed)
    tokens = estimator.space.sample(rng)
    cannot_learn = getattr(estimator.space, "cannot_learn", lambda _: None)
    while cannot_learn(tokens):
        tokens = estimator.space.sample(rng)
    return tokens


def untimed(metrics: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in metrics.items() if not any(word in k for word in TIMED)}


@pytest.mark.parametrize("name, index", PARAMS)
def test_evaluate_returns_exactly_the_declared_metrics(name, index, tiny_digits, request):
    if (name, index) in UNDECLARED:
        request.applymarker(pytest.mark.xfail(strict=True, reason=UNDECLARED[name, index]))
    estimator = built(name, index, tiny_digits)
    declared = estimator.produces()
    assert declared, f"{name} does not declare its metrics (produces() is {declared!r})"
    metrics = estimator.evaluate(some_tokens(estimator), seed=1)
    got = set(metrics)
    keys = estimator.fidelity_metrics  # what a child stopped early adds for the search (base.py)
    fidelity = {keys.promised, keys.pruned_at}
    assert got - fidelity == declared, (sorted(got - declared), sorted(declared - got))
    assert not got & fidelity or estimator.pruning is not None, "fidelity keys without pruning"
    for key, value in metrics.items():
        assert not isinstance(value, float) or np.isfinite(value), (key, value)


def test_the_pruning_cases_reach_both_outcomes(tiny_digits):
    """The two pruning cases above must prune one child and keep the other, or they check nothing."""
    stopped = built("train", 2, tiny_digits).evaluate((0,) * len(_chain().decisions), seed=1)
    kept = built("train", 3, tiny_digits).evaluate((0,) * len(_chain().decisions), seed=1)
    keys = Estimator.fidelity_metrics
    assert stopped[keys.pruned_at] == 1 and stopped["epochs"] == 1 and keys.promised in stopped
    assert keys.pruned_at not in kept and kept["epochs"] == 2


@pytest.mark.parametrize("name, index", PARAMS)
def test_fresh_estimators_agree_for_the_same_tokens_and_seed(name, index, tiny_digits):
    tokens = some_tokens(built(name, index, tiny_digits), seed=3)
    first = built(name, index, tiny_digits).evaluate(tokens, seed=7)
    second = built(name, index, tiny_digits).evaluate(tokens, seed=7)
    assert untimed(first) == untimed(second)


def has_checkpoint(name: str) -> bool:
    own = getattr(ESTIMATORS.get(name), "save", None)
    return callable(own) and own is not getattr(Estimator, "save", None)


CHECKPOINTED = [p for p in PARAMS if p.values[0] in CASES and has_checkpoint(p.values[0])]


def test_some_estimator_has_a_checkpoint():
    assert {p.values[0] for p in CHECKPOINTED} == {"shared-weights"}  # else the next test checks nothing


@pytest.mark.parametrize("name, index", CHECKPOINTED)
def test_a_reloaded_checkpoint_continues_as_the_original(name, index, tiny_digits, tmp_path):
    original = built(name, index, tiny_digits)
    a, b = some_tokens(original, 1), some_tokens(original, 2)
    original.evaluate(a, seed=1)
    original.save(tmp_path / "estimator.pt")
    restored = built(name, index, tiny_digits)
    restored.load(tmp_path / "estimator.pt")
    assert untimed(restored.evaluate(b, seed=2)) == untimed(original.evaluate(b, seed=2))
    other = {k: v + 1 for k, v in CASES[name][index].settings.items() if isinstance(v, int) and k.endswith("steps")}
    if other:  # a checkpoint made with other settings is refused, with the difference named
        with pytest.raises(ValueError, match=sorted(other)[0]):
            built(name, index, tiny_digits, **other).load(tmp_path / "estimator.pt")

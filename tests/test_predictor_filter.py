"""The ``predictor-filter`` strategy: the ask/tell contract, and that it proposes the predicted best."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pytest
import torch

import nasforge  # noqa: F401  (registers the benchmark spaces)
from nasforge.spaces import create_space
from nasforge.strategies import STRATEGIES, create_strategy
from nasforge.strategies.predictor_filter import PredictorFilter  # noqa: F401  (registration)

SETTINGS = {"warmup": 5, "num_candidates": 8, "predictor_settings": {"n_estimators": 30}}


def reward_of(tokens) -> float:
    digest = hashlib.sha256(json.dumps([int(t) for t in tokens]).encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2 ** 32


def make(space, seed=0, **extra):
    strategy = create_strategy("predictor-filter", **{**SETTINGS, **extra})
    strategy.setup(space, seed)
    return strategy


def step(strategy, n, reward=reward_of):
    out = []
    for _ in range(n):
        proposal = strategy.ask()
        json.dumps(proposal.info)
        strategy.tell(proposal.tokens, reward(proposal.tokens), json.loads(json.dumps(proposal.info)))
        out.append(tuple(proposal.tokens))
    return out


def roundtrip(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)


@pytest.fixture(params=["chain-cnn", "nb201-cifar10"])
def space(request):
    if request.param == "chain-cnn":
        return create_space("chain-cnn", num_layers=3)
    return create_space(request.param)


def test_registered():
    assert "predictor-filter" in STRATEGIES


@pytest.mark.parametrize("inner", ["random", "evolution", "reinforce"])
def test_valid_and_reproducible(space, inner):
    extra = {"inner": inner, "inner_settings": {"batch_size": 4} if inner == "reinforce" else {}}
    first = step(make(space, 3, **extra), 12)
    assert all(space.validate(t) == t for t in first)
    assert step(make(space, 3, **extra), 12) == first
    assert len({space.arch_hash(t) for t in first}) == len(first)  # never proposes an arch twice


@pytest.mark.parametrize("inner", ["random", "reinforce"])
def test_restored_state_proposes_the_same(space, inner):
    extra = {"inner": inner, "inner_settings": {"batch_size": 4} if inner == "reinforce" else {}}
    original = make(space, 5, **extra)
    step(original, 7)
    pending = [original.ask() for _ in range(2)]
    restored = make(space, 99, **extra)
    restored.load_state_dict(roundtrip(original.state_dict()))
    for strategy in (original, restored):
        for p in pending:
            strategy.tell(p.tokens, reward_of(p.tokens), json.loads(json.dumps(p.info)))
    assert step(restored, 6) == step(original, 6)


def test_state_dict_is_a_snapshot(space):
    strategy = make(space, 2)
    step(strategy, 7)
    state = strategy.state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    step(strategy, 4)
    again = io.BytesIO()
    torch.save(state, again)
    assert again.getvalue() == buffer.getvalue()


def test_proposes_the_predicted_best_of_the_candidates(space):
    strategy = make(space, 1)
    step(strategy, 5)
    told = []
    inner_tell = strategy.inner.tell
    strategy.inner.tell = lambda tokens, reward, info: (told.append((tuple(tokens), reward)),
                                                        inner_tell(tokens, reward, info))
    proposal = strategy.ask()
    assert proposal.info["kind"] == "predicted" and proposal.info["fitted_on"] == 5
    # the inner strategy heard the other candidates at once, at their predicted rewards, all lower
    assert len(told) == SETTINGS["num_candidates"] - 1
    predict = strategy.model.predict
    assert predict(strategy._encode([proposal.tokens]))[0] == pytest.approx(proposal.info["predicted_reward"])
    others = predict(strategy._encode([t for t, _ in told]))
    assert np.allclose(others, [r for _, r in told])
    assert others.max() <= proposal.info["predicted_reward"]


def test_filter_beats_its_inner_strategy_on_nb201():
    """With random search inside, the filtered proposals are better than random ones."""
    space = create_space("nb201-cifar10")
    acc = lambda t: space.lookup(t)["val_acc"]  # noqa: E731
    filtered, plain = [], []
    for seed in range(3):
        filtered += [acc(t) for t in step(make(space, seed, warmup=20, num_candidates=20), 40, acc)[20:]]
        plain += [acc(t) for t in step(_random(space, seed), 40, acc)[20:]]
    assert np.mean(filtered) > np.mean(plain) + 0.02


def _random(space, seed):
    strategy = create_strategy("random")
    strategy.setup(space, seed)
    return strategy


def test_bad_settings_are_refused():
    for settings, message in (({"inner": "nope"}, "unknown strategy"),
                              ({"inner": "predictor-filter"}, "itself"),
                              ({"inner": "reinforce", "inner_settings": {"batch_size": 0}}, "batch_size"),
                              ({"predictor": "svm"}, "unknown predictor"),
                              ({"predictor_settings": {"depth": 2}}, "depth"),
                              ({"warmup": 1}, "warmup"), ({"num_candidates": 0}, "num_candidates"),
                              ({"refit_every": 0}, "refit_every"), ({"encoding": "graph"}, "encoding")):
        with pytest.raises(ValueError, match="predictor-filter") as error:
            create_strategy("predictor-filter", **settings)
        assert message in str(error.value)

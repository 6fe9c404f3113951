"""The ask/tell contract, checked for every registered strategy on three kinds of space.

Valid proposals; the same seed gives the same proposals; a state saved through ``torch.save`` /
``torch.load(weights_only=True)`` (with proposals still outstanding) makes a fresh instance
propose exactly what the original proposes next; bad settings are refused with ValueError.
"""

from __future__ import annotations

import hashlib
import io
import json

import pytest
import torch

import nasforge  # noqa: F401  (registers the benchmark spaces)
from nasforge.spaces import create_space
from nasforge.strategies import STRATEGIES, create_strategy

# a fixed network whose bit widths alone are searched: every other decision, skip connections included,
# has one choice (layer 0 conv, layer 1 identity, layer 2 conv reading layer 1; avg readout, one fc)
FIXED_NETWORK = [0, 1, 0, 0, 1, 3, 0, 0, 0, 0, 1, 0, 2, 1, 1, 0, 1, 2]

SPACES = {
    "chain-cnn": lambda: create_space("chain-cnn", num_layers=3),
    "chain-cnn-bits-of-a-network": lambda: create_space("chain-cnn", num_layers=3, mixed_precision=True,
                                                        architecture=FIXED_NETWORK),
    "nb201-cifar10": lambda: create_space("nb201-cifar10"),
    "nbgraph-cora": lambda: create_space("nbgraph-cora"),
}

# Small settings where the defaults would need many trials before the interesting code runs.
FAST = {
    "bananas": {"initial_samples": 4, "batch_size": 3, "train_steps": 20, "num_candidates": 20},
    "evolution": {"population_size": 5, "sample_size": 2},
    "local-search": {"initial_samples": 3},
    "ppo": {"batch_size": 4},
    "predictor-filter": {"warmup": 4, "num_candidates": 5, "predictor_settings": {"n_estimators": 20}},
    "reinforce": {"batch_size": 4},
    "reinforce-elite": {"batch_size": 4, "pool": 16},
    "tpe": {"n_startup_trials": 4, "n_ei_candidates": 8},
}

BAD_SETTINGS = {
    "random": [],  # its settings (dedup, max_retries) are not validated
    "reinforce": [{"batch_size": 0}, {"learning_rate": 0.0}, {"baseline_decay": 1.0}],
    "reinforce-elite": [{"batch_size": 0}, {"pool": 2}, {"risk_quantile": 0.0}, {"queue_size": -1},
                        {"queue_weight": -1.0}],
    "evolution": [{"population_size": 1}, {"sample_size": 0}, {"population_size": 5, "sample_size": 6},
                  {"max_retries": 0}],
    "local-search": [{"initial_samples": 0}, {"initial_samples": 2.5}, {"max_retries": 0}],
    "ppo": [{"batch_size": 0}, {"epochs": 0}, {"clip": 0.0}, {"clip": 1.5}, {"learning_rate": -1.0},
            {"baseline_decay": 1.0}, {"entropy_weight": -0.1}],
    "bananas": [{"initial_samples": 1}, {"batch_size": 0}, {"ensemble_size": 1}, {"acquisition": "ei"},
                {"random_fraction": 1.5}, {"learning_rate": 0.0}, {"ucb_k": -1.0}],
    "tpe": [{"n_startup_trials": -1}, {"n_ei_candidates": 0}, {"multivariate": "yes"}],
    "predictor-filter": [{"warmup": 1}, {"inner": "nope"}, {"predictor": "svm"}],
    "enumerate": [],  # no settings
}


def reward_of(tokens) -> float:
    """A deterministic synthetic reward in [0, 1): a hash of the tokens."""
    digest = hashlib.sha256(json.dumps([int(t) for t in tokens]).encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2 ** 32


def make(name, space, seed=0):
    strategy = create_strategy(name, **FAST.get(name, {}))
    strategy.setup(space, seed)
    return strategy


def step(strategy, n):
    """n sequential ask -> tell rounds; returns the proposed tokens."""
    out = []
    for _ in range(n):
        proposal = strategy.ask()
        json.dumps(proposal.info)  # stored with the trial: must be JSON
        strategy.tell(proposal.tokens, reward_of(proposal.tokens), proposal.info)
        out.append(tuple(proposal.tokens))
    return out


def serialised(state) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def roundtrip(state):
    return torch.load(io.BytesIO(serialised(state)), weights_only=True)


@pytest.fixture(scope="module", params=sorted(SPACES))
def space(request):
    return SPACES[request.param]()


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_valid_and_reproducible(name, space):
    first = step(make(name, space, seed=3), 20)
    for tokens in first:
        assert space.validate(tokens) == tokens
    assert step(make(name, space, seed=3), 20) == first
    assert len(set(first)) > 1


@pytest.mark.parametrize("done, outstanding", [(5, 1), (11, 2)])  # mid-batch and after batches
@pytest.mark.parametrize("name", STRATEGIES.names())
def test_restored_state_proposes_the_same(name, space, done, outstanding):
    original = make(name, space, seed=5)
    step(original, done)
    pending = [original.ask() for _ in range(outstanding)]  # asked, results not yet in
    state = roundtrip(original.state_dict())
    restored = make(name, space, seed=99)  # the state, not the seed, must decide what comes next
    restored.load_state_dict(state)
    for strategy in (original, restored):
        for proposal in pending:
            strategy.tell(proposal.tokens, reward_of(proposal.tokens), json.loads(json.dumps(proposal.info)))
    assert step(restored, 15) == step(original, 15)


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_state_dict_is_a_snapshot(name, space):
    """Learning after ``state_dict()`` must not change the dict already returned (no live tensors)."""
    strategy = make(name, space, seed=2)
    step(strategy, 6)
    state = strategy.state_dict()
    before = serialised(state)
    step(strategy, 10)
    assert serialised(state) == before


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_bad_settings_are_refused(name):
    assert name in BAD_SETTINGS, f"add bad settings for strategy {name!r} to BAD_SETTINGS"
    for settings in BAD_SETTINGS[name]:
        with pytest.raises(ValueError, match=name):
            create_strategy(name, **settings)

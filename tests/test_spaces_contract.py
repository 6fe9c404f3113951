"""The search-space contract, checked for every built-in space of the registry.

Property tests (hypothesis) over random token sequences: ``validate`` accepts exactly the in-range
sequences of the right length (anything else is an ``InvalidArchitectureError``, never another
exception), ``encode``/``decode`` round-trip, ``canonical`` is idempotent and ``arch_hash`` is
stable (list, tuple, numpy, a fresh instance) and equal for equal canonical forms (twins share a
hash), and only for them unless the space hashes by behaviour; ``mutate`` returns a valid different
architecture, ``neighbours`` are valid; spaces that build networks build one that runs forward,
and twins build the same function.

Neighbourhoods: most spaces change one decision (``mutate`` changes exactly one; ``neighbours`` is
every valid sequence at distance one). Spaces backed by a table of measured rows stay in it
(``mutate`` gives a nearest other row, ``neighbours`` the nearest rows, nearest first). Every
built-in name must have a case below: a new space without one fails here.
"""

from __future__ import annotations

from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nasforge.spaces.base import SPACES, InvalidArchitectureError, SearchSpace
from nasforge.tables.own_table import MNIST1D_CHAIN


class Case(NamedTuple):
    make: Callable[[], SearchSpace]
    table_rows: bool = False  # neighbourhood of table rows, not of one decision
    input_shape: Optional[Tuple[int, ...]] = None  # set for spaces that build networks
    #: twins build the same network (same parameters, so the same function from the same seed);
    #: False where twins compute the same function only up to their weights: nb201-cell keeps the
    #: table's hash, under which a cell's dead edges still hold (unused) weights
    identical_twins: bool = True
    #: the hash also joins what canonical tokens cannot see as equal (update-rules: one optimiser
    #: written two ways; tests/test_update_rules.py checks that such rules perform the same updates)
    hash_by_behaviour: bool = False


def _chain(**settings) -> Callable[[], SearchSpace]:
    return lambda: SPACES.create("chain-cnn", **settings)


def _named(name: str, **settings) -> Callable[[], SearchSpace]:
    return lambda: SPACES.create(name, **settings)


CASES: Dict[str, List[Case]] = {
    "chain-cnn": [Case(_chain(num_layers=3, dims=1), input_shape=(1, 24)),
                  Case(_chain(num_layers=2, dims=2), input_shape=(1, 8, 8)),
                  Case(_chain(num_layers=3, dims=1, mixed_precision=True), input_shape=(1, 24)),
                  Case(_chain(num_layers=3, dims=1, mixed_precision=True,
                              architecture=[0, 1, 0, 0, 1, 3, 0, 0, 0, 0, 1, 0, 2, 1, 1, 0, 1, 2]),
                       input_shape=(1, 24))],
    "nb201-cifar10": [Case(_named("nb201-cifar10"))],
    "nb201-cell": [Case(_named("nb201-cell", cells_per_stage=1, channels=4), input_shape=(1, 8, 8),
                        identical_twins=False)],
    "mobile-blocks": [Case(_named("mobile-blocks", stages=[[4, 1], [8, 2]], stem_channels=4, head_channels=8),
                           input_shape=(1, 7, 9)),
                      Case(_named("mobile-blocks", stages=[[4, 2]], per_block=False, max_blocks=2,
                                  stem_channels=4, head_channels=8), input_shape=(3, 5, 5))],
    **{name: [Case(_named(name))] for name in SPACES.builtins if name.startswith("nbgraph-")},
    "own-table": [Case(_named("own-table", table=str(MNIST1D_CHAIN)), True, (1, 40))],
    "mnist1d-chain": [Case(_named("mnist1d-chain"), True, (1, 40))],
    "mnist1d-chain-nearest": [Case(_named("mnist1d-chain-nearest"), True, (1, 40))],
    "update-rules": [Case(_named("update-rules"), hash_by_behaviour=True),
                     Case(_named("update-rules", groups=2, weight_bits=2), hash_by_behaviour=True)],
}

PARAMS = [pytest.param(name, i, id=f"{name}-{i}") for name in sorted(SPACES.builtins)
          for i in range(len(CASES.get(name, [None])))]
SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_made: Dict[Tuple[str, int], SearchSpace] = {}

def case_of(name: str, index: int) -> Case:
    if name not in CASES:
        pytest.fail(f"space {name!r} is registered but has no case in CASES: add one")
    return CASES[name][index]


def space_of(name: str, index: int) -> SearchSpace:
    if (name, index) not in _made:  # one instance per case: tables are read once
        _made[name, index] = case_of(name, index).make()
    return _made[name, index]


def is_valid(space: SearchSpace, tokens) -> bool:
    try:
        space.validate(tokens)
        return True
    except InvalidArchitectureError:
        return False


def architectures(space: SearchSpace):
    """Valid token sequences, uniform per decision (invalid combinations filtered out)."""
    return st.tuples(*[st.integers(0, d.size - 1) for d in space.decisions]).filter(lambda t: is_valid(space, t))


def over_spaces(test):
    """A property test run for every case: hypothesis draws from ``data`` per space."""
    return pytest.mark.parametrize("name, index", PARAMS)(SETTINGS(given(data=st.data())(test)))


def drawn(name: str, index: int, data) -> Tuple[SearchSpace, tuple]:
    """The case's space and a valid architecture of it."""
    space = space_of(name, index)
    return space, data.draw(architectures(space))


def distance(a, b) -> int:
    return sum(x != y for x, y in zip(a, b))


@over_spaces
def test_validate_accepts_exactly_the_in_range_sequences(name, index, data):
    space = space_of(name, index)
    sizes = [d.size for d in space.decisions]
    length = data.draw(st.sampled_from([len(sizes), len(sizes), len(sizes) - 1, len(sizes) + 1]))
    tokens = data.draw(st.lists(st.integers(-2, max(sizes) + 1), min_size=length, max_size=length))
    in_range = length == len(sizes) and all(0 <= t < n for t, n in zip(tokens, sizes))
    try:
        got = space.validate(tokens)
    except InvalidArchitectureError:
        assert not in_range or type(space).validate is not SearchSpace.validate  # a space's own rule
        return
    assert in_range and got == tuple(tokens) and all(type(t) is int for t in got)


@pytest.mark.parametrize("name, index", PARAMS)
def test_tokens_that_are_not_integers_are_refused_clearly(name, index):
    space = space_of(name, index)
    good = space.sample(np.random.default_rng(0))
    assert space.validate(np.asarray(good)) == good  # numpy integers are integers
    for bad in (("1",) + good[1:], (True,) + good[1:], (0.5,) + good[1:], None):
        with pytest.raises((InvalidArchitectureError, TypeError)):
            space.validate(bad)
    with pytest.raises(InvalidArchitectureError):
        space.validate(("1",) + good[1:])


@over_spaces
def test_encode_decode_round_trip_and_sample_is_valid(name, index, data):
    space, tokens = drawn(name, index, data)
    assert space.decode(space.encode(tokens)) == tokens
    assert space.decode(space.encode(list(tokens))) == tokens
    seed = data.draw(st.integers(0, 2 ** 16))
    sampled = space.sample(np.random.default_rng(seed))
    assert space.validate(sampled) == sampled
    assert space.sample(np.random.default_rng(seed)) == sampled


@over_spaces
def test_canonical_is_idempotent_and_twins_share_a_stable_hash(name, index, data):
    space, tokens = drawn(name, index, data)
    canonical = space.canonical(tokens)
    assert space.validate(canonical) == canonical
    assert space.canonical(canonical) == canonical
    digest = space.arch_hash(tokens)
    assert len(digest) == 16 and int(digest, 16) >= 0
    assert digest == space.arch_hash(canonical) == space.arch_hash(list(tokens)) == space.arch_hash(np.asarray(tokens))
    assert case_of(name, index).make().arch_hash(tokens) == digest  # a fresh instance agrees
    by_behaviour = case_of(name, index).hash_by_behaviour
    for other in space.neighbours(tokens)[:12]:  # equal hash for equal canonical forms (and only them)
        same_hash, same_form = space.arch_hash(other) == digest, space.canonical(other) == canonical
        assert same_hash == same_form or (by_behaviour and same_hash), other  # by behaviour: twins and more


@over_spaces
def test_mutate_returns_a_valid_different_architecture(name, index, data):
    space, tokens = drawn(name, index, data)
    seed = data.draw(st.integers(0, 2 ** 16))
    mutated = space.mutate(tokens, np.random.default_rng(seed))
    assert space.validate(mutated) == mutated
    assert mutated != tokens
    assert space.mutate(tokens, np.random.default_rng(seed)) == mutated  # the generator decides
    if case_of(name, index).table_rows:
        nearest = min(distance(space.canonical(tokens), n) for n in space.neighbours(tokens))
        assert distance(space.canonical(tokens), mutated) == nearest
    else:
        assert distance(mutated, tokens) == 1


@over_spaces
def test_neighbours_are_valid_and_near(name, index, data):
    space, tokens = drawn(name, index, data)
    found = space.neighbours(tokens)
    assert found and len(set(found)) == len(found) and tokens not in found
    for other in found:
        assert space.validate(other) == other
    if case_of(name, index).table_rows:  # table rows, nearest first
        steps = [distance(space.canonical(tokens), other) for other in found]
        assert steps == sorted(steps) and steps[0] >= 1
    else:  # every valid sequence one decision away, and nothing else
        one_away = {tokens[:i] + (v,) + tokens[i + 1:] for i, d in enumerate(space.decisions)
                    for v in range(d.size) if v != tokens[i]}
        assert set(found) == {t for t in one_away if is_valid(space, t)}


BUILDERS = [p for p in PARAMS if CASES.get(p.values[0]) and case_of(*p.values).input_shape]


@pytest.mark.parametrize("name, index", BUILDERS)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_networks_run_forward_and_twins_compute_the_same_function(name, index, data):
    space, shape = space_of(name, index), case_of(name, index).input_shape
    tokens = data.draw(architectures(space))
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(0))
    outputs = []
    for version in (tokens, space.canonical(tokens)):
        torch.manual_seed(0)
        model = space.build(version, shape, 3).eval()
        with torch.no_grad():
            outputs.append(model(x))
    for out in outputs:
        assert out.shape == (2, 3) and torch.isfinite(out).all()
    if case_of(name, index).identical_twins:
        torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)


@pytest.mark.parametrize("name, index", BUILDERS)
@pytest.mark.parametrize("mode", ["qat", "ptq"])
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_quantised_network_saved_and_loaded_is_the_same_network(tmp_path_factory, name, index, mode, data):
    """What retrain saves and export loads: the network its spec describes, quantised as it was
    trained (a space's spec that left the bits out rebuilt a float network, whose weights did not load)."""
    from nasforge.quant.layers import calibrate
    from nasforge.quant.training import is_quantised, quantize_network
    from nasforge.report.model_files import load_model_dir, save_model

    space, shape = space_of(name, index), case_of(name, index).input_shape
    tokens = data.draw(architectures(space))
    torch.manual_seed(0)
    model = space.build(tokens, shape, 3)
    if not is_quantised(model):  # mixed precision: bits chosen by the architecture itself
        quantize_network(model, {"weight_bits": data.draw(st.sampled_from([1, 2, 4, 8])), "activation_bits": 8})
    x = torch.randn(16, *shape, generator=torch.Generator().manual_seed(1))
    if mode == "ptq":
        calibrate(model, x)
    model.eval()
    folder = tmp_path_factory.mktemp("saved")
    save_model(model, folder, {"tokens": list(tokens)})
    loaded, _ = load_model_dir(folder)
    assert is_quantised(loaded) and loaded.spec["quant"] == model.spec["quant"]
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_which_spaces_build_networks_is_declared_right():
    """A case without ``input_shape`` must be a space that cannot build (else its build goes untested)."""
    for name in SPACES.builtins:
        for case in CASES.get(name, []):
            builds = type(case.make()).build is not SearchSpace.build
            assert builds == (case.input_shape is not None), name

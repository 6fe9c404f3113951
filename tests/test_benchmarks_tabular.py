"""Tabular benchmarks: lookups against the raw files, the NB-201 op mapping, isomorphism, safety."""

from __future__ import annotations

import itertools
import os
import pickle
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import nasforge.tables  # noqa: F401  (registration)
from nasforge.tables import nb201, nb201_evidence, nbgraph
from nasforge.tables.safe_pickle import NUMPY_SCALARS, UnsafePickleError, restricted_load
from nasforge.estimators.base import TrialFailed, create_estimator
from nasforge.spaces.base import InvalidArchitectureError, create_space

NBGRAPH = [f"nbgraph-{d}" for d in nbgraph.DATASETS]
ALL_SPACES = ["nb201-cifar10", *NBGRAPH]


# ---- the restricted unpickler ----------------------------------------------------------------------


class _Evil:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_restricted_unpickler_refuses_os_system(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"cell": _Evil(f"touch {marker}")})
    with pytest.raises(UnsafePickleError, match="system"):
        restricted_load(payload, NUMPY_SCALARS)
    assert not marker.exists()
    evil_file = tmp_path / "data.anb"
    evil_file.write_bytes(payload)
    with pytest.raises(UnsafePickleError):
        nb201.NB201Space(data_file=str(evil_file)).lookup((0,) * 6)
    assert not marker.exists()


def test_restricted_unpickler_refuses_other_globals_and_object_dtypes():
    with pytest.raises(UnsafePickleError, match="eval"):
        restricted_load(pickle.dumps(_Reduce(eval, ("1+1",))), NUMPY_SCALARS)
    with pytest.raises(UnsafePickleError):
        restricted_load(pickle.dumps(np.dtype(object)), NUMPY_SCALARS)
    assert restricted_load(pickle.dumps({"a": np.float64(2.5)}), NUMPY_SCALARS) == {"a": 2.5}


class _Reduce:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


# ---- NAS-Bench-201 ---------------------------------------------------------------------------------


class _Record:
    """The test's own stand-in for the file's classes: keeps attributes, nothing else."""

    def __setstate__(self, state):
        self.__dict__.update(state)


@pytest.fixture(scope="module")
def nb201_raw():
    """The raw file, read independently of nb201.read_raw (same allow-list idea, own classes)."""
    allowed = {("analognasbench.data", "Architecture"): _Record,
               ("analognasbench.data", "DriftMeasurement"): _Record}
    data = restricted_load(nb201.data_path(), allowed)
    assert len(data) == 5 ** 6
    return data


@pytest.fixture(scope="module")
def nb201_space():
    return create_space("nb201-cifar10")


# The mapping as documented in docs/benchmarks-data.md, written out independently of the module.
FILE_POSITIONS = {"edge_1<-0": 0, "edge_2<-0": 1, "edge_3<-0": 2, "edge_2<-1": 3, "edge_3<-1": 4,
                  "edge_3<-2": 5}
FILE_IDS = {"skip_connect": 0, "none": 1, "nor_conv_3x3": 2, "nor_conv_1x1": 3, "avg_pool_3x3": 4}


def _file_key(space, tokens):
    key = [None] * 6
    for name, op in space.encode(tokens).items():
        key[FILE_POSITIONS[name]] = FILE_IDS[op]
    return tuple(key)


def test_nb201_lookups_match_the_raw_file(nb201_space, nb201_raw):
    estimator = create_estimator("tabular")
    estimator.setup(nb201_space)
    rng = np.random.default_rng(0)
    for _ in range(200):
        tokens = nb201_space.sample(rng)
        record = nb201_raw[_file_key(nb201_space, tokens)].__dict__
        metrics = estimator.evaluate(tokens, seed=123)
        assert metrics["fp_acc"] == pytest.approx(record["baseline_accuracy"] / 100)
        assert metrics["val_acc"] == metrics["test_acc"] == metrics["fp_acc"]
        assert metrics["ptq_acc"] == pytest.approx(record["ptq_accuracy"] / 100)
        assert metrics["qat_acc"] == pytest.approx(record["qat_accuracy"] / 100)
        assert metrics["noisy_acc"] == pytest.approx(record["noisy_accuracy"] / 100)
        assert metrics["analog_acc"] == pytest.approx(record["analog_accuracy"] / 100)
        drift = record["analog_drift_86400"].__dict__
        assert metrics["analog_drift_86400s"] == pytest.approx(drift["value"] / 100)
        assert metrics["analog_drift_86400s_std"] == pytest.approx(drift["uncertainty"] / 100)
        assert metrics["simulated_seconds"] == 1.0
        assert all(0.0 <= metrics[k] <= 1.0 for k in ("val_acc", "ptq_acc", "analog_acc"))
    table = nb201_space.all_metrics()
    assert table["tokens"].shape == (5 ** 6, 6)
    row = 4321
    tokens = tuple(table["tokens"][row])
    assert table["qat_acc"][row] == pytest.approx(nb201_raw[_file_key(nb201_space, tokens)].qat_accuracy / 100)


def test_nb201_op_mapping_evidence(nb201_raw, nb201_space):
    raw = {k: {a: ((v.value, v.uncertainty) if isinstance(v, _Record) else v)
               for a, v in r.__dict__.items()} for k, r in nb201_raw.items()}
    ev = nb201_evidence.op_mapping_evidence(raw)
    uniform = ev["uniform_cell_fp_acc"]
    # the all-"1" cell is at chance: 1 is "none"
    assert ev["none_id"] == 1 and uniform[1] == 10.0
    # all-conv cells are best, 3x3 above 1x1; the parameter-free ops are far lower
    assert uniform[2] > uniform[3] > 85 > 65 > uniform[0] > uniform[4] > 10
    # alone on the direct edge: conv3x3 > conv1x1 > identity > pooling
    direct = ev["direct_edge_only_fp_acc"]
    assert direct[2] > direct[3] > direct[0] > direct[4] > 70
    # only with 0 as the identity do same-function cells agree to training noise
    spread = ev["pooled_std_if_identity"]
    assert spread[0] < 0.5 and min(spread[2], spread[3], spread[4]) > 1.5
    # the connecting position sets are the input-output paths of the file's edge order
    assert sorted(ev["connecting_position_sets"]) == ev["paths_of_file_edge_order"]
    assert ev["paths_of_file_edge_order"] != ev["paths_of_nb201_string_order"]
    # chance cells are exactly the ones whose output is cut off from the input
    assert ev["chance_cells"] == 341 and ev["chance_cells_are_the_disconnected_ones"]
    assert ev["function_classes"] == 4930
    # isomorphic cells were measured separately
    assert ev["multi_cell_classes_with_identical_fp_acc"] == 0
    # best full-precision accuracy: 94.07 %
    assert round(ev["best_fp_acc"], 2) == 94.07
    best = nb201_space.best("fp_acc")
    assert round(best["fp_acc"] * 100, 2) == 94.07
    assert _file_key(nb201_space, best["tokens"]) == ev["best_fp_key"] == (2, 2, 0, 2, 3, 2)
    assert nb201_space.arch_str(best["tokens"]) == (
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+"
        "|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|")
    assert nb201_space.from_arch_str(nb201_space.arch_str(best["tokens"])) == best["tokens"]


def _cell(space, **ops):
    values = {d.name: "none" for d in space.decisions}
    values.update({f"edge_{k[1]}<-{k[2]}": v for k, v in ops.items()})
    return space.decode(values)


def test_nb201_hash_equal_exactly_for_isomorphic_cells(nb201_space):
    s = nb201_space
    h = s.arch_hash
    conv3 = _cell(s, e30="nor_conv_3x3")
    # a skip on the way does not change the function; neither does the order of a sum
    assert h(conv3) == h(_cell(s, e10="skip_connect", e31="nor_conv_3x3"))
    a = _cell(s, e10="skip_connect", e20="nor_conv_1x1", e21="nor_conv_3x3", e32="skip_connect")
    b = _cell(s, e10="skip_connect", e20="nor_conv_3x3", e21="nor_conv_1x1", e32="skip_connect")
    assert a != b and h(a) == h(b)
    # everything cut off from the input is one class
    assert h(_cell(s)) == h(_cell(s, e10="nor_conv_3x3", e21="avg_pool_3x3"))
    # different functions hash differently
    assert h(conv3) != h(_cell(s, e30="nor_conv_1x1"))
    assert h(_cell(s, e30="skip_connect")) != h(_cell(s, e30="skip_connect", e10="skip_connect",
                                                      e31="skip_connect"))
    assert h(_cell(s, e10="nor_conv_3x3", e21="avg_pool_3x3", e32="skip_connect")) != h(
        _cell(s, e10="avg_pool_3x3", e21="nor_conv_3x3", e32="skip_connect"))

    # exhaustively: equal hashes <=> equal outputs with random nonlinear maps for the ops
    rng = np.random.default_rng(1)
    x = rng.normal(size=6)
    maps = {op: rng.normal(size=(6, 6)) for op in ("nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")}

    def output(tokens):
        ops = s.encode(tokens)
        value = {0: x}
        for node in (1, 2, 3):
            total = np.zeros(6)
            for src in range(node):
                op = ops[f"edge_{node}<-{src}"]
                if op == "skip_connect":
                    total = total + value[src]
                elif op != "none":
                    total = total + np.tanh(maps[op] @ value[src])
            value[node] = total
        return tuple(np.round(value[3], 9))

    by_output, by_hash = {}, {}
    for tokens in itertools.product(range(5), repeat=6):
        by_output.setdefault(output(tokens), set()).add(tokens)
        by_hash.setdefault(s.arch_hash(tokens), set()).add(tokens)
    assert len(by_hash) == 4930
    assert sorted(map(sorted, by_output.values())) == sorted(map(sorted, by_hash.values()))


def test_nb201_notes_and_estimator_guards(nb201_space):
    assert "no separate validation" in nb201_space.notes
    estimator = create_estimator("tabular", seconds_per_query=30.0)
    estimator.setup(nb201_space)
    assert estimator.evaluate((0,) * 6, seed=0)["simulated_seconds"] == 30.0
    assert estimator.evaluate((0,) * 6, seed=0)["val_acc"] == 0.10  # all-none cell: chance
    with pytest.raises(TrialFailed):
        estimator.evaluate((0, 0, 0, 0, 0, 5), seed=0)
    with pytest.raises(ValueError):
        create_estimator("tabular").setup(create_space("chain-cnn"))
    assert nb201_space.table() is nb201_space.table()  # cached


# ---- NAS-Bench-Graph -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def package_bench():
    """The package's own reader and key, as an independent oracle (its module is light)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from nas_bench_graph import Arch, light_read

        return Arch, {d: light_read(d) for d in nbgraph.DATASETS}


def _arch_args(space, tokens):
    values = space.encode(tokens)
    wiring = [0, values["in_2"], values["in_3"], values["in_4"]]
    return wiring, [values[f"op_{i}"] for i in (1, 2, 3, 4)]


@pytest.mark.parametrize("name", NBGRAPH)
def test_nbgraph_lookups_match_the_package(name, package_bench):
    Arch, benches = package_bench
    space = create_space(name)
    bench = benches[space.dataset]
    estimator = create_estimator("tabular")
    estimator.setup(space)
    rng = np.random.default_rng(len(name))
    for _ in range(40):
        tokens = space.sample(rng)
        row = bench[Arch(*_arch_args(space, tokens)).valid_hash()]
        metrics = estimator.evaluate(tokens, seed=0)
        assert metrics["val_acc"] == pytest.approx(float(row["valid_perf"]))
        assert metrics["test_acc"] == pytest.approx(float(row["perf"]))
        assert metrics["latency_s"] == pytest.approx(float(row["latency"]))
        assert metrics["params_m"] == pytest.approx(float(row["para"]))
        assert metrics["params"] == round(float(row["para"]) * 1e6)
        assert metrics["simulated_seconds"] == 1.0
        assert 0.0 <= metrics["val_acc"] <= 1.0 and 0.0 <= metrics["test_acc"] <= 1.0
    table = space.all_metrics()
    assert len(table["val_acc"]) == len(bench) == (2021 if space.dataset == "proteins" else 26206)
    assert sorted(table["key"].tolist()) == sorted(bench)
    for row in (0, len(bench) // 2, len(bench) - 1):
        tokens = tuple(table["tokens"][row])
        assert space.benchmark_key(tokens) == table["key"][row]
        assert space.lookup(tokens)["test_acc"] == table["test_acc"][row]
    best = space.best("val_acc")
    assert best["val_acc"] == max(float(r["valid_perf"]) for r in bench.values())


def test_nbgraph_key_equals_valid_hash_on_many_architectures(package_bench):
    Arch, _ = package_bench
    rng = np.random.default_rng(7)
    for _ in range(4000):
        wiring = (0, int(rng.integers(2)), int(rng.integers(3)), int(rng.integers(4)))
        ops = tuple(int(o) for o in rng.integers(9, size=4))
        if all(o == nbgraph.SKIP for o in ops):
            continue
        expected = Arch(list(wiring), [nbgraph.GNN_OPS[o] for o in ops]).valid_hash()
        assert nbgraph.benchmark_key(wiring, ops) == expected


def _relabelled(tokens, rng):
    """The same GNN with its layers renumbered (a random topological order)."""
    reads = [0, tokens[1], tokens[3], tokens[5]]
    ops = [tokens[0], tokens[2], tokens[4], tokens[6]]
    placed, order = {0: 0}, []
    while len(order) < 4:
        ready = [i for i in range(4) if i not in order and reads[i] in placed]
        pick = ready[int(rng.integers(len(ready)))]
        order.append(pick)
        placed[pick + 1] = len(order)
    new_reads = [placed[reads[i]] for i in order]
    new_ops = [ops[i] for i in order]
    return (new_ops[0], new_reads[1], new_ops[1], new_reads[2], new_ops[2], new_reads[3], new_ops[3])


def test_nbgraph_hash_equal_exactly_for_isomorphic_architectures(package_bench):
    Arch, _ = package_bench
    space = create_space("nbgraph-cora")
    ops = {name: i for i, name in enumerate(space.op_names)}
    gcn, gat, gin, sage, skip = ops["gcn"], ops["gat"], ops["gin"], ops["sage"], ops["skip"]
    # four parallel layers on the input: any order is the same network
    base = (gcn, 0, gat, 0, gin, 0, sage)
    for perm in itertools.permutations((gcn, gat, gin, sage)):
        assert space.arch_hash((perm[0], 0, perm[1], 0, perm[2], 0, perm[3])) == space.arch_hash(base)
    assert space.arch_hash(base) != space.arch_hash((gcn, 0, gat, 0, gin, 0, gin))
    # a chain is not the same as parallel layers
    assert space.arch_hash((gcn, 1, gat, 2, gin, 3, sage)) != space.arch_hash(base)
    # a skip layer between two layers only forwards: same as reading the earlier layer directly
    assert space.benchmark_key((gcn, 1, skip, 2, gat, 0, gin)) == space.benchmark_key(
        (gcn, 1, gat, 0, skip, 0, gin))
    rng = np.random.default_rng(3)
    for _ in range(300):
        tokens = space.sample(rng)
        other = _relabelled(tokens, rng)
        assert space.arch_hash(tokens) == space.arch_hash(other)
        assert space.lookup(tokens) == space.lookup(other)
    # equal arch_hash <=> equal valid_hash, on random pairs that collide often (few layer choices)
    small = [t for t in itertools.product([gcn, skip], [0, 1], [gcn, skip], [0, 1, 2], [gcn, skip],
                                          [0, 1, 2, 3], [gcn, skip]) if not all(
        t[i] == skip for i in (0, 2, 4, 6))]
    ours = {t: space.arch_hash(t) for t in small}
    theirs = {t: Arch(*_arch_args(space, t)).valid_hash() for t in small}
    for a, b in itertools.combinations(small[::3], 2):
        assert (ours[a] == ours[b]) == (theirs[a] == theirs[b])


def test_nbgraph_rejects_all_skip_and_stays_valid():
    space = create_space("nbgraph-proteins")
    assert space.op_names == ("gcn", "sage", "arma", "fc", "skip")
    skip = space.op_names.index("skip")
    all_skip = (skip, 0, skip, 1, skip, 2, skip)
    with pytest.raises(InvalidArchitectureError, match="skip"):
        space.validate(all_skip)
    estimator = create_estimator("tabular")
    estimator.setup(space)
    with pytest.raises(TrialFailed):
        estimator.evaluate(all_skip, seed=0)
    near = (skip, 0, skip, 1, skip, 2, 0)
    assert all_skip not in space.neighbours(near)
    rng = np.random.default_rng(0)
    for _ in range(200):
        near = space.mutate(near, rng)
        space.validate(near)
    assert "roc_auc" in space.notes


# ---- properties over every space -------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(ALL_SPACES), data=st.data())
def test_encode_decode_round_trip_and_canonical_is_stable(name, data):
    space = create_space(name)
    tokens = tuple(data.draw(st.integers(0, d.size - 1), label=d.name) for d in space.decisions)
    try:
        space.validate(tokens)
    except InvalidArchitectureError:
        assume(False)
    assert space.decode(space.encode(tokens)) == tokens
    canonical = space.canonical(tokens)
    assert space.canonical(canonical) == canonical
    assert space.arch_hash(canonical) == space.arch_hash(tokens)
    if name.startswith("nbgraph"):
        assert space.lookup(canonical) == space.lookup(tokens)

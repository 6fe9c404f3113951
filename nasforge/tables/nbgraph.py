"""NAS-Bench-Graph: a four-layer GNN space measured on nine graph datasets.

Each of the four layers picks its input (the pre-processed node features, called 0 here, or an
earlier layer) and an operation; layers nobody consumes feed the output. The tables are the
"light" pickles shipped in the PyPI package ``nas-bench-graph==1.4.0`` (``light/<dataset>.bench``):
a dict from the benchmark's architecture key to validation and test performance, inference
latency and parameter count. The package's module is not used: we read the pickles with a
restricted unpickler and compute the key ourselves (``benchmark_key`` follows the package's
``Arch.valid_hash``, so isomorphic architectures share one key and one row).
"""

from __future__ import annotations

import importlib.util
import itertools
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..spaces.base import SPACES, Decision, InvalidArchitectureError, Tokens
from .base import TabularSpace
from .safe_pickle import NUMPY_SCALARS, restricted_load

DATASETS: Tuple[str, ...] = (
    "cora", "citeseer", "pubmed", "cs", "physics", "photo", "computers", "arxiv", "proteins",
)
# The benchmark's operation list; an operation's position is its digit in the key.
GNN_OPS: Tuple[str, ...] = ("gat", "gcn", "gin", "cheb", "sage", "arma", "graph", "fc", "skip")
# ogbn-proteins was only measured with these five (established from the table's keys).
PROTEINS_OPS: Tuple[str, ...] = ("gcn", "sage", "arma", "fc", "skip")
# The nine wiring shapes the benchmark keeps (input of layers 1..4); a key starts with the index.
SHAPES: Tuple[Tuple[int, int, int, int], ...] = (
    (0, 0, 0, 0), (0, 0, 0, 1), (0, 0, 1, 1), (0, 0, 1, 2), (0, 0, 1, 3),
    (0, 1, 1, 1), (0, 1, 1, 2), (0, 1, 2, 2), (0, 1, 2, 3),
)
SKIP = GNN_OPS.index("skip")
_RADIX = len(GNN_OPS) + 1
TABLE_SIZE = {"proteins": 2021}
DEFAULT_TABLE_SIZE = 26206
FIELDS = ("valid_perf", "perf", "latency", "para")

Wiring = Tuple[int, int, int, int]
OpIds = Tuple[int, int, int, int]


# ---- the benchmark's canonical form ---------------------------------------------------------------
# The benchmark identifies an architecture by (shape, ops) after three rewrites: relabel the layers
# so the wiring is one of SHAPES; move "skip" layers that only forward a tensor to the front; sort
# interchangeable sibling branches. The result must equal the package's Arch.valid_hash exactly,
# quirks included, because the table is keyed by it; tests compare the two on every architecture.


def _relabel(wiring: Wiring, ops: OpIds, order: Sequence[int]) -> Tuple[Wiring, OpIds]:
    """Renumber layers: new layer j+1 is old layer order[j]+1."""
    new_number = {old + 1: new + 1 for new, old in enumerate(order)}
    new_number[0] = 0
    return (tuple(new_number[wiring[old]] for old in order),  # type: ignore[return-value]
            tuple(ops[old] for old in order))


def _standard_shape(wiring: Wiring, ops: OpIds) -> Tuple[Wiring, OpIds]:
    """The first relabelling (in permutation order) whose wiring is one of SHAPES."""
    if wiring in SHAPES:
        return wiring, ops
    for order in itertools.permutations(range(4)):
        new_wiring, new_ops = _relabel(wiring, ops, order)
        if new_wiring in SHAPES:
            return new_wiring, new_ops
    raise InvalidArchitectureError(f"wiring {wiring} has no standard shape")


def _only_skips_above(wiring: Sequence[int], ops: Sequence[int], position: int) -> bool:
    """Is every layer from ``position`` back to the input a skip?"""
    while position >= 0:
        if ops[position] != SKIP:
            return False
        position = wiring[position] - 1
    return True


def _move_to_front(wiring: List[int], ops: List[int], position: int) -> Tuple[List[int], List[int]]:
    """Make skip layer ``position`` the first layer, reading the input.

    Layers it fed now read what it read; every other layer's reference is renumbered, where the
    benchmark points readers of the input (0) at the moved skip layer (1) — the same tensor.
    """
    source = wiring[position]
    new_wiring, new_ops = [0], [ops[position]]
    for j in range(4):
        if j == position:
            continue
        reads = wiring[j]
        if reads == position + 1:
            reads = source
        new_wiring.append(reads + 1 if reads <= position else reads)
        new_ops.append(ops[j])
    return new_wiring, new_ops


def _hoist_skips(wiring: Wiring, ops: OpIds) -> Tuple[Wiring, OpIds]:
    """Move forwarding skip layers to the front, visiting positions 0..3 of the current lists."""
    w, o = list(wiring), list(ops)
    for position in range(4):
        if o[position] != SKIP:
            continue
        feeds_a_layer = (position + 1) in w
        has_sibling = any(j != position and w[j] == w[position] for j in range(4))
        if feeds_a_layer or not has_sibling or _only_skips_above(w, o, position):
            w, o = _move_to_front(w, o, position)
    return tuple(w), tuple(o)  # type: ignore[return-value]


def _sort_siblings(wiring: Wiring, ops: OpIds) -> OpIds:
    """Order interchangeable sibling branches (same parent, same shape) by their op ids.

    In the nine standard shapes such branches are single layers or two-layer chains, so a
    branch's ops in position order line up with any same-shaped sibling's.
    """
    children: Dict[int, List[int]] = {node: [] for node in range(5)}
    for position, reads in enumerate(wiring):
        children[reads].append(position + 1)

    def shape(node: int) -> Tuple:
        return tuple(sorted(shape(c) for c in children[node]))

    def branch(node: int) -> List[int]:
        nodes, stack = [], [node]
        while stack:
            n = stack.pop()
            nodes.append(n)
            stack.extend(children[n])
        return sorted(nodes)

    result = list(ops)
    for parent in range(5):
        groups: Dict[Tuple, List[int]] = {}
        for child in children[parent]:
            groups.setdefault(shape(child), []).append(child)
        for members in groups.values():
            if len(members) < 2:
                continue
            slots = [branch(m) for m in sorted(members)]
            contents = sorted([result[n - 1] for n in slot] for slot in slots)
            for slot, content in zip(slots, contents):
                for n, op in zip(slot, content):
                    result[n - 1] = op
    return tuple(result)  # type: ignore[return-value]


def canonical_form(wiring: Sequence[int], ops: Sequence[int]) -> Tuple[Wiring, OpIds]:
    """The benchmark's representative (wiring in SHAPES, GNN_OPS ids) of an architecture."""
    w, o = _standard_shape(tuple(wiring), tuple(ops))  # type: ignore[arg-type]
    w, o = _hoist_skips(w, o)
    w, o = _standard_shape(w, o)
    return w, _sort_siblings(w, o)


def benchmark_key(wiring: Sequence[int], ops: Sequence[int]) -> int:
    """The table key: shape index, then one base-10 digit per op (GNN_OPS ids)."""
    w, o = canonical_form(wiring, ops)
    key = SHAPES.index(w)
    for op in o:
        key = key * _RADIX + op
    return key


def decode_key(key: int) -> Tuple[Wiring, OpIds]:
    ops = []
    for _ in range(4):
        key, digit = divmod(key, _RADIX)
        ops.append(digit)
    return SHAPES[key], tuple(reversed(ops))  # type: ignore[return-value]


# ---- reading the files --------------------------------------------------------------------------------


def data_dir() -> Path:
    """Folder of the light tables, found without importing the package's module."""
    spec = importlib.util.find_spec("nas_bench_graph")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "NAS-Bench-Graph data not found: pip install --no-deps nas-bench-graph==1.4.0"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "light"


def read_raw(dataset: str, folder: Optional[Path] = None) -> Dict[int, Dict[str, float]]:
    """One light table as plain data: key -> {valid_perf, perf, latency, para} as floats."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown NAS-Bench-Graph dataset {dataset!r}; choose from {DATASETS}")
    path = (folder or data_dir()) / f"{dataset}.bench"
    data = restricted_load(path, NUMPY_SCALARS)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a dict, got {type(data).__name__}")
    raw = {}
    for key, row in data.items():
        if not isinstance(key, int) or not isinstance(row, dict) or set(row) != set(FIELDS):
            raise ValueError(f"{path}: unexpected entry {key!r}: {row!r}")
        raw[key] = {f: float(row[f]) for f in FIELDS}
    expected = TABLE_SIZE.get(dataset, DEFAULT_TABLE_SIZE)
    if len(raw) != expected:
        raise ValueError(f"{path}: expected {expected} architectures, found {len(raw)}")
    return raw


class _Table:
    """One dataset's table as arrays, rows in increasing key order."""

    def __init__(self, raw: Dict[int, Dict[str, float]], op_names: Sequence[str]):
        keys = np.array(sorted(raw), dtype=np.int64)
        rows = [raw[int(k)] for k in keys]
        para = np.array([r["para"] for r in rows])
        self.columns: Dict[str, np.ndarray] = {
            "val_acc": np.array([r["valid_perf"] for r in rows]),
            "test_acc": np.array([r["perf"] for r in rows]),
            "latency_s": np.array([r["latency"] for r in rows]),
            "latency_ms": np.array([r["latency"] * 1e3 for r in rows]),  # the unit trained children report
            "params_m": para,
            "params": np.rint(para * 1e6).astype(np.int64),
        }
        local = {GNN_OPS.index(name): i for i, name in enumerate(op_names)}
        tokens = []
        for key in keys.tolist():
            wiring, ops = decode_key(key)
            tokens.append(_tokens_of(wiring, [local[o] for o in ops]))
        self.tokens = np.array(tokens, dtype=np.int64)
        self.keys = keys
        self.row_of = {int(k): i for i, k in enumerate(keys.tolist())}
        for array in (*self.columns.values(), self.tokens, self.keys):
            array.setflags(write=False)


def _tokens_of(wiring: Sequence[int], local_ops: Sequence[int]) -> Tokens:
    return (local_ops[0], wiring[1], local_ops[1], wiring[2], local_ops[2], wiring[3], local_ops[3])


_LOCK = threading.Lock()


@lru_cache(maxsize=None)
def _load_table(dataset: str, folder: str, op_names: Tuple[str, ...]) -> _Table:
    with _LOCK:
        return _Table(read_raw(dataset, Path(folder)), op_names)


# ---- the space ----------------------------------------------------------------------------------------


class NBGraphSpace(TabularSpace):
    """Layer i chooses ``in_i`` (0 = input features, k = layer k; layer 1 always reads 0) and
    ``op_i``. Decisions, in order: op_1, in_2, op_2, in_3, op_3, in_4, op_4. The architecture
    with four skip layers is not in the benchmark and is rejected."""

    dataset: str = ""
    seconds_per_query = 1.0

    def __init__(self, data_dir: Optional[str] = None):
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown NAS-Bench-Graph dataset {self.dataset!r}")
        self._folder = data_dir
        self.op_names: Tuple[str, ...] = PROTEINS_OPS if self.dataset == "proteins" else GNN_OPS
        self.score_name = "roc_auc" if self.dataset == "proteins" else "accuracy"
        self._skip = self.op_names.index("skip")
        decisions = [Decision("op_1", self.op_names, layer=1)]
        for layer in (2, 3, 4):
            decisions.append(Decision(f"in_{layer}", tuple(range(layer)), layer=layer))
            decisions.append(Decision(f"op_{layer}", self.op_names, layer=layer))
        self._decisions = decisions
        self.notes = (
            f"Table: nas-bench-graph 1.4.0 light/{self.dataset}.bench, one row per isomorphism "
            f"class ({TABLE_SIZE.get(self.dataset, DEFAULT_TABLE_SIZE)} rows). val_acc / test_acc "
            f"are the table's valid_perf / perf ({self.score_name}"
            + (", ogbn-proteins' official metric; the file does not name it" if self.dataset == "proteins" else "")
            + "). latency_s: the stored latency (seconds), latency_ms: the same in milliseconds (the "
            "unit of measured latencies, so one constraint reads alike on every space); params_m: the "
            "stored parameter count "
            "in millions, params: the same as a count. No training time is stored: a query "
            "costs a constant 1 simulated second."
        )

    @property
    def decisions(self) -> List[Decision]:
        return list(self._decisions)

    def config(self) -> Dict[str, Any]:
        return {}

    def validate(self, tokens: Sequence[int]) -> Tokens:
        tokens = super().validate(tokens)
        if all(tokens[i] == self._skip for i in (0, 2, 4, 6)):
            raise InvalidArchitectureError(
                "all four layers are skip: NAS-Bench-Graph excludes that architecture"
            )
        return tokens

    def wiring_and_ops(self, tokens: Sequence[int]) -> Tuple[Wiring, OpIds]:
        """(input of each layer, GNN_OPS id of each layer)."""
        t = self.validate(tokens)
        wiring = (0, t[1], t[3], t[5])
        ops = tuple(GNN_OPS.index(self.op_names[t[i]]) for i in (0, 2, 4, 6))
        return wiring, ops  # type: ignore[return-value]

    def benchmark_key(self, tokens: Sequence[int]) -> int:
        """The package's ``Arch(...).valid_hash()`` for these tokens."""
        return benchmark_key(*self.wiring_and_ops(tokens))

    def canonical(self, tokens: Sequence[int]) -> Tokens:
        """Tokens of the benchmark's representative: equal exactly for equal benchmark keys."""
        wiring, ops = canonical_form(*self.wiring_and_ops(tokens))
        return _tokens_of(wiring, [self.op_names.index(GNN_OPS[o]) for o in ops])

    def table(self) -> _Table:
        folder = Path(self._folder) if self._folder else data_dir()
        return _load_table(self.dataset, str(folder.resolve()), self.op_names)

    def lookup(self, tokens: Sequence[int]) -> Dict[str, float]:
        table = self.table()
        key = self.benchmark_key(tokens)
        try:
            row = table.row_of[key]
        except KeyError:
            raise InvalidArchitectureError(f"benchmark key {key} is not in {self.name}'s table") from None
        return {name: column[row].item() for name, column in table.columns.items()}

    def all_metrics(self) -> Dict[str, np.ndarray]:
        table = self.table()
        return {**table.columns, "key": table.keys, "tokens": table.tokens}

    # ---- keep sampling and mutation inside the benchmark ------------------------------------------
    def allowed_next(self, prefix: Sequence[int]) -> Optional[Tuple[int, ...]]:
        """What the decision after ``prefix`` may be (None: anything): op_4 may not be skip after
        three skip layers. Controllers mask their choices with it, so that they, like sample and
        mutate, never propose the all-skip network the table lacks (and are never charged for it)."""
        if len(prefix) == 6 and all(prefix[i] == self._skip for i in (0, 2, 4)):
            return tuple(v for v in range(len(self.op_names)) if v != self._skip)
        return None

    def sample(self, rng: np.random.Generator) -> Tokens:
        while True:
            tokens = tuple(int(rng.integers(d.size)) for d in self._decisions)
            if not all(tokens[i] == self._skip for i in (0, 2, 4, 6)):
                return tokens

    def mutate(self, tokens: Sequence[int], rng: np.random.Generator) -> Tokens:
        while True:
            candidate = super().mutate(tokens, rng)
            if not all(candidate[i] == self._skip for i in (0, 2, 4, 6)):
                return candidate

    def neighbours(self, tokens: Sequence[int]) -> List[Tokens]:
        return [t for t in super().neighbours(tokens)
                if not all(t[i] == self._skip for i in (0, 2, 4, 6))]

    def describe(self, tokens: Sequence[int]) -> List[str]:
        t = self.validate(tokens)
        reads = (0, t[1], t[3], t[5])
        names = [self.op_names[t[i]] for i in (0, 2, 4, 6)]
        used = set(reads)
        lines = [f"layer{i + 1} = {names[i]}({'input' if reads[i] == 0 else f'layer{reads[i]}'})"
                 for i in range(4)]
        lines.append("read by no layer: " + ", ".join(f"layer{i}" for i in range(1, 5) if i not in used))
        return lines


def _register(dataset: str) -> type:
    cls = type(f"NBGraph{dataset.capitalize()}Space", (NBGraphSpace,),
               {"dataset": dataset, "name": f"nbgraph-{dataset}", "__module__": __name__,
                "__doc__": f"NAS-Bench-Graph on {dataset}."})
    return SPACES.register(f"nbgraph-{dataset}")(cls)


SPACE_CLASSES: Dict[str, type] = {d: _register(d) for d in DATASETS}

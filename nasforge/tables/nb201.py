"""NAS-Bench-201 cell space on CIFAR-10, with the measurements shipped by ``analog-nasbench``.

The cell has input node 0, intermediate nodes 1 and 2, and output node 3; each of its six edges
``j <- i`` carries one of five operations and a node is the sum of its incoming edges. The table
is the pickle ``analognasbench/data.anb`` from the PyPI package ``analog-nasbench==0.1.3``: for all
15,625 cells a full-precision accuracy, post-training-quantised and quantisation-aware-trained
accuracies, two accuracies under the benchmark's analog-hardware simulation, and accuracies
after conductance drift. The file keys each cell by six integers whose meaning it does not
state; the mapping used here was derived from the data (``nb201_evidence.op_mapping_evidence``
evidence, and ``docs/benchmarks-data.md`` records it). We never import the package's module: it
needs ``pkg_resources``, and its loader runs a bare ``pickle.load``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..objectives.registry import register_metric
from ..spaces.base import SPACES, Decision, InvalidArchitectureError
from .base import TabularSpace
from .safe_pickle import PlainRecord, restricted_load

# Decision order: node by node, as in NB-201's own architecture strings ("|op~0|+|op~0|op~1|+...").
EDGES: Tuple[Tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
OPS: Tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")

# How the file writes a cell (derived from the data; see nb201_evidence.py): its six positions
# are the edges grouped by source node, and its integers name operations as below.
FILE_EDGES: Tuple[Tuple[int, int], ...] = ((1, 0), (2, 0), (3, 0), (2, 1), (3, 1), (3, 2))
FILE_OP_IDS: Dict[str, int] = {
    "skip_connect": 0,
    "none": 1,
    "nor_conv_3x3": 2,
    "nor_conv_1x1": 3,
    "avg_pool_3x3": 4,
}

# The mapping was derived from exactly this file; another file would need the evidence rerun.
DATA_SHA256 = "85f3435b877aa2d36268d55ce07f6ff6d73643d17a840f1941745da5eb80db32"
NUM_CELLS = 5 ** 6

# metric name here -> attribute in the file (accuracies there are percentages)
ACCURACY_FIELDS: Dict[str, str] = {
    "fp_acc": "baseline_accuracy",
    "ptq_acc": "ptq_accuracy",
    "qat_acc": "qat_accuracy",
    "noisy_acc": "noisy_accuracy",
    "analog_acc": "analog_accuracy",
}
# What the hardware costs in accuracy: full precision minus the accuracy on that hardware, in
# fractions (positive = a loss; a few cells gain slightly). Minimised against val_acc it gives
# the accuracy / robustness trade-off as a Pareto front of two "both smaller is better" axes.
ACCURACY_DROPS: Dict[str, str] = {"ptq_acc_drop": "ptq_acc", "qat_acc_drop": "qat_acc",
                                  "analog_acc_drop": "analog_acc"}
for _name, _source in ACCURACY_DROPS.items():
    register_metric(_name, "fraction", "minimize", f"fp_acc - {_source}: accuracy lost on that hardware")
DRIFT_TIMES: Tuple[int, ...] = (60, 3600, 86400, 2592000)
DRIFT_FIELDS: Dict[str, str] = {
    f"{kind}_drift_{t}s": f"{kind}_drift_{t}" for kind in ("baseline", "analog") for t in DRIFT_TIMES
}

NOTES = (
    "Table: analog-nasbench 0.1.3 (NAS-Bench-201 cells on CIFAR-10). The file holds one "
    "full-precision accuracy per cell and no separate validation accuracy, and does not say on "
    "which split it was measured: val_acc and test_acc are both that accuracy (fp_acc). "
    "ptq_acc: post-training quantised; qat_acc: quantisation-aware trained (the file does not "
    "record bit widths). noisy_acc: the file's 'noisy_accuracy', which tracks baseline_drift_*; "
    "analog_acc: the file's 'analog_accuracy', which tracks analog_drift_* (the authors' CSV calls "
    "these two 'analog_accuracy' and 'finetuned_accuracy'). *_drift_<t>s: accuracy after t "
    "seconds of simulated conductance drift, *_std its spread as stored. ptq_acc_drop, "
    "qat_acc_drop, analog_acc_drop: fp_acc minus that accuracy (the cost of the hardware). Isomorphic cells were "
    "measured separately, so cells with equal arch_hash can have slightly different numbers. "
    "No training time is stored: a query costs a constant 1 simulated second."
)


# ---- reading the file -------------------------------------------------------------------------------


class _ArchitectureRecord(PlainRecord):
    """Stand-in for ``analognasbench.data.Architecture`` (plain attributes only)."""


class _DriftRecord(PlainRecord):
    """Stand-in for ``analognasbench.data.DriftMeasurement`` (``value``, ``uncertainty``)."""


_ALLOWED = {
    ("analognasbench.data", "Architecture"): _ArchitectureRecord,
    ("analognasbench.data", "DriftMeasurement"): _DriftRecord,
}


def data_path() -> Path:
    """Where pip put ``data.anb``; found without importing the package's module."""
    spec = importlib.util.find_spec("analognasbench")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "NAS-Bench-201 data not found: pip install --no-deps analog-nasbench==0.1.3"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "data.anb"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall analog-nasbench==0.1.3")
    return path


def read_raw(path: Optional[Path] = None) -> Dict[Tuple[int, ...], Dict[str, Any]]:
    """The file as plain data: file key (six ints) -> attribute dict; drift as (value, spread)."""
    data = restricted_load(path or data_path(), _ALLOWED)
    if not isinstance(data, dict):
        raise ValueError(f"expected a dict of cells, got {type(data).__name__}")
    raw = {}
    for key, record in data.items():
        if not isinstance(record, _ArchitectureRecord):
            raise ValueError(f"cell {key!r} is a {type(record).__name__}, not an Architecture")
        fields = {}
        for name, value in record.fields().items():
            if isinstance(value, _DriftRecord):
                value = (float(value.value), float(value.uncertainty))
            fields[name] = value
        raw[key] = fields
    return raw


def file_key(tokens: Sequence[int]) -> Tuple[int, ...]:
    """The file's key for a cell given by tokens (decision order, OPS indices)."""
    ops = {edge: OPS[t] for edge, t in zip(EDGES, tokens)}
    return tuple(FILE_OP_IDS[ops[edge]] for edge in FILE_EDGES)


def _index(tokens: Sequence[int]) -> int:
    index = 0
    for t in tokens:
        index = index * len(OPS) + t
    return index


@lru_cache(maxsize=1)
def _all_tokens() -> np.ndarray:
    """Every cell's tokens, row i being the cell with ``_index == i`` (read-only, shared)."""
    tokens = np.array(list(itertools.product(range(len(OPS)), repeat=len(EDGES))), dtype=np.int64)
    tokens.setflags(write=False)
    return tokens


class _Table:
    """The file as arrays over the 15,625 cells in token order (accuracies as fractions)."""

    def __init__(self, raw: Dict[Tuple[int, ...], Dict[str, Any]]):
        token_of_id = {file_id: OPS.index(name) for name, file_id in FILE_OP_IDS.items()}
        position = [FILE_EDGES.index(edge) for edge in EDGES]
        accuracy = np.full((NUM_CELLS, len(ACCURACY_FIELDS)), np.nan)
        drift = np.full((NUM_CELLS, len(DRIFT_FIELDS), 2), np.nan)
        for key, record in raw.items():
            if len(key) != len(EDGES) or not all(k in token_of_id for k in key):
                raise ValueError(f"unexpected cell key {key!r}")
            row = _index([token_of_id[key[p]] for p in position])
            accuracy[row] = [record[f] for f in ACCURACY_FIELDS.values()]
            drift[row] = [record[f] for f in DRIFT_FIELDS.values()]
        if len(raw) != NUM_CELLS or not (np.isfinite(accuracy).all() and np.isfinite(drift).all()):
            raise ValueError(f"expected finite metrics for all {NUM_CELLS} NB-201 cells")
        columns: Dict[str, np.ndarray] = {}
        for i, name in enumerate(ACCURACY_FIELDS):
            columns[name] = accuracy[:, i] / 100.0
        for i, name in enumerate(DRIFT_FIELDS):
            columns[name] = drift[:, i, 0] / 100.0
            columns[name + "_std"] = drift[:, i, 1] / 100.0
        for name, source in ACCURACY_DROPS.items():
            columns[name] = columns["fp_acc"] - columns[source]
        columns["val_acc"] = columns["fp_acc"]
        columns["test_acc"] = columns["fp_acc"]
        for array in columns.values():
            array.setflags(write=False)
        self.columns = columns
        self.tokens = _all_tokens()


_LOCK = threading.Lock()


@lru_cache(maxsize=4)
def _load_table(path: str, check_hash: bool) -> _Table:
    with _LOCK:
        if check_hash:
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            if digest != DATA_SHA256:
                raise ValueError(
                    f"{path} is not the analog-nasbench 0.1.3 file the op mapping was derived "
                    f"from (sha256 {digest}); rerun nb201_evidence.op_mapping_evidence before trusting it"
                )
        return _Table(read_raw(Path(path)))


# ---- isomorphism --------------------------------------------------------------------------------------


def cell_function(tokens: Sequence[int]) -> str:
    """What the cell computes, as a canonical expression in the input ``x``.

    ``none`` contributes nothing and anything fed only by zeros is zero (NB-201's convention);
    ``skip_connect`` is the identity; a node is a sum, so its terms are a sorted multiset.
    Two cells with equal expressions build the same network; "0" marks an output cut off from
    the input (such cells score chance in the table).
    """
    return named_cell_function([OPS[t] for t in tokens])


@lru_cache(maxsize=1)
def _canonical_rows() -> np.ndarray:
    """For every cell, the index of the smallest cell computing the same function."""
    representative: Dict[str, int] = {}
    rows = np.empty(NUM_CELLS, dtype=np.int64)
    for i, tokens in enumerate(_all_tokens().tolist()):  # increasing index order
        rows[i] = representative.setdefault(cell_function(tokens), i)
    rows.setflags(write=False)
    return rows


# ---- the space ----------------------------------------------------------------------------------------


@SPACES.register("nb201-cifar10")
class NB201Space(TabularSpace):
    """NAS-Bench-201: one decision per edge ``edge_<to><-<from>``, five operations each."""

    name = "nb201-cifar10"
    notes = NOTES
    seconds_per_query = 1.0

    def __init__(self, data_file: Optional[str] = None):
        self._data_file = data_file
        self._decisions = [
            Decision(f"edge_{to}<-{src}", OPS, layer=to) for to, src in EDGES
        ]

    @property
    def decisions(self) -> List[Decision]:
        return list(self._decisions)

    def config(self) -> Dict[str, Any]:
        return {}

    def table(self) -> _Table:
        """The loaded table (cached per process; the file's hash is checked once)."""
        if self._data_file is not None:
            return _load_table(str(Path(self._data_file).resolve()), False)
        return _load_table(str(data_path().resolve()), True)

    def lookup(self, tokens: Sequence[int]) -> Dict[str, float]:
        row = _index(self.validate(tokens))
        return {name: float(column[row]) for name, column in self.table().columns.items()}

    def all_metrics(self) -> Dict[str, np.ndarray]:
        table = self.table()
        return {**table.columns, "tokens": table.tokens}

    def canonical(self, tokens: Sequence[int]) -> Tuple[int, ...]:
        """The smallest token tuple of the cells that compute the same function."""
        row = int(_canonical_rows()[_index(self.validate(tokens))])
        return tuple(_all_tokens()[row].tolist())

    def arch_str(self, tokens: Sequence[int]) -> str:
        """NB-201's own notation, e.g. ``|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...|``."""
        ops = {edge: OPS[t] for edge, t in zip(EDGES, self.validate(tokens))}
        return "+".join(
            "|" + "|".join(f"{ops[(node, src)]}~{src}" for src in range(node)) + "|"
            for node in (1, 2, 3)
        )

    def from_arch_str(self, text: str) -> Tuple[int, ...]:
        """Inverse of :meth:`arch_str`."""
        values = {}
        nodes = text.strip().split("+")
        if len(nodes) != 3:
            raise InvalidArchitectureError(f"{text!r} is not an NB-201 architecture string")
        for node, part in enumerate(nodes, start=1):
            items = [p for p in part.strip("|").split("|") if p]
            if len(items) != node:
                raise InvalidArchitectureError(f"node {node} of {text!r} needs {node} inputs")
            for item in items:
                op, _, src = item.partition("~")
                if not src.isdigit() or int(src) >= node:
                    raise InvalidArchitectureError(f"bad edge {item!r} in {text!r}")
                values[f"edge_{node}<-{int(src)}"] = op
        return self.decode(values)

    def describe(self, tokens: Sequence[int]) -> List[str]:
        ops = {edge: OPS[t] for edge, t in zip(EDGES, self.validate(tokens))}
        lines = []
        for node in (1, 2, 3):
            terms = [f"{ops[(node, s)]}(node{s})" for s in range(node) if ops[(node, s)] != "none"]
            lines.append(f"node{node} = " + (" + ".join(terms) if terms else "0"))
        return lines


def named_cell_function(names: Sequence[str]) -> str:
    """``cell_function`` for a cell given by op names in EDGES order."""
    ops = dict(zip(EDGES, names))
    value: Dict[int, Tuple[str, ...]] = {0: ("x",)}
    for node in (1, 2, 3):
        terms: List[str] = []
        for source in range(node):
            op, incoming = ops[(node, source)], value[source]
            if op == "none" or not incoming:
                continue
            if op == "skip_connect":
                terms.extend(incoming)
            else:
                terms.append(f"{op}({'+'.join(incoming)})")
        value[node] = tuple(sorted(terms))
    return "+".join(value[3]) or "0"

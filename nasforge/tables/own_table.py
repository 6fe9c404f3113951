"""Benchmark spaces read from tables made by ``nasforge tabulate``: ``own-table`` and ``mnist1d-chain``.

The space has the *same decisions* as the trainable space the table was made from (its header
names them), so strategies, encodings and predictors see exactly what they would see on the
real space. A table made from a sample holds only some of the space's architectures, so:

* ``sample`` draws a table row uniformly; ``mutate`` moves to a nearest other row (fewest
  differing canonical tokens, ties at random); ``neighbours`` lists the ``neighbour_count``
  nearest rows. Random search, evolution, local search and BANANAS therefore stay in the table.
* ``lookup`` of an architecture that is not in the table raises InvalidArchitectureError
  (``match = "exact"``, the default), which the tabular estimator turns into a failed trial.
  The RL controllers write tokens themselves, one decision at a time; ``allowed_next`` (a trie of
  the rows' canonical tokens) masks each of their choices, so they too propose table rows only.
  TPE and enumerate cannot be steered so and hit the table only by chance in a large space (their
  queries fail, and ``nasforge benchmark`` says so); ``match = "nearest"`` answers any
  architecture with the nearest row instead (a nearest-neighbour surrogate, reported as
  ``table_distance`` > 0): ``mnist1d-chain-nearest``.

``own-table`` reads any table file (``space.table = "path"``); ``mnist1d-chain`` is the table
shipped in ``nasforge/tables/data`` (docs/benchmarks-mnist1d-table.md says how it was made).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..spaces.base import SPACES, InvalidArchitectureError, SearchSpace, Tokens, create_space
from .base import TabularSpace
from .table_file import REQUIRED, TableFileError, read_table

DATA_DIR = Path(__file__).resolve().parent / "data"
MNIST1D_CHAIN = DATA_DIR / "mnist1d_chain.jsonl.gz"
MNIST1D_CHAIN_SPACE = {"name": "chain-cnn", "num_layers": 4, "dims": 1}
MATCHES = ("exact", "nearest")
METRIC_COLUMNS = ("val_acc", "val_acc_last", "test_acc", "params", "flops", "latency_ms", "train_seconds")


class _Table:
    """One parsed table file: the base space, canonical tokens per row, and metric arrays."""

    def __init__(self, path: Path):
        self.path = path
        self.header, rows = read_table(path)
        spec = dict(self.header["space"])
        name = spec.pop("name", None)
        if not isinstance(name, str):
            raise TableFileError(f"benchmark table {path}: the header's space has no name")
        if isinstance(SPACES.get(name), type) and issubclass(SPACES.get(name), TabularSpace):
            raise TableFileError(f"benchmark table {path} was made from {name}, itself a table")
        try:
            self.base: SearchSpace = create_space(name, **spec)
        except (TypeError, ValueError) as exc:
            raise TableFileError(f"benchmark table {path}: its space {self.header['space']} cannot be built "
                                 f"here ({exc})") from None
        names = [d.name for d in self.base.decisions]
        if self.header["decisions"] != names:
            raise TableFileError(
                f"benchmark table {path}: its decisions do not match the space {self.header['space']} "
                f"(file: {len(self.header['decisions'])} decisions, space: {len(names)}); the table was "
                "made from a different space or version")
        if not rows:
            raise TableFileError(f"benchmark table {path} holds no architectures")
        tokens, seen = [], {}
        for i, row in enumerate(rows):
            try:
                canonical = self.base.canonical(row["tokens"])
            except InvalidArchitectureError as exc:
                raise TableFileError(f"benchmark table {path}, row {i + 1}: {exc}") from None
            if canonical in seen:
                raise TableFileError(f"benchmark table {path}: row {i + 1} repeats the architecture of "
                                     f"row {seen[canonical] + 1}")
            seen[canonical] = i
            tokens.append(canonical)
        self.index: Dict[Tokens, int] = seen
        self.tokens = np.asarray(tokens, dtype=np.int64)
        self.metrics: Dict[str, np.ndarray] = {}
        for column in METRIC_COLUMNS:
            if column in self.header["columns"]:
                values = [row[column] for row in rows]
                if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
                    raise TableFileError(f"benchmark table {path}: column {column} holds non-numbers")
                self.metrics[column] = np.asarray(values, dtype=np.float64)
        for column in REQUIRED[1:]:
            assert column in self.metrics  # read_table checked the columns
        self._next: Optional[Dict[Tokens, Tuple[int, ...]]] = None

    def next_values(self) -> Dict[Tokens, Tuple[int, ...]]:
        """Prefix of a row's canonical tokens -> the values that follow it in some row (a trie of
        the table, built once on first use)."""
        if self._next is None:
            follow: Dict[Tokens, set] = {}
            for row in self.tokens.tolist():
                for i, value in enumerate(row):
                    follow.setdefault(tuple(row[:i]), set()).add(value)
            self._next = {prefix: tuple(sorted(values)) for prefix, values in follow.items()}
        return self._next


@lru_cache(maxsize=8)
def _load(path: str, mtime_ns: int) -> _Table:
    return _Table(Path(path))


def load_table(path: str | Path) -> _Table:
    """Parsed once per process and file version (a rebuilt file is read again)."""
    p = Path(path).resolve()
    if p.is_dir():
        raise TableFileError(f"benchmark table {path} is a folder; give the table file `nasforge tabulate --out` "
                             "wrote (NAME.jsonl.gz)")
    if not p.is_file():
        raise TableFileError(f"benchmark table {path} does not exist")
    return _load(str(p), os.stat(p).st_mtime_ns)


@SPACES.register("own-table")
class OwnTableSpace(TabularSpace):
    """A table file as a benchmark space. ``space`` (optional) is what the table must have been
    made from, e.g. ``{"name": "chain-cnn", "num_layers": 4}``; ``dataset`` likewise."""

    lookup_extras = frozenset({"table_row", "table_distance"})  # which row answered, and how far off

    name = "own-table"

    def __init__(self, table: Optional[str] = None, match: str = "exact", neighbour_count: int = 10,
                 space: Optional[Dict[str, Any]] = None, dataset: Optional[str] = None):
        if table is None:
            raise ValueError(f"{self.name} needs a table file: set space.table = \"path/to/table.jsonl.gz\" "
                             "(made by nasforge tabulate)")
        if match not in MATCHES:
            raise ValueError(f"{self.name}: match must be one of {MATCHES}, got {match!r}")
        if isinstance(neighbour_count, bool) or not isinstance(neighbour_count, int) or neighbour_count < 1:
            raise ValueError(f"{self.name}: neighbour_count must be a positive integer, got {neighbour_count!r}")
        # by absolute path, like a data file: the stored experiment reads it from any folder
        self.table_path = str(Path(table).expanduser().resolve())
        self.match = match
        self.neighbour_count = neighbour_count
        self.table = load_table(table)
        header = self.table.header
        for key, value in (space or {}).items():
            if header["space"].get(key) != value:
                raise TableFileError(f"benchmark table {table} was made from space {header['space']}, "
                                     f"not from one with {key} = {value!r}")
        if dataset is not None and header["dataset"].get("name") != dataset:
            raise TableFileError(f"benchmark table {table} was measured on {header['dataset'].get('name')}, "
                                 f"not on {dataset}")
        self.base = self.table.base
        if match != "exact":  # every architecture is answered: controllers need no mask (nor its cost)
            self.allowed_next = None  # type: ignore[assignment]
        self.seconds_per_query = float(self.table.metrics["train_seconds"].mean())
        self.notes = self._notes()

    # ---- identity -----------------------------------------------------------------------------
    def config(self) -> Dict[str, Any]:
        return {"table": self.table_path, "match": self.match, "neighbour_count": self.neighbour_count}

    @property
    def decisions(self):
        return self.base.decisions

    def canonical(self, tokens: Sequence[int]) -> Tokens:
        return self.base.canonical(tokens)

    def summary(self, tokens: Sequence[int]) -> str:
        return self.base.summary(tokens)

    def describe(self, tokens: Sequence[int]) -> List[str]:
        return self.base.describe(tokens)

    def build(self, tokens: Sequence[int], input_shape: Tuple[int, ...], num_classes: int):
        """The network of a row, untrained (for zero-cost proxies measured against the table)."""
        return self.base.build(tokens, input_shape, num_classes)

    def _notes(self) -> str:
        h = self.table.header
        data = h["dataset"]
        return (f"Table {Path(self.table_path).name} (nasforge tabulate, nasforge {h.get('nasforge_version')}): "
                f"{h['rows']} distinct architectures of {h['space']}, chosen by {h.get('strategy')} with seed "
                f"{h.get('seed')}, each trained once on {data.get('name')} ({data.get('train')} train / "
                f"{data.get('val')} validation / {data.get('test')} test) with recipe {h.get('recipe')}. "
                "val_acc: best validation accuracy of the last score_epochs epochs; test_acc: the final "
                "weights on the test split; latency_ms: median batch-1 forward pass on one CPU thread; "
                "train_seconds: training wall time (seconds_per_query is its mean). Architectures outside "
                f"the table: {'the nearest row answers' if self.match == 'nearest' else 'not answerable'}.")

    # ---- staying in the table -------------------------------------------------------------------
    def _distances(self, tokens: Sequence[int]) -> np.ndarray:
        return (self.table.tokens != np.asarray(self.canonical(tokens))).sum(axis=1)

    def sample(self, rng: np.random.Generator) -> Tokens:
        return tuple(int(t) for t in self.table.tokens[int(rng.integers(len(self.table.tokens)))])

    def mutate(self, tokens: Sequence[int], rng: np.random.Generator) -> Tokens:
        """A nearest other row (fewest canonical tokens changed); ties chosen at random."""
        d = self._distances(tokens).astype(float)
        d[d == 0] = np.inf
        if not np.isfinite(d).any():
            return self.canonical(tokens)  # a one-row table has nowhere to go
        choices = np.flatnonzero(d == d.min())
        return tuple(int(t) for t in self.table.tokens[int(rng.choice(choices))])

    def neighbours(self, tokens: Sequence[int]) -> List[Tokens]:
        """The ``neighbour_count`` nearest other rows, nearest first (ties in table order)."""
        d = self._distances(tokens)
        order = [int(i) for i in np.lexsort((np.arange(len(d)), d)) if d[i] > 0]
        return [tuple(int(t) for t in self.table.tokens[i]) for i in order[: self.neighbour_count]]

    def allowed_next(self, prefix: Sequence[int]) -> Optional[Tuple[int, ...]]:
        """The values that continue ``prefix`` towards a row's canonical tokens, so a controller
        masked with it samples table rows only (None: anything, for a prefix that has already left
        the table). With ``match = "nearest"`` the attribute is None: any proposal is answered."""
        return self.table.next_values().get(tuple(int(t) for t in prefix))

    # ---- the table --------------------------------------------------------------------------------
    def row_of(self, tokens: Sequence[int]) -> Tuple[int, int]:
        """(row, distance): the row of ``tokens``, or with ``match = "nearest"`` the nearest row."""
        canonical = self.canonical(tokens)
        row = self.table.index.get(canonical)
        if row is not None:
            return row, 0
        if self.match == "exact":
            raise InvalidArchitectureError(
                f"{self.summary(tokens)} is not in the table {Path(self.table_path).name} "
                f"({len(self.table.tokens)} architectures of {self.table.header['space']['name']} were measured); "
                "propose architectures with the space's sample/mutate/neighbours (a controller: mask with "
                "allowed_next), or use match = \"nearest\"")
        d = self._distances(canonical)
        row = int(np.argmin(d))
        return row, int(d[row])

    def lookup(self, tokens: Sequence[int]) -> Dict[str, float]:
        row, distance = self.row_of(tokens)
        out = {k: float(v[row]) for k, v in self.table.metrics.items()}
        out["table_row"] = row
        out["table_distance"] = distance
        return out

    def all_metrics(self) -> Dict[str, np.ndarray]:
        return {**{k: v.copy() for k, v in self.table.metrics.items()}, "tokens": self.table.tokens.copy()}


@SPACES.register("mnist1d-chain")
class MNIST1DChainSpace(OwnTableSpace):
    """The shipped table: chain-cnn (4 layers, 1-D) trained on MNIST-1D (docs/benchmarks-mnist1d-table.md)."""

    name = "mnist1d-chain"
    default_match = "exact"

    def __init__(self, match: Optional[str] = None, neighbour_count: int = 10):
        super().__init__(table=str(MNIST1D_CHAIN), match=match or self.default_match,
                         neighbour_count=neighbour_count, space=MNIST1D_CHAIN_SPACE, dataset="mnist1d")

    def config(self) -> Dict[str, Any]:
        return {"match": self.match, "neighbour_count": self.neighbour_count}


@SPACES.register("mnist1d-chain-nearest")
class MNIST1DChainNearestSpace(MNIST1DChainSpace):
    """``mnist1d-chain`` answering any chain-cnn architecture with its nearest row (for TPE, enumerate)."""

    name = "mnist1d-chain-nearest"
    default_match = "nearest"

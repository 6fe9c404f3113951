"""Fixed-length encodings of architectures for predictors.

- ``onehot``: the space's one-hot of the *canonical* tokens, so that twins that build the same
  network look alike. For the chain space this is also an adjacency encoding: its skip
  decisions are the bits of the lower-triangular adjacency matrix.
- ``path`` (cell spaces; after White et al., BANANAS): one bit per possible sequence of
  operations along an input-to-output path; a path through a ``none`` edge does not exist.
  For NAS-Bench-201 the four paths (lengths 1 to 3) over four live operations give
  4 + 16 + 64 = 84 bits. A space may also offer its own ``path_encoding(tokens)``.
- ``auto``: the space's own ``path_encoding`` if it has one, else ``onehot``. (On NB-201 with
  100 training architectures the one-hot predicts better than the path encoding; see
  docs/benchmarks-estimators.md.)
"""

from __future__ import annotations

import itertools
from typing import Dict, List, Sequence, Tuple

import numpy as np

from ..spaces.base import SearchSpace

KINDS = ("auto", "onehot", "path")


def _nb201_paths() -> Tuple[List[Tuple[int, ...]], Dict[Tuple[str, ...], int], Tuple[str, ...]]:
    from ..tables.nb201 import EDGES, OPS

    live = tuple(op for op in OPS if op != "none")
    # every input(0) -> output(3) route through the DAG, as positions in EDGES
    routes = []
    for inner in ((), (1,), (2,), (1, 2)):
        nodes = (0, *inner, 3)
        routes.append(tuple(EDGES.index((b, a)) for a, b in zip(nodes, nodes[1:])))
    index: Dict[Tuple[str, ...], int] = {}
    for length in (1, 2, 3):
        for seq in itertools.product(live, repeat=length):
            index[seq] = len(index)
    return routes, index, OPS


def nb201_path_encoding(tokens: Sequence[int]) -> np.ndarray:
    routes, index, ops = _nb201_paths()
    out = np.zeros(len(index), dtype=np.float32)
    for route in routes:
        seq = tuple(ops[tokens[p]] for p in route)
        if "none" not in seq:
            out[index[seq]] = 1.0
    return out


def _is_nb201(space: SearchSpace) -> bool:
    return space.name in ("nb201-cifar10", "nb201-cell")  # the same cells, the same tokens


def encode(space: SearchSpace, tokens: Sequence[int], kind: str = "auto") -> np.ndarray:
    """One architecture as a float32 vector of fixed length for ``space``."""
    if kind not in KINDS:
        raise ValueError(f"encoding must be one of {KINDS}, got {kind!r}")
    tokens = space.validate(tokens)
    if kind in ("auto", "path") and space.path_encoding is not None:
        return np.asarray(space.path_encoding(tokens), dtype=np.float32)
    if kind == "path":
        if _is_nb201(space):
            return nb201_path_encoding(tokens)
        raise ValueError(f"space {space.name!r} has no path encoding; use 'onehot'")
    return space.one_hot(space.canonical(tokens))


def encode_many(space: SearchSpace, tokens_list: Sequence[Sequence[int]], kind: str = "auto") -> np.ndarray:
    return np.stack([encode(space, t, kind) for t in tokens_list])

"""Exact expected regret of random search on a tabular benchmark, to check the harness against.

What is modelled: ``k`` independent draws **with replacement**, each row of the table drawn with
probability proportional to ``weights`` (uniform sampling of token sequences gives each row the
number of token sequences that look it up), then the best-by-validation row among the draws
(on a tie, the first drawn, as the runner keeps it) and its test metric. That is exactly what the
``random`` strategy does with ``dedup=False``.

The default ``random`` strategy rejects proposals whose ``arch_hash`` it has seen. On
nb201-cifar10 the table has one row per cell (15,625) but only 4,930 hash classes, some of them
hundreds of cells large, so de-duplication changes the draws noticeably (about 18 of 100 i.i.d.
draws repeat a class) and random search with de-duplication does a little better than this value
(:func:`simulate_random_search` with ``classes`` measures it). On NAS-Bench-Graph a row is a class
and repeats are rare (under one in 100 draws).

The computation: sort the distinct validation values ``v_1 < ... < v_G``; with ``F_g`` the
probability that one draw has validation ``<= v_g``, the best validation among ``k`` draws is
``v_g`` with probability ``F_g^k - F_{g-1}^k``; given that, the first draw reaching ``v_g`` is a
row of group ``g`` drawn in proportion to its weight (the draws are exchangeable), so its
expected test metric is the weighted mean of the group's test values.
"""

from __future__ import annotations

import itertools
from functools import lru_cache
from typing import Dict, Optional, Sequence

import numpy as np

# Beyond this many token sequences, counting which row each one looks up is too slow to do here.
MAX_ENUMERATION = 2_000_000


def expected_best_test(val: np.ndarray, test: np.ndarray, ks: Sequence[int],
                       weights: Optional[np.ndarray] = None) -> np.ndarray:
    """E[test metric of the best-by-validation row among k i.i.d. draws], for each k in ``ks``."""
    val = np.asarray(val, dtype=float)
    test = np.asarray(test, dtype=float)
    w = np.ones_like(val) if weights is None else np.asarray(weights, dtype=float)
    if val.shape != test.shape or val.shape != w.shape or val.ndim != 1 or len(val) == 0:
        raise ValueError("val, test and weights must be 1-D arrays of the same non-zero length")
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError("weights must be non-negative with a positive sum")
    keep = w > 0
    val, test, p = val[keep], test[keep], w[keep] / w[keep].sum()
    order = np.argsort(val, kind="stable")
    val, test, p = val[order], test[order], p[order]
    starts = np.flatnonzero(np.r_[True, val[1:] != val[:-1]])
    group_p = np.add.reduceat(p, starts)
    group_test = np.add.reduceat(p * test, starts) / group_p
    upper = np.minimum(np.cumsum(group_p), 1.0)
    lower = np.r_[0.0, upper[:-1]]
    result = []
    for k in ks:
        if int(k) < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        prob = upper ** int(k) - lower ** int(k)
        result.append(float(np.dot(prob, group_test) / prob.sum()))
    return np.array(result)


def expected_regret(val: np.ndarray, test: np.ndarray, ks: Sequence[int],
                    weights: Optional[np.ndarray] = None) -> np.ndarray:
    """E[regret after k draws] = max test metric in the table - :func:`expected_best_test`."""
    w = np.ones(len(test)) if weights is None else np.asarray(weights, dtype=float)
    best = float(np.max(np.asarray(test, dtype=float)[w > 0]))
    return best - expected_best_test(val, test, ks, weights)


def simulate_random_search(val: np.ndarray, test: np.ndarray, k: int, runs: int, seed: int = 0,
                           weights: Optional[np.ndarray] = None,
                           classes: Optional[np.ndarray] = None) -> np.ndarray:
    """Monte Carlo regrets after ``k`` draws (one per run): the brute-force counterpart.

    Without ``classes`` the draws are i.i.d. (the analytic model). With ``classes`` (a class id
    per row), a draw whose class was already drawn is rejected and redrawn, as the ``random``
    strategy does with ``arch_hash`` (so ``k`` must not exceed the number of classes).
    """
    val = np.asarray(val, dtype=float)
    test = np.asarray(test, dtype=float)
    p = np.ones(len(val)) if weights is None else np.asarray(weights, dtype=float)
    p = p / p.sum()
    rng = np.random.default_rng(seed)
    best_possible = float(test[p > 0].max())
    regrets = np.empty(runs)
    for r in range(runs):
        if classes is None:
            rows = rng.choice(len(val), size=k, p=p)
        else:
            rows, seen = [], set()
            while len(rows) < k:
                for row in rng.choice(len(val), size=2 * k, p=p).tolist():
                    if classes[row] not in seen and len(rows) < k:
                        seen.add(classes[row])
                        rows.append(row)
        first_best = rows[int(np.argmax(val[rows]))]  # argmax returns the first on ties
        regrets[r] = best_possible - test[first_best]
    return regrets


@lru_cache(maxsize=None)
def _row_weights(space_name: str) -> np.ndarray:
    from ..spaces.base import InvalidArchitectureError, create_space

    space = create_space(space_name)
    table = space.all_metrics()
    row_of: Dict[tuple, int] = {tuple(t): i for i, t in enumerate(table["tokens"].tolist())}
    sizes = [d.size for d in space.decisions]
    if int(np.prod(sizes)) > MAX_ENUMERATION:
        raise ValueError(f"{space_name}: {int(np.prod(sizes))} token sequences, too many to count")
    counts = np.zeros(len(row_of))
    for tokens in itertools.product(*(range(n) for n in sizes)):
        try:
            row = row_of.get(tokens)
            if row is None:
                row = row_of.get(tuple(space.canonical(tokens)))
        except InvalidArchitectureError:
            continue  # not an architecture of the space: random search never proposes it
        if row is not None:
            counts[row] += 1
    counts.setflags(write=False)
    return counts


def row_weights(space) -> np.ndarray:
    """How many token sequences look up each row: uniform token sampling draws rows in proportion.

    nb201-cifar10: all ones (a row per cell). NAS-Bench-Graph: a row is an isomorphism class,
    1 to 164 token sequences each. Counting enumerates the space once per process (about 3 s).
    """
    return _row_weights(space.name)


def random_search_regret(space, ks: Sequence[int]) -> Dict[str, object]:
    """The analytic check for one benchmark: expected regret of i.i.d. uniform random search."""
    table = space.all_metrics()
    weights = row_weights(space)
    regret = expected_regret(table["val_acc"], table["test_acc"], ks, weights)
    return {"ks": [int(k) for k in ks], "expected_regret": [float(r) for r in regret],
            "model": "k i.i.d. uniform token sequences (with replacement); best by validation, "
                     "first drawn on ties"}

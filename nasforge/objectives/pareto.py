"""Pareto fronts of trials over several metrics: non-dominated sorting, crowding distance and
hypervolume.

Every function takes ``points`` (n trials × m metrics) and ``directions`` (one "maximize" or
"minimize" per metric; default all "minimize") and converts to minimisation internally, so callers
never negate columns by hand. ``a`` dominates ``b`` when it is no worse in every metric and better
in at least one; equal points do not dominate each other and share a front.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np

from .registry import DIRECTIONS

# Our own code, though Optuna (a dependency) has both: its non-dominated ranking
# (optuna.study._multi_objective._fast_non_domination_rank) and hypervolume
# (optuna._hypervolume.compute_hypervolume) are private, so any Optuna release may move or change
# them, and nasforge is meant to work with a range of Optuna versions. test_pareto checks ours
# against them: the fronts are identical (comparisons only); the hypervolume agrees to 1e-12
# relative but not bit for bit (Optuna's WFG sums in another order), and reports keep their numbers.


def as_minimization(points, directions: Optional[Sequence[str]] = None) -> np.ndarray:
    """An (n, m) float array in which smaller is better in every column (maximised ones negated)."""
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim == 1:  # one point, or no points
        arr = arr[None, :] if arr.size else arr.reshape(0, len(directions) if directions is not None else 0)
    if arr.ndim != 2:
        raise ValueError(f"points must be an (n, m) array, got shape {arr.shape}")
    if np.isnan(arr).any():
        raise ValueError("points contain NaN")
    if directions is None:
        return arr.copy()
    directions = list(directions)
    if len(directions) != arr.shape[1]:
        raise ValueError(f"{len(directions)} directions for {arr.shape[1]} metrics")
    bad = [d for d in directions if d not in DIRECTIONS]
    if bad:
        raise ValueError(f"directions must be {DIRECTIONS}, got {bad}")
    signs = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    return arr * signs


def _dominance(a: np.ndarray) -> np.ndarray:
    """dom[i, j]: point i dominates point j (minimisation). O(m n²) time, n² booleans."""
    n, m = a.shape
    no_worse = np.ones((n, n), dtype=bool)
    better = np.zeros((n, n), dtype=bool)
    for k in range(m):
        col = a[:, k]
        no_worse &= col[:, None] <= col[None, :]
        better |= col[:, None] < col[None, :]
    return no_worse & better


def non_dominated_sort(points, directions: Optional[Sequence[str]] = None) -> List[np.ndarray]:
    """Fronts of indices, best first (Deb et al.'s fast non-dominated sort, vectorised).

    Front 0 is the Pareto front; front k holds the points dominated only by points of fronts < k.
    """
    a = as_minimization(points, directions)
    n = len(a)
    if n == 0:
        return []
    dom = _dominance(a)
    dominated_by = dom.sum(axis=0)  # how many points dominate each point
    fronts: List[np.ndarray] = []
    current = np.flatnonzero(dominated_by == 0)
    while current.size:
        fronts.append(current)
        dominated_by = dominated_by - dom[current].sum(axis=0)
        dominated_by[current] = -1  # placed; never picked again
        current = np.flatnonzero(dominated_by == 0)
    return fronts


def pareto_ranks(points, directions: Optional[Sequence[str]] = None) -> np.ndarray:
    """Front number of every point (0 = on the Pareto front)."""
    fronts = non_dominated_sort(points, directions)
    ranks = np.empty(sum(len(f) for f in fronts), dtype=np.int64)
    for r, front in enumerate(fronts):
        ranks[front] = r
    return ranks


def pareto_front(points, directions: Optional[Sequence[str]] = None) -> np.ndarray:
    """Indices of the non-dominated points, in input order."""
    fronts = non_dominated_sort(points, directions)
    return np.sort(fronts[0]) if fronts else np.zeros(0, dtype=np.int64)


def crowding_distance(points, directions: Optional[Sequence[str]] = None) -> np.ndarray:
    """NSGA-II crowding distance of each point within the set given (normally one front).

    Per metric, the points are sorted; the two extremes get infinity and every other point adds
    the gap between its neighbours divided by the metric's range (a constant metric adds 0).
    Larger means lonelier, so preferred for diversity. Ties are ordered by index.
    """
    a = as_minimization(points, directions)
    n, m = a.shape
    distance = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for k in range(m):
        order = np.argsort(a[:, k], kind="stable")
        col = a[order, k]
        span = col[-1] - col[0]
        distance[order[0]] = distance[order[-1]] = np.inf
        if span > 0:
            distance[order[1:-1]] += (col[2:] - col[:-2]) / span
    return distance


def rank_and_crowding(points, directions: Optional[Sequence[str]] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Front rank and crowding distance (within its front) of every point: the NSGA-II order."""
    a = as_minimization(points, directions)
    ranks = np.zeros(len(a), dtype=np.int64)
    crowding = np.zeros(len(a))
    for r, front in enumerate(non_dominated_sort(a)):
        ranks[front] = r
        crowding[front] = crowding_distance(a[front])
    return ranks, crowding


# ---- hypervolume ---------------------------------------------------------------------------------------
def _prepare(points, reference, directions) -> Tuple[np.ndarray, np.ndarray]:
    a = as_minimization(points, directions)
    ref = as_minimization(np.asarray(reference, dtype=np.float64)[None, :], directions)[0]
    if a.size and a.shape[1] != len(ref):
        raise ValueError(f"reference point has {len(ref)} values for {a.shape[1]} metrics")
    # only points strictly better than the reference in every metric enclose any volume
    return a[(a < ref).all(axis=1)] if a.size else a.reshape(0, len(ref)), ref


def _hv2d(a: np.ndarray, ref: np.ndarray) -> float:
    """Sweep along x: each point that lowers the best y so far adds a horizontal strip."""
    a = a[np.lexsort((a[:, 1], a[:, 0]))]
    volume, best_y = 0.0, ref[1]
    for x, y in a:
        if y < best_y:
            volume += (ref[0] - x) * (best_y - y)
            best_y = y
    return volume


def _hv(a: np.ndarray, ref: np.ndarray) -> float:
    """Exact, by slicing along the last metric (HSO): between consecutive values of it, the slab's
    cross-section is the (m-1)-D hypervolume of the points at or below the slab."""
    if len(a) == 0:
        return 0.0
    m = a.shape[1]
    if m == 1:
        return float(ref[0] - a[:, 0].min())
    if m == 2:
        return _hv2d(a, ref)
    a = a[pareto_front(a)]
    a = a[np.argsort(a[:, -1], kind="stable")]
    volume = 0.0
    for i in range(len(a)):
        upper = a[i + 1, -1] if i + 1 < len(a) else ref[-1]
        if upper > a[i, -1]:
            volume += _hv(a[: i + 1, :-1], ref[:-1]) * (upper - a[i, -1])
    return float(volume)


def hypervolume(points, reference, directions: Optional[Sequence[str]] = None) -> float:
    """Volume of the region dominated by ``points`` and bounded by ``reference`` (exact).

    2-D is an O(n log n) sweep; more metrics use slicing, exponential in the number of metrics but
    fine for fronts of tens to hundreds of points in 3-4 metrics. Points not better than the
    reference in every metric contribute nothing.
    """
    a, ref = _prepare(points, reference, directions)
    return _hv(a, ref)


def reference_point(points, directions: Optional[Sequence[str]] = None, margin: float = 0.1) -> np.ndarray:
    """Default reference: each metric's worst value, pushed ``margin`` × its range further, so the
    extreme points of the front still enclose some volume (a metric with no range is pushed by
    ``margin`` × its magnitude, or ``margin``). Returned in the metrics' own directions."""
    a = as_minimization(points, directions)
    if len(a) == 0:
        raise ValueError("no points to take a reference from")
    worst, best = a.max(axis=0), a.min(axis=0)
    span = worst - best
    span = np.where(span > 0, span, np.where(worst != 0, np.abs(worst), 1.0))
    ref = worst + margin * span
    signs = np.array([-1.0 if d == "maximize" else 1.0 for d in directions]) if directions is not None else 1.0
    return ref * signs

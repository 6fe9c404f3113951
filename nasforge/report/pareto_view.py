"""The Pareto view: for each pair of metrics with a known direction, the front's trials and the
hypervolume of the trials finished so far along the search.

The front of the first k trials is the front of (the front of the first j < k) plus trials j..k,
so the fronts are carried forward step by step: each step compares the few points of the last
front with the trials since, never all trials with all (a 1,000-trial search has 15 pairs)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

MAX_PARETO_METRICS = 6
HV_POINTS = 40  # hypervolume is computed at most this many times along the search


def pareto_views(rows: Sequence[Dict[str, Any]], names: Sequence[str], metric: str,
                 direction: str) -> Dict[str, Any]:
    """Per pair: the front (trial numbers), the hypervolume at up to ``HV_POINTS`` points along the
    search, and the reference point (each metric's worst value over the whole search, pushed 10%
    of its range further)."""
    import numpy as np

    from .values import direction_of

    usable = [r for r in rows if r["state"] == "COMPLETE" and r["feasible"]]
    directions: Dict[str, str] = {}
    for name in [metric, *names]:
        d = direction if name == metric else direction_of(name)
        present = sum(1 for r in usable if _value(r, name, metric) is not None)
        if d is not None and present >= 2 and name not in directions:
            directions[name] = d
    chosen = list(directions)[:MAX_PARETO_METRICS]
    pairs = {}
    for a in range(len(chosen)):
        for b in range(a + 1, len(chosen)):
            x, y = chosen[a], chosen[b]
            points, ids = [], []
            for r in usable:
                vx, vy = _value(r, x, metric), _value(r, y, metric)
                if vx is not None and vy is not None:
                    points.append((vx, vy))
                    ids.append(r["number"])
            if len(points) >= 2:
                pairs[f"{x}|{y}"] = _pair(np.asarray(points), ids, [directions[x], directions[y]])
    return {"metrics": chosen, "directions": directions, "pairs": pairs}


def _pair(arr, ids: List[int], dirs: List[str]) -> Dict[str, Any]:
    import numpy as np

    from ..objectives.pareto import hypervolume, pareto_front, reference_point

    ref = reference_point(arr, dirs)
    steps = sorted({int(round(k)) for k in np.linspace(1, len(arr), min(HV_POINTS, len(arr)))})
    front = np.zeros(0, dtype=np.int64)  # indices into arr: the front of the trials so far
    hv, done = [], 0
    for k in steps:
        candidates = np.concatenate([front, np.arange(done, k)])
        front = candidates[pareto_front(arr[candidates], dirs)]
        done = k
        hv.append([ids[k - 1], float(hypervolume(arr[front], ref, dirs))])
    return {"front": [ids[i] for i in np.sort(front)], "hv": hv, "reference": [float(v) for v in ref]}


def _value(row: Dict[str, Any], name: str, metric: str) -> Optional[float]:
    v = row["metrics"].get(name)
    if v is None and name in (metric, "objective"):
        v = row["objective"]
    return v

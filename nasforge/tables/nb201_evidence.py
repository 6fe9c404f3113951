"""Why nasforge reads the NAS-Bench-201 file the way it does (``nb201.FILE_OP_IDS`` and
``nb201.FILE_EDGES``): the file keys each cell by six integers it does not explain, and these facts,
recomputed from the raw file alone, pin the mapping down. ``docs/benchmarks-data.md`` explains how
each number decides part of it; tests/test_benchmarks_tabular.py asserts them. Accuracies are in
percent, as in the file.
"""

from __future__ import annotations

import itertools
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .nb201 import ACCURACY_FIELDS, EDGES, FILE_EDGES, FILE_OP_IDS, named_cell_function, read_raw

Key = Tuple[int, ...]


def op_mapping_evidence(raw: Optional[Dict[Key, Dict[str, Any]]] = None) -> Dict[str, Any]:
    """Recompute, from the raw file alone, the facts that pin down FILE_OP_IDS and FILE_EDGES."""
    raw = raw if raw is not None else read_raw()
    keys = sorted(raw)
    fp = {k: raw[k]["baseline_accuracy"] for k in keys}
    uniform = {op_id: fp[(op_id,) * 6] for op_id in range(5)}
    none_id = min(uniform, key=uniform.get)
    live_ids = [i for i in range(5) if i != none_id]
    by_identity = {skip_id: _function_classes(keys, none_id, skip_id) for skip_id in live_ids}
    groups = by_identity[FILE_OP_IDS["skip_connect"]]
    chance = sorted(k for k in keys if fp[k] == 10.0)
    chance_ranges = {f: (min(raw[k][f] for k in chance), max(raw[k][f] for k in chance))
                     for f in ACCURACY_FIELDS.values()}
    repeated = [m for label, m in groups.items()
                if label != "0" and len(m) > 1 and len({fp[k] for k in m}) == 1]
    values = np.array([fp[k] for k in keys])
    best = keys[int(np.argmax(values))]
    direct = FILE_EDGES.index((3, 0))
    return {
        "uniform_cell_fp_acc": uniform,
        "none_id": none_id,
        "connecting_position_sets": _connecting_sets(fp, none_id, live_ids),
        "paths_of_file_edge_order": _input_output_paths(FILE_EDGES),
        "paths_of_nb201_string_order": _input_output_paths(EDGES),
        "direct_edge_only_fp_acc": {op: fp[_only((direct,), op, none_id)] for op in live_ids},
        "pooled_std_if_identity": {op: _pooled_std(fp, g) for op, g in by_identity.items()},
        "function_classes": len(groups),
        "chance_cells": len(chance),
        "chance_cells_accuracy_ranges": chance_ranges,
        "chance_cells_are_the_disconnected_ones": chance == sorted(groups.get("0", [])),
        "multi_cell_classes_with_identical_fp_acc": len(repeated),
        "distinct_fp_values": int(len(np.unique(values))),
        "best_fp_acc": float(values.max()),
        "best_fp_key": best,
    }


def _only(positions: Sequence[int], op_id: int, none_id: int) -> Key:
    """The cell with ``op_id`` at ``positions`` and "none" everywhere else."""
    return tuple(op_id if p in positions else none_id for p in range(6))


def _connecting_sets(fp: Dict[Key, float], none_id: int, live_ids: Sequence[int]) -> List[Key]:
    """Cells with every edge "none" except a set of positions: which minimal sets lift the cell
    above chance whatever operation they carry? Those are the input-to-output paths."""
    connecting: List[Key] = []
    for size in (1, 2, 3):
        for positions in itertools.combinations(range(6), size):
            if any(set(c) <= set(positions) for c in connecting):
                continue
            if all(fp[_only(positions, op, none_id)] > 10.5 for op in live_ids):
                connecting.append(positions)
    return connecting


def _function_classes(keys: Sequence[Key], none_id: int, skip_id: int) -> Dict[str, List[Key]]:
    """Cells grouped by the function they compute, were ``skip_id`` the identity. Under the right
    choice, cells that compute the same function differ only by training noise."""
    groups: Dict[str, List[Key]] = {}
    for k in keys:
        names = []
        for edge in EDGES:
            op_id = k[FILE_EDGES.index(edge)]
            names.append("none" if op_id == none_id else
                         "skip_connect" if op_id == skip_id else f"op{op_id}")
        groups.setdefault(named_cell_function(names), []).append(k)
    return groups


def _pooled_std(fp: Dict[Key, float], groups: Dict[str, List[Key]]) -> float:
    """The spread of accuracy within groups of more than one cell, pooled over the groups."""
    squares, dof = 0.0, 0
    for members in groups.values():
        if len(members) > 1:
            v = np.array([fp[k] for k in members])
            squares += float(((v - v.mean()) ** 2).sum())
            dof += len(v) - 1
    return float(np.sqrt(squares / dof))


def _input_output_paths(edges: Sequence[Tuple[int, int]]) -> List[Tuple[int, ...]]:
    """For an edge order, the positions on each input-to-output path (the sets that connect)."""
    paths = [[0]]
    done = []
    while paths:
        path = paths.pop()
        if path[-1] == 3:
            done.append(tuple(sorted(edges.index((b, a)) for a, b in zip(path, path[1:]))))
            continue
        paths.extend(path + [n] for n in range(path[-1] + 1, 4))
    return sorted(done)

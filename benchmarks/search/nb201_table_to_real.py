"""Do NAS-Bench-201's CIFAR-10 accuracies rank cells the same way as training them on a user's data?

The ``--top`` best and ``--bottom`` worst distinct cells of the ``nb201-cifar10`` table (by its
validation accuracy; one cell per function, isomorphic twins dropped) are each trained with one
recipe as ``nb201-cell`` children on ``--dataset`` (the ``train`` estimator, as a search trains a
child), and scored on its validation split. Reports Kendall's tau (scipy) between the table's
accuracy and the trained one over all of them, within the top group alone (the harder question:
does the table order the good cells?), and the share of (top, bottom) pairs ordered the same way
(chance: 0.5).

    OMP_NUM_THREADS=1 python benchmarks/search/nb201_table_to_real.py [--dataset mnist5k --epochs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch
from scipy.stats import kendalltau

from nasforge.data import load_dataset
from nasforge.estimators.train import TrainEstimator
from nasforge.spaces.base import SPACES


def distinct_ranked(table, metric: str):
    """Every distinct cell function's tokens, best first by the table's ``metric``."""
    columns = table.all_metrics()
    order = np.argsort(-columns[metric], kind="stable")
    seen, ranked = set(), []
    for row in order:
        tokens = tuple(int(t) for t in columns["tokens"][row])
        key = table.arch_hash(tokens)
        if key not in seen:
            seen.add(key)
            ranked.append((tokens, float(columns[metric][row])))
    return ranked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--bottom", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--cells-per-stage", type=int, default=1)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--metric", default="val_acc")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    table = SPACES.create("nb201-cifar10")
    ranked = distinct_ranked(table, args.metric)
    chosen = [("top", *c) for c in ranked[:args.top]] + [("bottom", *c) for c in ranked[-args.bottom:]]
    space = SPACES.create("nb201-cell", cells_per_stage=args.cells_per_stage, channels=args.channels)
    data = load_dataset(args.dataset)
    train = TrainEstimator(dataset=args.dataset, epochs=args.epochs, device="cpu")
    train.setup(space, data)
    rows = []
    for group, tokens, table_acc in chosen:
        start = time.perf_counter()
        trained = train.evaluate(tokens, seed=args.seed)["val_acc"]
        rows.append({"group": group, "cell": table.arch_str(tokens), "table": table_acc, "trained": trained,
                     "seconds": time.perf_counter() - start})
        print(json.dumps(rows[-1]), flush=True)
    tau, p = kendalltau([r["table"] for r in rows], [r["trained"] for r in rows])
    top = [r for r in rows if r["group"] == "top"]
    tau_top, p_top = kendalltau([r["table"] for r in top], [r["trained"] for r in top])
    bottom = [r for r in rows if r["group"] == "bottom"]
    pairs = [(t["trained"] > b["trained"]) + 0.5 * (t["trained"] == b["trained"]) for t in top for b in bottom]
    print(json.dumps({
        "kendall_tau": tau, "p": p, "kendall_tau_top": tau_top, "p_top": p_top,
        "top_over_bottom": float(np.mean(pairs)), "distinct_cells": len(ranked),
        "median_seconds": float(np.median([r["seconds"] for r in rows])),
        "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "load": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M"), "args": vars(args)}, indent=1))


if __name__ == "__main__":
    main()

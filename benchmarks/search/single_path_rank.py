"""How well does the single-path one-shot supernet rank nb201-cell architectures on digits?

One supernet (``shared-weights``, single-path mode) is trained for ``--warmup`` uniform-path steps;
then ``--cells`` distinct cells, drawn uniformly, are scored twice: by the supernet (inherited weights,
batch norm recalibrated: the trial's val_acc, steps = 0 so the weights stay frozen while scoring) and by
the ordinary ``train`` estimator (each cell trained alone for ``--epochs`` epochs, same validation
split). Reports Kendall's tau between the two (scipy), also without the cells whose output is cut off
from the input (both estimators call those chance, which flatters tau), and the time per trial of each.

    OMP_NUM_THREADS=1 python benchmarks/search/single_path_rank.py [--cells 10 --warmup 2000 --epochs 5]
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
from nasforge.estimators.weight_sharing import SharedWeightsEstimator
from nasforge.spaces.base import SPACES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--cells-per-stage", type=int, default=1)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_dataset("digits")
    space = SPACES.create("nb201-cell", cells_per_stage=args.cells_per_stage, channels=args.channels)
    rng, cells = np.random.default_rng(args.seed), []
    while len(cells) < args.cells:  # distinct functions: isomorphic twins would count twice
        tokens = space.sample(rng)
        if all(space.arch_hash(tokens) != space.arch_hash(c) for c in cells):
            cells.append(tokens)
    shared = SharedWeightsEstimator(dataset="digits", warmup_steps=args.warmup, steps=0, batch_size=64,
                                    seed=args.seed, device="cpu")
    shared.setup(space, data)
    start = time.perf_counter()
    shared.warm_up()  # once, outside the per-trial times
    warmup_seconds = time.perf_counter() - start
    train = TrainEstimator(dataset="digits", epochs=args.epochs, device="cpu")
    train.setup(space, data)
    rows = []
    for i, tokens in enumerate(cells):
        t0 = time.perf_counter()
        inherited = shared.evaluate(tokens, seed=i)["val_acc"]
        t1 = time.perf_counter()
        alone = train.evaluate(tokens, seed=i)["val_acc"]
        t2 = time.perf_counter()
        live = bool(shared.supernet.path(tokens))  # no live edge: the output is cut off
        rows.append({"cell": space.arch_str(tokens), "live": live, "inherited": inherited, "alone": alone,
                     "shared_seconds": t1 - t0, "train_seconds": t2 - t1})
        print(json.dumps(rows[-1]), flush=True)
    tau, p = kendalltau([r["inherited"] for r in rows], [r["alone"] for r in rows])
    live = [r for r in rows if r["live"]]
    tau_live, p_live = kendalltau([r["inherited"] for r in live], [r["alone"] for r in live])
    print(json.dumps({
        "kendall_tau": tau, "p": p, "kendall_tau_live": tau_live, "p_live": p_live, "live_cells": len(live),
        "warmup_seconds": warmup_seconds,
        "median_shared_seconds": float(np.median([r["shared_seconds"] for r in rows])),
        "median_train_seconds": float(np.median([r["train_seconds"] for r in rows])),
        "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "load": os.getloadavg(), "args": vars(args)}, indent=1))


if __name__ == "__main__":
    main()

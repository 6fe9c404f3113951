"""A latency-constrained search with real child training on MNIST-1D, beside an unconstrained one.

1. Unconstrained search (validation accuracy; every child's latency measured, not used).
2. Target T = the 25th percentile of those children's latencies.
3. The same search (same seed, strategy and budget) with the hard constraint ``latency_ms<=T``.
4. The best architecture of each is rebuilt and its latency measured again, independently
   (batch 1, 1 thread, 20 warm-up and 200 timed runs, median; five repetitions), and compared
   with T. Validation accuracies are the search's; both best architectures are also retrained
   once on train+validation and tested.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/hardware/latency_constrained_mnist1d.py [--budget 40 --epochs 3]

Results: benchmarks/results/hardware/latency_mnist1d.json (and the two experiments' stores).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from nasforge import SearchConfig, Store, run_search
from nasforge.data.datasets import load_dataset
from nasforge.estimators.train import TrainRecipe, retrain_and_test
from nasforge.objectives.hardware import measure_latency
from nasforge.search import store_path
from nasforge.spaces import create_space

OUT = Path("benchmarks/results/hardware")


def config(args, constraints=()) -> SearchConfig:
    c = SearchConfig(dataset="mnist1d", budget=args.budget, seed=args.seed)
    c.space = {"name": "chain-cnn", "num_layers": args.layers}
    c.strategy = {"name": "evolution", "population_size": 10, "sample_size": 5}
    c.training = {"epochs": args.epochs, "score_epochs": 1, "device": "cpu", "measure": ["latency_ms"]}
    c.reward = {"metric": "val_acc", "transform": "identity", "constraints": list(constraints),
                "constraint_mode": "hard"}
    c.execution = {"name": "inline"}  # one child at a time: latencies are not measured under contention
    return c


def remeasure(space, tokens, data) -> dict:
    model = space.build(tuple(tokens), data.input_shape, data.num_classes)
    runs = [measure_latency(model, data.input_shape, batch_size=1, warmup=20, repeats=200, threads=1)
            for _ in range(5)]
    medians = [r["median_ms"] for r in runs]
    return {"median_ms": float(np.median(medians)), "medians_ms": medians,
            "spread_cv": float(np.std(medians, ddof=1) / np.mean(medians)),
            "within_run_cv": float(np.median([r["cv"] for r in runs]))}


def search(args, name, constraints=()) -> dict:
    path = OUT / f"latency-mnist1d-{name}"
    shutil.rmtree(path, ignore_errors=True)
    start = time.perf_counter()
    run_search(config(args, constraints), path)
    with Store(store_path(path), create=False) as store:
        trials = store.trials(["COMPLETE"])
        best = store.best(1, "maximize")
    return {"experiment": str(path), "seconds": time.perf_counter() - start,
            "latencies_ms": [t.metrics["latency_ms"] for t in trials],
            "feasible": sum(t.feasible for t in trials), "completed": len(trials),
            "best": None if not best else {"trial": best[0].number, "tokens": list(best[0].tokens),
                                           "val_acc": best[0].objective, "latency_ms": best[0].metrics["latency_ms"],
                                           "params": best[0].metrics["params"]}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--retrain-epochs", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    data = load_dataset("mnist1d")
    space = create_space("chain-cnn", num_layers=args.layers, dims=1)

    free = search(args, "unconstrained")
    target = float(np.percentile(free["latencies_ms"], 25))
    print(f"unconstrained: best val {free['best']['val_acc']:.4f}, latency {free['best']['latency_ms']:.3f} ms; "
          f"target T = {target:.4f} ms", flush=True)
    bound = search(args, "constrained", [f"latency_ms<={target!r}"])
    print(f"constrained: {bound['feasible']}/{bound['completed']} children feasible, best "
          f"{bound['best']}", flush=True)

    result = {"args": vars(args), "target_ms": target, "unconstrained": free, "constrained": bound}
    recipe = TrainRecipe(epochs=args.retrain_epochs)
    for label in ("unconstrained", "constrained"):
        best = result[label]["best"]
        if best is None:
            continue
        best["remeasured"] = remeasure(space, best["tokens"], data)
        best["meets_target"] = best["remeasured"]["median_ms"] <= target
        _, test = retrain_and_test(space, tuple(best["tokens"]), data, recipe, seed=0, device="cpu")
        best["test_acc"] = test["test_acc"]
        print(f"{label}: re-measured {best['remeasured']['median_ms']:.4f} ms (target {target:.4f}), "
              f"test acc {test['test_acc']:.4f} after {args.retrain_epochs} epochs", flush=True)
    result["machine"] = f"{platform.machine()}, torch {torch.__version__}, 1 thread"
    (OUT / "latency_mnist1d.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

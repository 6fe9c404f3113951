"""Does a long search leak? Resident memory of the driver and its worker over 300 real trials.

A REINFORCE search on MNIST-1D with real (small) training in a local worker process; after every
trial the driver's and the worker's resident set sizes are read from /proc. Growth is the
difference between the mean of the last 50 trials and the mean of trials 50-100 (after warm-up:
allocator pools and caches fill during the first trials), and the least-squares slope over the
trials after the first 50.

    .venv/bin/python benchmarks/speed/memory_growth.py --budget 300
    .venv/bin/python benchmarks/speed/memory_growth.py --budget 1000 --epochs 1 --strategy random
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from nasforge import SearchConfig, run_search
from nasforge.execution.local import resident_mb


def children(pid: int):
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    out.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return out


def worker_rss(driver: int) -> float:
    """The spawned worker's RSS (the resource tracker, also a child, is tiny and skipped)."""
    sizes = [resident_mb(c) or 0.0 for c in children(driver)]
    return max(sizes) if sizes else float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=int, default=300)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--strategy", default="reinforce",
                   help="random keeps the children's size distribution fixed; REINFORCE drifts towards larger ones")
    p.add_argument("--recycle-after", type=int, default=0, help="trials per worker process (0: never recycle)")
    p.add_argument("--out", default="benchmarks/results/memory_growth.json")
    args = p.parse_args()
    config = SearchConfig(budget=args.budget, seed=0)
    config.space = {"name": "chain-cnn", "num_layers": args.layers}
    config.training = {"epochs": args.epochs, "score_epochs": 1}
    config.strategy = {"name": args.strategy}
    config.execution = {"name": "local", "workers": 1, "recycle_after": args.recycle_after or None}
    samples = []
    driver = os.getpid()
    start = time.perf_counter()

    def record(progress) -> None:
        if progress.last is not None:
            samples.append({"trial": progress.done, "driver_mb": resident_mb(driver),
                            "worker_mb": worker_rss(driver), "seconds": time.perf_counter() - start})

    with tempfile.TemporaryDirectory() as tmp:
        run_search(config, Path(tmp) / "exp", on_progress=record)
    summary = {}
    for key in ("driver_mb", "worker_mb"):
        values = np.array([s[key] for s in samples])
        after = values[50:]
        slope = float(np.polyfit(np.arange(len(after)), after, 1)[0]) if len(after) > 2 else float("nan")
        summary[key] = {"first": float(values[0]), "trials_50_100": float(values[50:100].mean()),
                        "last_50": float(values[-50:].mean()), "growth": float(values[-50:].mean() - values[50:100].mean()),
                        "slope_mb_per_100_trials": 100 * slope, "max": float(values.max())}
    print(json.dumps(summary, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": vars(args), "summary": summary, "samples": samples}, indent=1))


if __name__ == "__main__":
    main()

"""Controller overhead per child: sampling one architecture plus its share of a REINFORCE update.

Runs ask+tell with a synthetic reward (no training) on the default chain-cnn space (6 layers, 42
decisions) and reports the median over repeats of milliseconds per child; random search's ask+tell
is measured in the same process as the baseline.

    python benchmarks/speed/controller_overhead.py [--children 800] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numpy as np
import torch

from nasforge.spaces import create_space
from nasforge.strategies import create_strategy


def per_child_ms(name: str, children: int, seed: int) -> float:
    space = create_space("chain-cnn", num_layers=6, dims=1)
    strategy = create_strategy(name)
    strategy.setup(space, seed)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for _ in range(children):
        p = strategy.ask()
        strategy.tell(p.tokens, float(rng.random()), p.info)
    return (time.perf_counter() - start) / children * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--children", type=int, default=800)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    result = {"date": time.strftime("%Y-%m-%d"), "machine": platform.machine(), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "children": args.children}
    for name in ("reinforce", "random"):
        runs = [per_child_ms(name, args.children, seed) for seed in range(args.repeats)]
        result[name] = {"median_ms": statistics.median(runs), "runs_ms": runs}
    result["ratio_reinforce_to_random"] = result["reinforce"]["median_ms"] / result["random"]["median_ms"]
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

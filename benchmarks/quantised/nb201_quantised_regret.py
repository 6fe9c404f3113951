"""Regret of each strategy on nb201-cifar10 when the searched objective is the quantised accuracy
the table carries (post-training quantised ``ptq_acc``, quantisation-aware trained ``qat_acc``),
beside the full-precision ``val_acc``: the same table, seeds and budgets as the fp32 tables of
docs/benchmarks-tabular.md.

A run asks the strategy, looks the cell up, and rewards it with the chosen metric (identity, as
``nasforge benchmark`` does for val_acc); regret after t queries is the table's best value of that
metric minus the best value found. The table holds one number per cell and metric (no separate
validation split), so the metric searched is also the one scored, as for val_acc there. The
strategies get the benchmark harness's settings (``compare.plan.tabular_settings``).

    OMP_NUM_THREADS=1 python benchmarks/quantised/nb201_quantised_regret.py --seeds 100-119
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Dict, List

import numpy as np

METRICS = ("val_acc", "ptq_acc", "qat_acc")
STRATEGIES = ("random", "evolution", "reinforce", "reinforce-elite", "bananas", "tpe")
CHECKPOINTS = (100, 300)


def one_run(job) -> Dict[str, object]:
    import torch

    from nasforge.compare.plan import tabular_settings
    from nasforge.spaces.base import create_space
    from nasforge.strategies.base import create_strategy

    torch.set_num_threads(1)
    strategy_name, metric, seed, budget = job
    space = create_space("nb201-cifar10")
    best_possible = float(space.all_metrics()[metric].max())
    strategy = create_strategy(strategy_name, **tabular_settings(strategy_name))
    strategy.setup(space, seed)
    best, curve = -np.inf, []
    for _ in range(budget):
        proposal = strategy.ask()
        metrics = space.lookup(proposal.tokens)
        strategy.tell(proposal.tokens, metrics[metric], {**proposal.info, "metrics": metrics, "feasible": True})
        best = max(best, metrics[metric])
        curve.append(best_possible - best)
    return {"strategy": strategy_name, "metric": metric, "seed": seed,
            "regret": {str(c): float(curve[c - 1]) for c in CHECKPOINTS if c <= budget}}


def seeds_of(text: str) -> List[int]:
    if "-" in text:
        low, high = text.split("-")
        return list(range(int(low), int(high) + 1))
    return [int(s) for s in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="100-119")
    parser.add_argument("--budget", type=int, default=300)
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    args = parser.parse_args()
    jobs = [(s, m, seed, args.budget) for m in METRICS for s in args.strategies.split(",")
            for seed in seeds_of(args.seeds)]
    start = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        runs = list(pool.map(one_run, jobs))
    table = {}
    for m in METRICS:
        for s in args.strategies.split(","):
            mine = [r for r in runs if r["metric"] == m and r["strategy"] == s]
            table.setdefault(m, {})[s] = {
                c: {"mean": float(np.mean([r["regret"][c] for r in mine])),
                    "se": float(np.std([r["regret"][c] for r in mine]) / np.sqrt(len(mine))),
                    "optimum_found": sum(r["regret"][c] == 0.0 for r in mine)}
                for c in mine[0]["regret"]}
    print(json.dumps({"regret": table, "seeds": args.seeds, "budget": args.budget,
                      "seconds": time.perf_counter() - start, "date": time.strftime("%Y-%m-%d %H:%M"),
                      "machine": f"{platform.machine()}, {os.cpu_count()} cores", "load": os.getloadavg()},
                     indent=1))


if __name__ == "__main__":
    main()

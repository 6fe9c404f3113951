"""The latency-constrained cora task when a proposal over the limit costs no query.

Latency is measured on an untrained network in milliseconds, while training a child takes minutes,
so a search with a hard latency limit need not train a child it would reject. This script asks
how much that is worth on issue 4's cora task (``hardware_targets.constrained_task``: MnasNet's
hard-constraint reward, limit at the table's 25th percentile, 200 queries, gap = 81.67 minus the
best validation accuracy found within the limit, in points). Three protocols:

- ``count``: every proposal is a query (the target's protocol; the same gaps as
  ``hardware_targets.py`` and ``reinforce_variants.py``);
- ``untold``: a proposal over the limit is dropped before it is trained: it is not a query and the
  strategy is not told about it;
- ``told``: dropped and not a query, but the strategy is told its MnasNet reward, so it can learn
  where the limit is.

At most ``--max-free`` proposals per query are dropped; past that a proposal over the limit is
counted as a query, so a strategy that only proposes such networks still ends.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/hardware/free_limit_checks.py --seeds 100-119
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from typing import Any, Dict, List

import numpy as np
import torch

from nasforge.compare.plan import BenchmarkPlan
from nasforge.estimators.base import create_estimator
from nasforge.loop import trial_seed
from nasforge.strategies.base import create_strategy

import hardware_targets
from reinforce_variants import seed_range

PROTOCOLS = ("count", "untold", "told")
STRATEGIES: Dict[str, tuple] = {
    "random": ("random", {}),
    "evolution": ("evolution", {}),
    "reinforce-elite": ("reinforce-elite", {}),
    "reinforce-elite, mutate 0.75 recent": ("reinforce-elite", {"mutate": 0.75, "parents": "recent"}),
}


def search(strategy: str, settings: Dict[str, Any], seed: int, protocol: str, budget: int = 200,
           max_free: int = 100) -> Dict[str, Any]:
    """One search; the gap in points, the proposals dropped for free, and the queries over the limit."""
    space, limit, best_feasible, reward = hardware_targets.constrained_task()
    # the harness's own run: its scorer (identity transform) and its settings for the strategy
    spec = BenchmarkPlan([strategy], ["nbgraph-cora"], [seed], budget=budget, settings={strategy: settings},
                         reward=reward).tasks()[0]
    scorer = spec.scorer()
    estimator = create_estimator("tabular")
    estimator.setup(space)
    strat = create_strategy(spec.strategy, **spec.settings)
    strat.setup(space, seed)
    best, queries, dropped, over = -np.inf, 0, 0, 0
    while queries < budget:
        proposal = strat.ask()
        # the tabular estimator's seed is that of the next query; it does not change a table's metrics
        metrics = estimator.evaluate(proposal.tokens, trial_seed(seed, queries))
        evaluation = scorer.evaluate(metrics)
        info = {**proposal.info, "metrics": metrics, "feasible": evaluation.feasible}
        meets = metrics["latency_ms"] <= limit
        if not meets and protocol != "count" and dropped < max_free * (queries + 1):
            dropped += 1
            if protocol == "told":
                strat.tell(proposal.tokens, evaluation.reward, info)
            continue
        queries += 1
        over += not meets
        strat.tell(proposal.tokens, evaluation.reward, info)
        if meets:
            best = max(best, float(metrics["val_acc"]))
    return {"gap": 100 * (best_feasible - best), "dropped": dropped, "over_limit_queries": over}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=seed_range, default=seed_range("100-119"), help="e.g. 100-119")
    parser.add_argument("--budget", type=int, default=200)
    parser.add_argument("--max-free", type=int, default=100)
    parser.add_argument("--only", nargs="+", choices=sorted(STRATEGIES))
    parser.add_argument("--protocols", nargs="+", choices=PROTOCOLS, default=list(PROTOCOLS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    result: Dict[str, Any] = {"seeds": args.seeds, "budget": args.budget, "max_free": args.max_free, "rows": {},
                              "machine": f"{platform.machine()}, torch {torch.__version__}"}
    path = hardware_targets.OUT / f"free_limit_checks-{args.seeds[0]}-{args.seeds[-1]}.json"
    hardware_targets.OUT.mkdir(parents=True, exist_ok=True)
    for label in args.only or STRATEGIES:
        name, settings = STRATEGIES[label]
        for protocol in args.protocols:
            start = time.perf_counter()
            runs: List[Dict[str, Any]] = [search(name, settings, s, protocol, args.budget, args.max_free)
                                          for s in args.seeds]
            gaps = [r["gap"] for r in runs]
            row = {"strategy": name, "settings": settings, "protocol": protocol, "gaps": gaps,
                   "gap": hardware_targets._stats(gaps), "found_top_two": int(sum(g < 0.1 for g in gaps)),
                   "dropped_per_run": float(np.mean([r["dropped"] for r in runs])),
                   "over_limit_queries_per_run": float(np.mean([r["over_limit_queries"] for r in runs])),
                   "wall_s": time.perf_counter() - start}
            result["rows"][f"{label} / {protocol}"] = row
            print(f"{label:36s} {protocol:7s} gap {np.mean(gaps):.3f} ± {np.std(gaps, ddof=1):.3f}  "
                  f"top two found {row['found_top_two']}  dropped/run {row['dropped_per_run']:.0f}  "
                  f"over-limit queries/run {row['over_limit_queries_per_run']:.0f}  ({row['wall_s']:.0f} s)",
                  flush=True)
            path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

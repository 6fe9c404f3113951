"""Choose strategy defaults on tabular benchmarks: a tight in-process ask -> lookup -> tell loop.

No store and no search harness: each run is ``budget`` queries (repeats count) with reward =
``val_acc``. For every checkpoint budget it reports, over the seeds, the mean ± std regret in
percentage points of the best-by-validation architecture found so far:

* ``val``: best validation accuracy in the table minus the best found;
* ``test``: best test accuracy in the table minus the test accuracy of the architecture found
  (on nb201-cifar10 the table has one accuracy per cell, so both are the same);
* ``opt``: in how many seeds the best-by-validation cell of the whole table was found;
* ``ms``: ask+tell overhead per trial (lookups excluded) over the trials since the previous
  checkpoint, mean over runs (one torch thread unless ``--threads`` says otherwise).

A strategy is ``name`` or ``name:key=value,key=value``; ``a|b`` in a value makes a grid::

    python benchmarks/search/tune_strategies.py random "evolution:population_size=10|20,sample_size=3|5" \\
        --spaces nb201-cifar10 nbgraph-cora --seeds 20 --budgets 100 300
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from typing import Any, Dict, List, Tuple

import torch

import nasforge  # noqa: F401  (registers the benchmark spaces)
from nasforge.estimators.base import TrialFailed, create_estimator
from nasforge.spaces import create_space
from nasforge.strategies import create_strategy


def parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def expand(spec: str) -> List[Tuple[str, Dict[str, Any]]]:
    """``name:key=a|b,other=c`` -> one (name, settings) per grid point."""
    name, _, rest = spec.partition(":")
    keys, options = [], []
    for item in filter(None, rest.split(",")):
        key, _, values = item.partition("=")
        keys.append(key)
        options.append([parse_value(v) for v in values.split("|")])
    return [(name, dict(zip(keys, combo))) for combo in itertools.product(*options)]


def label(name: str, settings: Dict[str, Any]) -> str:
    return name + ("" if not settings else ":" + ",".join(f"{k}={v}" for k, v in settings.items()))


def run(name: str, settings: Dict[str, Any], space, estimator, seed: int, budgets: List[int],
        best: Dict[str, float]) -> Dict[str, Any]:
    strategy = create_strategy(name, **settings)
    strategy.setup(space, seed)
    found_val, found_test = -1.0, 0.0
    overhead, last = 0.0, 0
    result: Dict[str, Any] = {}
    for n in range(1, max(budgets) + 1):
        start = time.perf_counter()
        proposal = strategy.ask()
        overhead += time.perf_counter() - start
        try:
            metrics = estimator.evaluate(proposal.tokens, seed)
            reward = float(metrics["val_acc"])
        except TrialFailed:
            metrics, reward = None, 0.0
        start = time.perf_counter()
        strategy.tell(proposal.tokens, reward, proposal.info)
        overhead += time.perf_counter() - start
        if metrics is not None and metrics["val_acc"] > found_val:
            found_val, found_test = metrics["val_acc"], metrics["test_acc"]
        if n in budgets:
            result[n] = {"val": 100 * (best["val"] - found_val), "test": 100 * (best["test"] - found_test),
                         "opt": found_val >= best["val"], "ms": 1000 * overhead / (n - last)}
            overhead, last = 0.0, n
    return result


def summarise(runs: List[Dict[str, Any]], budget: int) -> Dict[str, Any]:
    def ms(key):
        values = [r[budget][key] for r in runs]
        return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)

    return {"val": ms("val"), "test": ms("test"), "opt": sum(r[budget]["opt"] for r in runs),
            "seeds": len(runs), "ms": statistics.mean(r[budget]["ms"] for r in runs)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("strategies", nargs="+")
    parser.add_argument("--spaces", nargs="+", default=["nb201-cifar10", "nbgraph-cora",
                                                        "nbgraph-citeseer", "nbgraph-pubmed"])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds first-seed .. first-seed + seeds - 1 (tuning: 0; held out: 100)")
    parser.add_argument("--budgets", type=int, nargs="+", default=[100, 300])
    parser.add_argument("--json", help="also write every summary to this file")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: the strategies' tensors are tiny, and spinning threads "
                             "on a busy machine cost more than they gain)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    budgets = sorted(args.budgets)
    spaces = {}
    for space_name in args.spaces:
        space = create_space(space_name)
        estimator = create_estimator("tabular")
        estimator.setup(space)
        table = space.all_metrics()
        top = int(table["val_acc"].argmax())
        space.arch_hash(space.canonical(table["tokens"][0]))  # build lazy indexes outside the timing
        spaces[space_name] = (space, estimator, {"val": float(table["val_acc"][top]),
                                                 "test": float(table["test_acc"].max())})
    rows = []
    for spec in args.strategies:
        for name, settings in expand(spec):
            try:
                create_strategy(name, **settings)
            except ValueError as error:  # e.g. a grid point with sample_size > population_size
                print(f"skipped {label(name, settings)}: {error}")
                continue
            for space_name, (space, estimator, best) in spaces.items():
                seeds = range(args.first_seed, args.first_seed + args.seeds)
                runs = [run(name, settings, space, estimator, seed, budgets, best) for seed in seeds]
                for budget in budgets:
                    s = summarise(runs, budget)
                    rows.append({"strategy": label(name, settings), "space": space_name, "budget": budget, **s})
                    print(f"{label(name, settings):50s} {space_name:17s} {budget:4d}  "
                          f"val {s['val'][0]:.3f} ± {s['val'][1]:.3f}  "
                          f"test {s['test'][0]:.3f} ± {s['test'][1]:.3f}  "
                          f"opt {s['opt']:2d}/{s['seeds']}  {s['ms']:.2f} ms/trial", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"argv": sys.argv[1:], "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()

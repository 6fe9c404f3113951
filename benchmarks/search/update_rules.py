"""Learned update rules against the baselines on one quantised child (issue 17.3a).

Baselines, written as update-rules tokens and trained by the same code as a search's children
(``nasforge/estimators/rule_train.py``): SGD with momentum + STE, Adam + STE, PowerSign, AddSign
and Bop, each at a small grid of learning rates (Bop: of its adaptivity rate gamma), the setting
chosen by mean validation accuracy over the seeds; reported: validation and test accuracy (the
child trained on the 80% training split, tested on the held-out test split), mean and spread.

With ``--search-budget N`` a rule search runs first (``run_search``, the CLI's code: update-rules
space, the given strategy, inline) with seed 0, and its best rule is measured the same way on
seeds the search did not use (``--seeds``, default 100 101 102).

    python benchmarks/search/update_rules.py [--bits 1] [--epochs 4] [--seeds 100 101 102]
        [--search-budget 0] [--search-epochs 2] [--strategy reinforce] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from typing import Dict, List

import torch

from nasforge import SearchConfig, run_search
from nasforge.data import load_dataset
from nasforge.data.datasets import split_validation
from nasforge.estimators.rule_train import quantised_child, rule_optimizers, train_with_rule
from nasforge.estimators.train import predict
from nasforge.spaces.update_rules import REFERENCE_RULES, UpdateRuleSpace

#: name -> (reference rule, [(learning rate, space settings)]) to try
GRID = {
    "sgd-momentum + STE": ("sgd-momentum", [(0.1, {}), (0.3, {})]),
    "adam + STE": ("adam", [(1e-3, {}), (3e-3, {})]),
    "powersign": ("powersign", [(0.03, {}), (0.1, {})]),
    "addsign": ("addsign", [(0.03, {}), (0.1, {})]),
    "bop": ("bop", [(1.0, {"gamma": 1e-3}), (1.0, {"gamma": 1e-2})]),
}


def measure(space: UpdateRuleSpace, groups, lr: float, data, epochs: int, seed: int) -> Dict[str, float]:
    (xt, yt), (xv, yv) = split_validation(data.x_train, data.y_train, 0.2, 0)
    model, weights = quantised_child(space, data.input_shape, data.num_classes, seed)
    optimizers = rule_optimizers(model, weights, space, groups, lr, other_lr=1e-3)
    try:
        history, _ = train_with_rule(model, optimizers, xt, yt, epochs, 64, seed, torch.device("cpu"), xv, yv)
    except Exception as exc:  # noqa: BLE001 - a diverging rule scores 0, as a failed trial
        return {"val_acc": 0.0, "test_acc": 0.0, "error": str(exc)}
    test = float((predict(model, torch.as_tensor(data.x_test)).argmax(1) == data.y_test).mean())
    return {"val_acc": history[-1], "test_acc": test}


def summarise(runs: List[Dict[str, float]]) -> Dict[str, float]:
    out = {}
    for key in ("val_acc", "test_acc"):
        values = [r[key] for r in runs]
        out[key] = statistics.mean(values)
        out[key + "_sd"] = statistics.stdev(values) if len(values) > 1 else 0.0
    return out


def baselines(args, data) -> Dict[str, Dict]:
    results = {}
    for label, (name, settings) in GRID.items():
        tried = []
        for lr, extra in settings:
            space = UpdateRuleSpace(weight_bits=args.bits, **extra)
            runs = [measure(space, REFERENCE_RULES[name][0], lr, data, args.epochs, s) for s in args.seeds]
            tried.append({"lr": lr, **extra, **summarise(runs)})
        results[label] = {**max(tried, key=lambda r: r["val_acc"]), "tried": tried}
    return results


def searched(args, data) -> Dict:
    config = SearchConfig(dataset="mnist1d", budget=args.search_budget, seed=0)
    config.space = {"name": "update-rules", "weight_bits": args.bits}
    config.strategy = {"name": args.strategy, **({"batch_size": 4} if args.strategy == "reinforce" else {})}
    config.training = {"epochs": args.search_epochs}
    config.execution = {"name": "inline"}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        result = run_search(config, folder)
    best = result.best[0]
    space = UpdateRuleSpace(weight_bits=args.bits)
    groups, lr = space.rule(best.tokens)
    runs = [measure(space, groups, lr, data, args.epochs, s) for s in args.seeds]
    return {"rule": space.summary(best.tokens), "tokens": list(best.tokens), "search_val_acc": best.objective,
            "search_seconds": time.perf_counter() - start, **summarise(runs)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bits", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seeds", type=int, nargs="+", default=[100, 101, 102])
    parser.add_argument("--search-budget", type=int, default=0)
    parser.add_argument("--search-epochs", type=int, default=2)
    parser.add_argument("--strategy", default="reinforce")
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_dataset("mnist1d")
    start = time.perf_counter()
    results = {"baselines": baselines(args, data)}
    if args.search_budget:
        results["search"] = searched(args, data)
    results["seconds"] = time.perf_counter() - start
    print(f"| optimiser ({args.bits}-bit weights) | setting | val acc % | test acc % |")
    print("| --- | --- | --- | --- |")
    rows = list(results["baselines"].items()) + ([("found: " + results["search"]["rule"], results["search"])]
                                                  if "search" in results else [])
    for label, r in rows:
        setting = f"lr {r['lr']:g}" + (f", gamma {r['gamma']:g}" if "gamma" in r else "") if "lr" in r else "as found"
        print(f"| {label} | {setting} | {100 * r['val_acc']:.1f} ± {100 * r['val_acc_sd']:.1f} "
              f"| {100 * r['test_acc']:.1f} ± {100 * r['test_acc_sd']:.1f} |")
    print(f"total {results['seconds']:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()

"""The neural optimiser whose outputs are quantised weights (issue 17.3b), trained by REINFORCE and
by evolution strategies on the same budget of episodes, then frozen and measured on children the
training never saw, beside the starting policy (issue 17.3b; ``nasforge/quant/level_moves.py``).

An episode trains the ``rule-train`` estimator's fixed MNIST-1D child (weights at ``--bits``) for
``--epochs`` with the policy choosing every weight's level at every step; its reward is the
quantised network's validation accuracy. Training tasks use child seeds from 1000 up; the frozen
policies are measured on ``--test-seeds`` (validation and test accuracy, mean and spread).

    OMP_NUM_THREADS=1 python benchmarks/quantised/neural_optimiser.py --bits 1 --epochs 4 \\
        --iterations 25 --episodes 8 --json /tmp/neural.json
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from typing import Dict, List

import torch

from nasforge.data import load_dataset
from nasforge.quant import meta_train
from nasforge.quant.level_moves import MovePolicy
from nasforge.quant.meta_train import Task


def summary(runs: List[Dict]) -> Dict[str, float]:
    out: Dict[str, float] = {}
    for key in ("val_acc", "test_acc"):
        values = [r[key] for r in runs]
        out[key], out[key + "_sd"] = statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0
    return out


def train(method: str, start: MovePolicy, task: Task, args) -> Dict:
    policy = copy.deepcopy(start)
    log = lambda r: print(f"  {method} it {r['iteration']:3d}  mean {r['mean_reward']:.3f}  max {r['max_reward']:.3f}"
                          f"  moves {r['moves']:.0f}  {r['seconds']:.1f} s", flush=True)
    begin = time.perf_counter()
    if method == "reinforce":
        history = meta_train.reinforce(policy, task, args.iterations, episodes=args.episodes, lr=args.reinforce_lr,
                                       log=log)
    else:
        history = meta_train.evolution_strategies(policy, task, args.iterations, pairs=args.episodes // 2,
                                                  sigma=args.sigma, lr=args.es_lr, log=log)
    return {"policy": policy, "history": history, "seconds": time.perf_counter() - begin}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bits", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=25)
    parser.add_argument("--episodes", type=int, default=8, help="episodes per iteration (ES: pairs = half)")
    parser.add_argument("--methods", nargs="+", default=["reinforce", "es"])
    parser.add_argument("--reinforce-lr", type=float, default=0.01)
    parser.add_argument("--es-lr", type=float, default=0.02)
    parser.add_argument("--sigma", type=float, default=0.05)
    parser.add_argument("--start-gain", type=float, default=10.0)
    parser.add_argument("--drive-rate", type=float, default=0.2)
    parser.add_argument("--test-seeds", type=int, nargs="+", default=[100, 101, 102, 103, 104])
    parser.add_argument("--json")
    parser.add_argument("--save-policies", help="folder for the trained policies' state dicts")
    args = parser.parse_args()
    torch.set_num_threads(1)
    task = Task(load_dataset("mnist1d"), bits=args.bits, epochs=args.epochs, drive_rate=args.drive_rate)
    torch.manual_seed(0)
    start = MovePolicy(start_gain=args.start_gain)
    results: Dict[str, Dict] = {"start": {"runs": meta_train.evaluate(start, task, args.test_seeds)}}
    for method in args.methods:
        trained = train(method, start, task, args)
        results[method] = {"runs": meta_train.evaluate(trained["policy"], task, args.test_seeds),
                           "history": trained["history"], "train_seconds": trained["seconds"]}
        if args.save_policies:
            torch.save(trained["policy"].state_dict(), f"{args.save_policies}/{method}-{args.bits}bit.pt")
    print(f"| policy ({args.bits}-bit weights) | episodes | val acc % | test acc % |")
    print("| --- | --- | --- | --- |")
    for name, r in results.items():
        s = summary(r["runs"])
        r.update(s)
        episodes = 0 if name == "start" else args.iterations * args.episodes
        print(f"| {name} | {episodes} | {100 * s['val_acc']:.1f} ± {100 * s['val_acc_sd']:.1f} "
              f"| {100 * s['test_acc']:.1f} ± {100 * s['test_acc_sd']:.1f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), **results}, f, indent=1)


if __name__ == "__main__":
    main()

"""The neural optimiser whose outputs are quantised weights (issue 17.3b), trained by REINFORCE and
by evolution strategies on the same budget of episodes, then frozen and measured on children the
training never saw, beside the starting policy (issue 17.3b; ``nasforge/quant/level_moves.py``).

An episode trains the ``rule-train`` estimator's fixed MNIST-1D child (weights at ``--bits``) for
``--epochs`` with the policy choosing every weight's level at every step; its reward is the
quantised network's validation accuracy. Training tasks use child seeds from 1000 up; the frozen
policies are measured on ``--test-seeds`` (validation and test accuracy, mean and spread).

    OMP_NUM_THREADS=1 python benchmarks/quantised/neural_optimiser.py --bits 1 --epochs 4 \\
        --iterations 25 --episodes 8 --json /tmp/neural.json

With ``--compare`` nothing is trained: saved policies (``NAME=FILE.pt``, or ``NAME=start`` for the
untrained start) and baselines (``--baselines adam=0.01``: a ``REFERENCE_RULES`` name and its
learning rate, run by the same code as an episode's child) are measured on the same test seeds.
With ``--noise`` nothing is trained either: the start policy's reward on one training task is
measured under each source of variation alone (sampling seed, a 1e-4 move of the policy's
parameters, child seed, nothing), the noise a trainer has to see through.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path
from typing import Dict, List

import torch

from nasforge.data import load_dataset
from nasforge.quant import meta_train
from nasforge.quant.level_moves import MovePolicy
from nasforge.quant.meta_train import Task, run_rule
from nasforge.spaces.update_rules import REFERENCE_RULES


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


def compare(args, task: Task) -> Dict[str, Dict]:
    """The saved policies and the baselines on ``--test-seeds``."""
    results: Dict[str, Dict] = {}
    for spec in args.compare:
        name, source = spec.split("=", 1)
        policy = MovePolicy(start_gain=args.start_gain)
        if source != "start":
            policy.load_state_dict(torch.load(source))
        results[name] = {"runs": meta_train.evaluate(policy, task, args.test_seeds)}
        print(f"  {name}: {summary(results[name]['runs'])}", flush=True)
    for spec in args.baselines:
        name, rates = spec.split("=", 1)
        lr, tried = tuned_rate(task, name, [float(r) for r in rates.split(",")], args.tune_seeds)
        results[f"{name} + STE, lr {lr:g}"] = {"runs": [run_rule(task, REFERENCE_RULES[name][0], lr, s)
                                                       for s in args.test_seeds], "tried": tried}
    return results


def tuned_rate(task: Task, name: str, rates: List[float], seeds: List[int]):
    """The rate of the highest mean validation accuracy on ``seeds`` (training tasks, never the test
    seeds), with every rate's; one rate given is taken as it is."""
    if len(rates) == 1:
        return rates[0], {}
    tried = {lr: statistics.mean(run_rule(task, REFERENCE_RULES[name][0], lr, s)["val_acc"] for s in seeds)
             for lr in rates}
    best = max(tried, key=tried.get)
    print(f"  {name}: lr {best:g} on seeds {seeds} ({', '.join(f'{lr:g} {100 * v:.1f}' for lr, v in tried.items())})",
          flush=True)
    return best, {f"{lr:g}": v for lr, v in tried.items()}


def noise(task: Task, start: MovePolicy, repeats: int = 6) -> Dict[str, List[float]]:
    """Rewards of the start policy on child seed 1000 under one source of variation at a time."""
    theta = torch.nn.utils.parameters_to_vector(start.parameters()).detach()
    moved = torch.Generator().manual_seed(1)

    def nudged():
        policy = copy.deepcopy(start)
        torch.nn.utils.vector_to_parameters(theta + 1e-4 * torch.randn(theta.shape, generator=moved),
                                            policy.parameters())
        return policy
    rows = {"nothing": [meta_train.run_episode(start, task, 1000, 5)["reward"] for _ in range(2)],
            "sampling seed": [meta_train.run_episode(start, task, 1000, s)["reward"] for s in range(repeats)],
            "parameters moved by 1e-4": [meta_train.run_episode(nudged(), task, 1000, 5)["reward"]
                                         for _ in range(repeats)],
            "child seed": [meta_train.run_episode(start, task, s, 5)["reward"] for s in range(1001, 1001 + repeats)]}
    for name, values in rows.items():
        print(f"| {name} | {100 * min(values):.1f} to {100 * max(values):.1f} | {100 * statistics.stdev(values):.1f} |")
    return rows


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
    parser.add_argument("--greedy", action="store_true", help="most likely action, not sampled (ES only)")
    parser.add_argument("--test-seeds", type=int, nargs="+", default=[100, 101, 102, 103, 104])
    parser.add_argument("--compare", nargs="+", metavar="NAME=FILE", help="measure saved policies, train nothing")
    parser.add_argument("--baselines", nargs="*", default=[], metavar="RULE=LR[,LR...]",
                        help="with several rates, the one best on --tune-seeds is measured")
    parser.add_argument("--tune-seeds", type=int, nargs="+", default=[1000, 1001, 1002, 1003],
                        help="child seeds the baselines' rates are chosen on (training tasks' seeds)")
    parser.add_argument("--noise", action="store_true", help="measure the reward's noise, train nothing")
    parser.add_argument("--json")
    parser.add_argument("--save-policies", help="folder for the trained policies' state dicts")
    args = parser.parse_args()
    if args.greedy and "reinforce" in args.methods:
        parser.error("--greedy takes no sampled actions: REINFORCE cannot train it (use --methods es)")
    if args.save_policies:  # made now: a folder that cannot be made must not cost a training first
        Path(args.save_policies).mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    task = Task(load_dataset("mnist1d"), bits=args.bits, epochs=args.epochs, drive_rate=args.drive_rate,
                greedy=args.greedy)
    torch.manual_seed(0)
    start = MovePolicy(start_gain=args.start_gain)
    if args.noise:
        print("| varied | validation acc % | sd (points) |\n| --- | --- | --- |")
        rows = noise(task, start)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))
        return
    if args.compare:
        results = compare(args, task)
        args.methods = []
    else:
        results = {"start": {"runs": meta_train.evaluate(start, task, args.test_seeds)}}
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
        episodes = "-" if args.compare else (args.iterations * args.episodes if name in ("reinforce", "es") else 0)
        print(f"| {name} | {episodes} | {100 * s['val_acc']:.1f} ± {100 * s['val_acc_sd']:.1f} "
              f"| {100 * s['test_acc']:.1f} ± {100 * s['test_acc_sd']:.1f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), **results}, f, indent=1)


if __name__ == "__main__":
    main()

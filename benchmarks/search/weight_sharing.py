"""Weight-sharing (ENAS-style) search on MNIST-1D, then the best architecture retrained from scratch.

For each seed:

1. a REINFORCE search whose children are evaluated by the ``shared-weights`` estimator (one
   supernet, a few SGD steps per child, reward = validation accuracy with the shared weights);
2. candidates (the distinct architectures of the last trials and fresh samples of the final
   controller) ranked by the shared weights on the whole validation split;
3. the top-k trained from scratch by the ordinary estimator (``train``: 8 epochs, validation
   accuracy), the best of them retrained for 60 epochs on train+validation without augmentation
   (the recipe the full search's reference figure used; ``nasforge retrain`` now trains longer,
   with shifts) and tested. Nothing before the last step looks at the test split.

Baseline in the same run: random search with the ordinary estimator at the same child-epoch budget,
its best architecture retrained and tested the same way. The full search it is all measured against
(300 children x 8 epochs) is in docs/benchmarks.md. Compute is counted in child-epochs: training
samples seen (by the shared weights, then by the re-ranked children) divided by the training split's
size; validation forward passes are reported beside it. FLOP-epochs weight the same samples by the
forward FLOPs of the stand-alone network each one trained (``flop_epochs``), the measure
``fidelity_compute.py`` gives for the full search. ``--no-retrain`` stops after the re-ranking.

    OMP_NUM_THREADS=1 python benchmarks/search/weight_sharing.py --seeds 0 1 [--trials 400 --steps 5 ...] [--tag T]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from nasforge.data import load_dataset
from nasforge.estimators.base import TrialFailed
from nasforge.estimators.train import TrainEstimator, TrainRecipe, retrain_and_test
from nasforge.estimators.weight_sharing import SharedWeightsEstimator
from nasforge.objectives.objective import Objective
from nasforge.loop import trial_seed
from nasforge.spaces.chain_cnn import ChainCNNSpace
from nasforge.strategies.base import create_strategy

OUT = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
FULL_SEARCH = {"child_epochs": 300 * 8, "wall_seconds": 498.0, "test_acc": 0.9835}  # docs/benchmarks.md


class Clock:
    """Wall and CPU seconds together: CPU time stays meaningful when others share the cores."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def read(self):
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def log(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def shared_search(args, seed: int, space, data):
    """The ordinary loop (ask -> evaluate -> reward -> tell) with the shared-weights estimator."""
    strategy = create_strategy("reinforce", learning_rate=args.controller_lr, batch_size=args.m)
    strategy.setup(space, seed)
    estimator = SharedWeightsEstimator(steps=args.steps, warmup_steps=args.warmup, eval_size=args.eval_size,
                                       learning_rate=args.lr, seed=seed, device="cpu")
    estimator.setup(space, data)
    objective = Objective()
    trials, epochs, val_samples = [], 0.0, 0
    eval_n = args.eval_size or len(estimator.y_val)
    trained = log_training_steps(estimator)
    clock = Clock()
    for number in range(args.trials):
        proposal = strategy.ask()
        try:
            metrics = estimator.evaluate(proposal.tokens, trial_seed(seed, number))
            reward = objective.reward(objective.value(metrics))
            epochs += metrics["epochs"]
            val_samples += eval_n
            trials.append((tuple(proposal.tokens), metrics["val_acc"]))
        except TrialFailed:
            reward = objective.failure_penalty
        strategy.tell(proposal.tokens, reward, proposal.info)
        if (number + 1) % 100 == 0:
            log(f"seed {seed}: {number + 1} children, {clock.read()[0]:.0f} s, "
                f"shared val acc of the last 100 {statistics.mean(a for _, a in trials[-100:]):.3f}")
    # Ranking by the final shared weights: recent architectures and fresh samples of the policy.
    candidates = list(dict.fromkeys(t for t, _ in trials[-args.recent:]))
    candidates += [tuple(strategy.ask().tokens) for _ in range(args.samples)]
    candidates = list(dict.fromkeys(candidates))
    scored = sorted(((estimator.validation_accuracy(t, size=0), t) for t in candidates), reverse=True)
    val_samples += len(candidates) * len(estimator.y_val)
    wall, cpu = clock.read()
    last = [a for _, a in trials[-50:]]
    batch = estimator.settings()["batch_size"]
    flop_epochs = sum(estimator.stand_alone(t)[1] * steps * batch for t, steps in trained) / len(estimator.y_train)
    return {"shared_wall_seconds": wall, "shared_cpu_seconds": cpu, "shared_child_epochs": epochs,
            "shared_flop_epochs": flop_epochs,
            "val_forward_epochs": val_samples / len(estimator.y_train), "candidates": len(candidates),
            "shared_val_acc_last50_mean": statistics.mean(last),
            "ranked": [{"tokens": list(t), "shared_val_acc": acc} for acc, t in scored[: args.top_k]]}


def log_training_steps(estimator):
    """The (architecture, steps) of every shared-weight training call, warm-up included, for the
    FLOP count made after the clock stops."""
    trained, train_steps = [], estimator.train_steps

    def logged(tokens, steps, generator):
        trained.append((tuple(tokens), steps))
        return train_steps(tokens, steps, generator)

    estimator.train_steps = logged
    return trained


def train_and_pick(entries, space, data, seed: int):
    """Train each entry from scratch with the ordinary estimator; the best validation accuracy wins."""
    trainer = TrainEstimator(device="cpu")
    trainer.setup(space, data)
    clock, epochs, flop_epochs = Clock(), 0, 0.0
    for i, entry in enumerate(entries):
        try:
            m = trainer.evaluate(tuple(entry["tokens"]), trial_seed(seed, 10_000 + i))
            entry["val_acc_8ep"], epochs = m["val_acc"], epochs + m["epochs"]
            flop_epochs += m["flops"] * m["epochs"]
        except TrialFailed as exc:
            entry["val_acc_8ep"], entry["error"] = None, str(exc)
    wall, cpu = clock.read()
    best = max((e for e in entries if e["val_acc_8ep"] is not None), key=lambda e: e["val_acc_8ep"])
    return best, {"train_wall_seconds": wall, "train_cpu_seconds": cpu, "train_child_epochs": epochs,
                  "train_flop_epochs": flop_epochs}


def retrain(entry, space, data, epochs: int):
    _, ev = retrain_and_test(space, tuple(entry["tokens"]), data, TrainRecipe(epochs=epochs), seed=0, device="cpu")
    return {"tokens": entry["tokens"], "summary": space.summary(entry["tokens"]), "test_acc": ev["test_acc"],
            "params": ev["params"], "flops": ev["flops"], "retrain_seconds": ev["train_seconds"]}


def totals(row):
    row["child_epochs"] = row.get("shared_child_epochs", 0.0) + row["train_child_epochs"]
    row["wall_seconds"] = row.get("shared_wall_seconds", 0.0) + row["train_wall_seconds"]
    row["cpu_seconds"] = row.get("shared_cpu_seconds", 0.0) + row["train_cpu_seconds"]
    row["flop_epochs"] = row.get("shared_flop_epochs", 0.0) + row["train_flop_epochs"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--trials", type=int, default=400)
    parser.add_argument("--steps", type=int, default=5, help="shared-weight steps per child")
    parser.add_argument("--warmup", type=int, default=1000, help="steps on uniform architectures first")
    parser.add_argument("--eval-size", type=int, default=256, help="validation signals per reward (0: all)")
    parser.add_argument("--lr", type=float, default=2e-3, help="shared weights' AdamW learning rate")
    parser.add_argument("--controller-lr", type=float, default=0.005)
    parser.add_argument("--m", type=int, default=8, help="children per controller update")
    parser.add_argument("--recent", type=int, default=50, help="candidates from the last N trials")
    parser.add_argument("--samples", type=int, default=50, help="candidates sampled from the final policy")
    parser.add_argument("--top-k", type=int, default=5, help="re-ranked by the ordinary estimator")
    parser.add_argument("--retrain-epochs", type=int, default=60)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--no-retrain", action="store_true",
                        help="stop after the re-ranking (compute only; no test accuracy)")
    parser.add_argument("--tag", default="default")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1; the full search it is compared with uses 2 on this machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset("mnist1d")
    space = ChainCNNSpace(num_layers=6, dims=1)
    rows = []
    for seed in args.seeds:
        row = {"method": "shared-weights", "seed": seed, **shared_search(args, seed, space, data)}
        best, cost = train_and_pick(row["ranked"], space, data, seed)
        row.update(cost, best=None if args.no_retrain else retrain(best, space, data, args.retrain_epochs))
        rows.append(totals(row))
        print(json.dumps(row), flush=True)
        if args.no_baseline:
            continue
        # Baseline: random search with the ordinary estimator, same child-epoch budget.
        n = max(1, round(row["child_epochs"] / TrainRecipe().epochs))
        rng = np.random.default_rng(seed)
        entries = [{"tokens": list(space.sample(rng))} for _ in range(n)]
        best, cost = train_and_pick(entries, space, data, seed)
        base = totals({"method": f"random x {n}, 8 epochs", "seed": seed, **cost,
                       "best": None if args.no_retrain else retrain(best, space, data, args.retrain_epochs)})
        rows.append(base)
        print(json.dumps(base), flush=True)
    summary = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {platform.processor() or '?'}",
               "torch_threads": torch.get_num_threads(), "args": vars(args), "full_search": FULL_SEARCH, "runs": rows}
    for method in ("shared-weights", "random"):
        sel = [r for r in rows if r["method"].startswith(method)]
        if not sel:
            continue
        stats = {"test_acc": [r["best"]["test_acc"] for r in sel if r["best"]],
                 "child_epochs": [r["child_epochs"] for r in sel], "flop_epochs": [r["flop_epochs"] for r in sel],
                 "wall_seconds": [r["wall_seconds"] for r in sel], "cpu_seconds": [r["cpu_seconds"] for r in sel]}
        summary[method] = {k: {"mean": statistics.mean(v), "std": statistics.stdev(v) if len(v) > 1 else 0.0,
                               "median": statistics.median(v), "values": v} for k, v in stats.items() if v}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"weight-sharing-{args.tag}.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=1))


if __name__ == "__main__":
    main()

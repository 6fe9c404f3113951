"""Issue 17.2's target, side by side in one run (about 2 x 30 minutes of search plus retrains per
seed; see docs/benchmarks-quantised.md for what has been run).

For each search seed on MNIST-1D: an fp32 chain-cnn search and a mixed-precision one
(``space.mixed_precision=true``, reward val_acc with MnasNet's factor on weight_bits), run side by
side, each the default search stopped by SIGTERM after ``--minutes`` (it stops cleanly and keeps its trials), or
after ``--budget`` trials if that comes first. Then, on the test split:
the mixed-precision search's Pareto front of (val_acc, weight_bits) retrained, against the fp32
search's best retrained at uniform 8, 4 and 2 bits (QAT, activations at 8) and in fp32.
Prints, per seed, whether the found front dominates the uniform points and whether a found
network is within 0.5 points of fp32 with at least 8x fewer weight bits.

    python benchmarks/search/mixed_precision_pareto.py --minutes 30 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from nasforge.data.datasets import load_dataset
from nasforge.estimators.train import TrainRecipe, retrain_and_test
from nasforge.quant.metrics import weight_bits
from nasforge.spaces.chain_cnn import ChainCNNSpace


def cli(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "nasforge", *args], check=True, capture_output=True,
                          text=True).stdout


def searches(folders: dict, seed: int, budget: int, limit: int, minutes: float) -> dict:
    """The fp32 and the mixed-precision search of one seed, side by side (so both see the same load),
    each stopped after ``minutes``; per search its trial count and exit code."""
    mixed = ["--set", "space.mixed_precision=true", "--constraint", f"weight_bits<={limit}",
             "--constraint-mode", "mnasnet-hard"]
    processes = {}
    for name, folder in folders.items():
        # one torch thread each: two searches of the default cores // workers threads oversubscribe the
        # two cores (docs/benchmarks-images.md, thread contention); so run, each got 30 children in 30
        # minutes, where one search alone gets about 140 in 15
        command = [sys.executable, "-m", "nasforge", "search", "--experiment", str(folder), "--seed", str(seed),
                   "--budget", str(budget), "--threads-per-worker", "1", "--quiet",
                   *(mixed if name == "mixed" else [])]
        processes[name] = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + minutes * 60
    for process in processes.values():
        try:
            process.wait(timeout=max(0.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGTERM)
    out = {}
    for name, process in processes.items():
        _, errors = process.communicate(timeout=600)
        if process.returncode not in (0, 143):  # 143: stopped by the SIGTERM above
            raise SystemExit(f"the {name} search of seed {seed} failed (exit {process.returncode}): {errors.strip()}")
        trials = json.loads(cli("trials", "--experiment", str(folders[name]), "--json"))
        out[name] = {"trials": len(trials), "complete": sum(t["state"] == "COMPLETE" for t in trials),
                     "exit": process.returncode}
    return out


def test_point(space: ChainCNNSpace, tokens, data, epochs: int, bits: int = 32):
    recipe = TrainRecipe(epochs=epochs, quantization="off" if bits == 32 else "qat", weight_bits=bits,
                         activation_bits=32 if bits == 32 else 8)
    model, metrics = retrain_and_test(space, tuple(tokens), data, recipe, seed=0, device="cpu")
    return metrics["test_acc"], weight_bits(model)


def dominated(point, front) -> bool:
    return any(a >= point[0] and b <= point[1] and (a, b) != tuple(point) for a, b in front)


def one_seed(root: Path, seed: int, args, data) -> dict:
    fp32, mp = root / f"fp32-{seed}", root / f"mp-{seed}"
    runs = searches({"fp32": fp32, "mixed": mp}, seed, args.budget, args.limit, args.minutes)
    best = json.loads(cli("best", "--experiment", str(fp32), "--json"))[0]
    plain = ChainCNNSpace(num_layers=6)
    uniform = {b: test_point(plain, best["tokens"], data, args.epochs, b) for b in (32, 8, 4, 2)}
    front_trials = json.loads(cli("pareto", "--experiment", str(mp), "--metrics", "val_acc,weight_bits", "--json"))
    mixed = ChainCNNSpace(num_layers=6, mixed_precision=True)
    found = [test_point(mixed, t["tokens"], data, args.epochs) for t in front_trials["front"]]
    fp32_acc, fp32_bits = uniform[32]
    return {
        "searches": runs, "uniform": uniform, "found": found,
        "front_dominates_uniform": all(dominated(uniform[b], found) for b in (8, 4, 2)),
        "within_half_point_8x_fewer_bits": any(a >= fp32_acc - 0.005 and w * 8 <= fp32_bits for a, w in found),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=30.0, help="wall time of each search")
    parser.add_argument("--budget", type=int, default=100_000, help="trials per search at most")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=30, help="retrain epochs")
    parser.add_argument("--limit", type=int, default=200_000, help="weight_bits target of MnasNet's factor")
    parser.add_argument("--out", default="runs/mixed-precision-pareto")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    data = load_dataset("mnist1d")
    root = Path(args.out)
    results = {seed: one_seed(root, seed, args, data) for seed in args.seeds}
    print(json.dumps(results, indent=2, default=str))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()

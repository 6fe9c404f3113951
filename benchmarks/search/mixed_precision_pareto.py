"""Issue 17.2's target, side by side in one run (NOT RUN YET: it needs about 3 x 2 x 30 minutes of
search plus retrains on an idle machine; see docs/benchmarks-quantised.md).

For each search seed on MNIST-1D: an fp32 chain-cnn search and a mixed-precision one
(``space.mixed_precision=true``, reward val_acc with MnasNet's factor on weight_bits), each with
the same trial budget (pick it so a search takes <= 30 minutes here). Then, on the test split:
the mixed-precision search's Pareto front of (val_acc, weight_bits) retrained, against the fp32
search's best retrained at uniform 8, 4 and 2 bits (QAT, activations at 8) and in fp32.
Prints, per seed, whether the found front dominates the uniform points and whether a found
network is within 0.5 points of fp32 with at least 8x fewer weight bits.

    OMP_NUM_THREADS=1 python benchmarks/search/mixed_precision_pareto.py --budget 150 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from nasforge.data.datasets import load_dataset
from nasforge.estimators.train import TrainRecipe, retrain_and_test
from nasforge.quant.metrics import weight_bits
from nasforge.spaces.chain_cnn import ChainCNNSpace


def cli(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "nasforge", *args], check=True, capture_output=True,
                          text=True).stdout


def search(folder: Path, seed: int, budget: int, mixed: bool, limit: int) -> None:
    extra = ["--set", "space.mixed_precision=true", "--constraint", f"weight_bits<={limit}",
             "--constraint-mode", "mnasnet-hard"] if mixed else []
    cli("search", "--experiment", str(folder), "--seed", str(seed), "--budget", str(budget), "--quiet", *extra)


def test_point(space: ChainCNNSpace, tokens, data, epochs: int, bits: int = 32):
    recipe = TrainRecipe(epochs=epochs, quantization="off" if bits == 32 else "qat", weight_bits=bits,
                         activation_bits=32 if bits == 32 else 8)
    model, metrics = retrain_and_test(space, tuple(tokens), data, recipe, seed=0, device="cpu")
    return metrics["test_acc"], weight_bits(model)


def dominated(point, front) -> bool:
    return any(a >= point[0] and b <= point[1] and (a, b) != tuple(point) for a, b in front)


def one_seed(root: Path, seed: int, args, data) -> dict:
    fp32, mp = root / f"fp32-{seed}", root / f"mp-{seed}"
    search(fp32, seed, args.budget, False, 0)
    search(mp, seed, args.budget, True, args.limit)
    best = json.loads(cli("best", "--experiment", str(fp32), "--json"))
    plain = ChainCNNSpace(num_layers=6)
    uniform = {b: test_point(plain, best["tokens"], data, args.epochs, b) for b in (32, 8, 4, 2)}
    front_trials = json.loads(cli("pareto", "--experiment", str(mp), "--metrics", "val_acc,weight_bits", "--json"))
    mixed = ChainCNNSpace(num_layers=6, mixed_precision=True)
    found = [test_point(mixed, t["tokens"], data, args.epochs) for t in front_trials["front"]]
    fp32_acc, fp32_bits = uniform[32]
    return {
        "uniform": uniform, "found": found,
        "front_dominates_uniform": all(dominated(uniform[b], found) for b in (8, 4, 2)),
        "within_half_point_8x_fewer_bits": any(a >= fp32_acc - 0.005 and w * 8 <= fp32_bits for a, w in found),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget", type=int, default=150, help="trials per search (<= 30 minutes)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=30, help="retrain epochs")
    parser.add_argument("--limit", type=int, default=200_000, help="weight_bits target of MnasNet's factor")
    parser.add_argument("--out", default="runs/mixed-precision-pareto")
    args = parser.parse_args()
    data = load_dataset("mnist1d")
    root = Path(args.out)
    results = {seed: one_seed(root, seed, args, data) for seed in args.seeds}
    print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()

"""What the chain-cnn space can reach on MNIST-1D: a hand-written architecture, retrained.

Four stride-1 convolutions of 64 filters in a plain chain with a flatten readout, expressed as
chain-cnn tokens and trained exactly as `nasforge retrain` does (its recipe, on train+validation),
then tested on the 1,000 held-out signals. A reference point for the search's results.

    python benchmarks/search/hand_designed.py [--seeds 0 1 2] [--epochs 60] [--shift 0]
"""

from __future__ import annotations

import argparse
import json
import statistics

from nasforge.data import load_dataset
from nasforge.config import SearchConfig
from nasforge.estimators.train import retrain_and_test, retrain_recipe
from nasforge.spaces.chain_cnn import ChainCNNSpace

LAYERS = [("conv", 5, 64), ("conv", 5, 64), ("conv", 5, 64), ("conv", 3, 64)]


def tokens(space: ChainCNNSpace):
    values = {}
    for i in range(space.num_layers):
        op, kernel, filters = LAYERS[i] if i < len(LAYERS) else ("identity", 1, 24)
        values.update({f"L{i}.op": op, f"L{i}.kernel": kernel, f"L{i}.filters": filters, f"L{i}.stride": 1})
        for j in range(i):
            values[f"L{i}.from_L{j}"] = int(j == i - 1)
    values.update({"readout": "flatten", "head.depth": 0, "head.width": 64})
    return space.decode(values)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, help="default: nasforge retrain's")
    parser.add_argument("--shift", type=int, help="default: nasforge retrain's (0: off)")
    args = parser.parse_args()
    space = ChainCNNSpace(num_layers=6, dims=1)
    data = load_dataset("mnist1d")
    recipe = retrain_recipe(SearchConfig().training, args.epochs, args.shift)
    accs = []
    for seed in args.seeds:
        _, metrics = retrain_and_test(space, tokens(space), data, recipe, seed)
        accs.append(metrics["test_acc"])
        print(json.dumps({"seed": seed, **metrics}), flush=True)
    print(f"architecture: {space.summary(tokens(space))}")
    print(f"test accuracy: median {100 * statistics.median(accs):.2f}%, runs {[round(100 * a, 2) for a in accs]}")


if __name__ == "__main__":
    main()

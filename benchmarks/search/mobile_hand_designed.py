"""The hand-designed baseline for ``mobile-blocks`` (issue 19): MobileNetV2 scaled down, and a child's cost.

MobileNetV2's choices written as ``mobile-blocks`` tokens on the space's default skeleton (stem 16,
stages [[16, 1], [24, 2], [32, 2], [64, 1]], head 128): expansion 1 in the first stage and 6
after it, 3 x 3 depthwise kernels, no squeeze-and-excitation, and MobileNetV2's block counts of
its first four stages (1, 2, 3, 4) capped at the space's 3. Its width-multiplier sweep (0.5,
0.75, 1.0) is the accuracy-latency curve a search's front is compared with.

``--retrain`` trains each width as ``nasforge retrain`` does (its recipe, on train+validation) and
tests it; without it, one child per width is trained as a search trains children (the search
defaults: 8 epochs on the training split, scored on validation) and timed, with its latency.

    python benchmarks/search/mobile_hand_designed.py [--dataset digits] [--widths 0.5 0.75 1.0]
        [--seeds 0] [--epochs N] [--retrain]
"""

from __future__ import annotations

import argparse
import json
import os
import time

from nasforge.config import SearchConfig
from nasforge.data import load_dataset
from nasforge.estimators.train import TrainEstimator, retrain_and_test, retrain_recipe
from nasforge.spaces.mobile_blocks import MobileBlocksSpace

MOBILENET_V2_BLOCKS = (1, 2, 3, 4)  # its first four stages; the rest of its seven have no room here


def tokens(space: MobileBlocksSpace, width: float):
    values = {"width": width}
    for s in range(len(space.stages)):
        values[f"S{s}.blocks"] = min(MOBILENET_V2_BLOCKS[min(s, 3)], space.max_blocks)
        prefixes = [f"S{s}.B{b}" for b in range(space.max_blocks)] if space.per_block else [f"S{s}"]
        for prefix in prefixes:
            values.update({f"{prefix}.expand": 1 if s == 0 else 6, f"{prefix}.kernel": 3, f"{prefix}.se": False})
    return space.decode(values)


def measure(space, arch, dataset: str, data, seed: int, epochs, retrain: bool) -> dict:
    """One baseline network, trained once: with ``retrain`` as ``nasforge retrain`` does and tested,
    otherwise as a search trains a child (scored on validation, with its latency). Also used by
    ``nb201_resnet.py``."""
    start = time.perf_counter()
    if retrain:
        _, metrics = retrain_and_test(space, arch, data, retrain_recipe(SearchConfig().training, epochs), seed)
    else:
        estimator = TrainEstimator(dataset=dataset, measure=["latency_ms"], **({"epochs": epochs} if epochs else {}))
        estimator.setup(space, data)
        metrics = estimator.evaluate(arch, seed)
    return {"seed": seed, "seconds": round(time.perf_counter() - start, 2), "load": os.getloadavg()[0],
            "summary": space.summary(arch), **{k: v for k, v in metrics.items() if not isinstance(v, list)}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--widths", type=float, nargs="+", default=[0.5, 0.75, 1.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, help="default: the search's (8), or with --retrain nasforge retrain's")
    parser.add_argument("--retrain", action="store_true", help="the final recipe on train+validation, tested")
    args = parser.parse_args()
    space, data = MobileBlocksSpace(), load_dataset(args.dataset)
    for width in args.widths:
        for seed in args.seeds:
            result = measure(space, tokens(space, width), args.dataset, data, seed, args.epochs, args.retrain)
            print(json.dumps({"width": width, **result}), flush=True)


if __name__ == "__main__":
    main()

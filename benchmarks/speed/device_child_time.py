"""Time per child on one device, for each trainable space, in float32 and with the GPU settings
(``training.amp``, ``training.channels_last``), in one process: issue 19.5's "mixed precision and
channels-last where they help, measured", and the CPU-against-CUDA time per child.

The same children (drawn with a fixed seed) are trained in every variant with the search's recipe
(nasforge's defaults, ``--epochs`` epochs), one after another, after one untimed warm-up child
per variant (cuDNN's first call and autocast's kernels load then). Reported per variant: the
median seconds per child, the ratio to float32 on the same device, and the mean validation
accuracy (so a faster variant that learns worse shows it).

    python benchmarks/speed/device_child_time.py --device cuda [--children 6] [--epochs 2] [--batch-size 64] [--json FILE]
    python benchmarks/speed/device_child_time.py --device cpu --variants fp32   # the CPU column
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numpy as np
import torch

from nasforge.data import load_dataset
from nasforge.estimators.device import resolve_device
from nasforge.estimators.train import TrainRecipe, search_split, train_network
from nasforge.objectives.hardware import count_params
from nasforge.spaces.base import space_of_section

# (space section, dataset): chain-cnn on 1-D signals and on images, and the two image spaces
CASES = {
    "chain-cnn/mnist1d": ({"name": "chain-cnn"}, "mnist1d"),
    "chain-cnn/mnist5k": ({"name": "chain-cnn", "dims": 2}, "mnist5k"),
    "nb201-cell/mnist5k": ({"name": "nb201-cell"}, "mnist5k"),
    "mobile-blocks/mnist5k": ({"name": "mobile-blocks"}, "mnist5k"),
}
VARIANTS = {
    "fp32": {},
    "bf16": {"amp": "bf16"},
    "fp16": {"amp": "fp16"},
    "channels_last": {"channels_last": True},
    "bf16+channels_last": {"amp": "bf16", "channels_last": True},
}


def time_children(case: str, data, variant: str, device: torch.device, children: int, epochs: int,
                  batch_size: int = 64) -> dict:
    """One row: ``variant`` of the recipe on ``children`` children of ``case`` (``data``: its
    dataset, loaded once per case); empty where the device or the data cannot take the variant."""
    section, _ = CASES[case]
    recipe = TrainRecipe(epochs=epochs, batch_size=batch_size, **VARIANTS[variant])
    try:
        recipe.check_device(device, data.dims)
    except ValueError:
        return {}
    space = space_of_section(section)
    (x, y), (xv, yv) = search_split(data, {})
    rng = np.random.default_rng(0)
    drawn = [space.sample(rng) for _ in range(children + 1)]
    seconds, accuracy, params = [], [], []
    for i, tokens in enumerate(drawn):
        torch.manual_seed(0)
        model = space.build(tokens, data.input_shape, data.num_classes)
        start = time.perf_counter()
        history = train_network(model, x, y, recipe, 0, device, xv, yv)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i == 0:
            continue  # the warm-up child
        seconds.append(time.perf_counter() - start)
        accuracy.append(history[-1])
        params.append(count_params(model))
    return {"case": case, "variant": variant, "device": str(device), "children": children, "epochs": epochs,
            "batch_size": batch_size, "median_s": statistics.median(seconds), "seconds": [round(s, 3) for s in seconds],
            "mean_val_acc": statistics.fmean(accuracy), "val_accs": [round(a, 4) for a in accuracy],
            "median_params": statistics.median(params)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--children", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64, help="nasforge's default is 64")
    parser.add_argument("--json", help="also write the rows here, one JSON object per line")
    args = parser.parse_args()
    device = resolve_device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} torch {torch.__version__} on {where}, "
          f"{torch.get_num_threads()} CPU threads", flush=True)
    for case in args.cases:
        data = load_dataset(CASES[case][1])
        base = None
        for variant in args.variants:
            row = time_children(case, data, variant, device, args.children, args.epochs, args.batch_size)
            if not row:
                continue
            base = row["median_s"] if variant == "fp32" else base
            row["vs_fp32"] = round(row["median_s"] / base, 3) if base else None
            print(f"{case:24s} {variant:20s} {row['median_s']:8.2f} s/child  x{row['vs_fp32'] or float('nan'):.2f}"
                  f"  val {row['mean_val_acc']:.3f}", flush=True)
            if args.json:
                with open(args.json, "a") as out:
                    out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

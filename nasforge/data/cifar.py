"""CIFAR-10 / CIFAR-100 from the python batch files a user already has (never downloaded).

The files are pickles; they are read with the restricted unpickler of
:mod:`nasforge.tables.safe_pickle`, which builds nothing but plain numeric numpy arrays, lists,
dicts and strings, so a tampered file fails instead of running code. CIFAR-10: ``data_batch_1``
to ``data_batch_5`` and ``test_batch`` (labels ``labels``); CIFAR-100: ``train`` and ``test``
(the 100 ``fine_labels``). Class names come from ``batches.meta`` / ``meta`` when present.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .datasets import DataError, Dataset
from .pixels import pixel_dataset

CIFAR10 = ([f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels", "batches.meta", "label_names")
CIFAR100 = (["train"], ["test"], "fine_labels", "meta", "fine_label_names")


def cifar_files(root: Path) -> Optional[Tuple[List[str], List[str], str, str, str]]:
    """The layout of the CIFAR batches in ``root``, or None when it holds neither set."""
    for layout in (CIFAR10, CIFAR100):
        if all((root / name).is_file() for name in layout[0] + layout[1]):
            return layout
    return None


def _reconstruct(cls: Any, shape: Any, code: Any) -> np.ndarray:
    """Allow-listed stand-in for numpy's ``_reconstruct``: an empty array whose state (shape,
    a dtype the allow-list checked to be numeric, raw bytes) pickle sets next."""
    if cls is not np.ndarray:
        raise DataError("a CIFAR batch may hold only plain numpy arrays")
    return np.ndarray((0,), dtype=np.uint8)


def _latin1_bytes(text: Any, encoding: Any) -> bytes:
    """Allow-listed stand-in for ``_codecs.encode``: how Python 3 writes bytes at protocol 2."""
    if not isinstance(text, str) or encoding != "latin1":
        raise DataError("a CIFAR batch may encode only latin-1 text to bytes")
    return text.encode("latin1")


def _allowed() -> Dict[Tuple[str, str], Any]:
    from ..tables.safe_pickle import NUMPY_SCALARS

    rebuild = {(module, "_reconstruct"): _reconstruct
               for module in ("numpy.core.multiarray", "numpy._core.multiarray")}
    return {**NUMPY_SCALARS, **rebuild, ("numpy", "ndarray"): np.ndarray, ("_codecs", "encode"): _latin1_bytes}


def read_batch(path: Path, label_key: str) -> Tuple[np.ndarray, np.ndarray]:
    """(uint8 pixels (N, 3, 32, 32), labels) of one batch file."""
    from ..tables.safe_pickle import restricted_load

    try:
        batch = restricted_load(path, _allowed(), encoding="latin1")  # Python 2 pickles, as numpy advises
        data, labels = batch["data"], batch[label_key]
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - any unreadable batch: one clear error naming it
        raise DataError(f"cannot read CIFAR batch {path}: {type(exc).__name__}: {exc}") from None
    data = np.asarray(data)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise DataError(f"CIFAR batch {path} holds data of shape {data.shape} ({data.dtype}) for {len(labels)} "
                        "labels; expected uint8 rows of 3072 pixels, one per label")
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def _class_names(root: Path, meta: str, key: str) -> Optional[List[str]]:
    if not (root / meta).is_file():
        return None
    try:
        from ..tables.safe_pickle import restricted_load

        names = restricted_load(root / meta, _allowed(), encoding="latin1")[key]
        return [str(n) for n in names]
    except Exception:  # noqa: BLE001 - names are a courtesy; labels stand without them
        return None


def load_cifar(root: Path, size: Optional[Tuple[int, int]]) -> Dataset:
    """CIFAR-10 or -100 from ``root``; images stay 32 x 32 (a SIZE other than 32 is refused)."""
    if size is not None and size != (32, 32):
        raise DataError(f"CIFAR images are 32x32; resizing them to {size[0]}x{size[1]} is not supported")
    train_files, test_files, label_key, meta, names_key = cifar_files(root)
    parts = [[read_batch(root / name, label_key) for name in files] for files in (train_files, test_files)]
    (x, y), (xt, yt) = [(np.concatenate([p[0] for p in ps]), np.concatenate([p[1] for p in ps])) for ps in parts]
    image = {"size": [32, 32], "resample": None, "folder": str(root.resolve()),
             "split": f"CIFAR batches {', '.join(train_files)} / {', '.join(test_files)}",
             "classes": _class_names(root, meta, names_key)}
    return pixel_dataset("cifar100" if label_key == "fine_labels" else "cifar10", (x, y, xt, yt), image)

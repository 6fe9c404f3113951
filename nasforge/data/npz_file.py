"""Reading a user's ``.npz`` safely: what the file is, told by its first bytes, and each array
refused by name when numpy would need a pickle to load it (nasforge never loads one).

numpy's own errors mislead here: a ``.npy`` loads as one bare array, any other file is taken for
a pickle with advice to load it unsafely, and an object array says only ``allow_pickle``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError

#: How a file starts: a .npz is a zip archive (a local file header, or an empty archive's end
#: record, as numpy itself tells them); a .npy (one array, ``np.save``) starts with numpy's magic.
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_NPY_MAGIC = b"\x93NUMPY"
_NPZ_KEYS = "x_train, y_train, x_test, y_test"


def check_npz_magic(p: Path, path: str) -> None:
    """Refuse, by its first bytes, a file that is not a .npz archive, saying what it is instead."""
    try:
        with p.open("rb") as fh:
            magic = fh.read(len(_NPY_MAGIC))
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    if magic.startswith(_NPY_MAGIC):
        raise DataError(f"{path} holds a single array (a .npy file, np.save); give a .npz with {_NPZ_KEYS}: "
                        "np.savez('data.npz', x_train=..., y_train=..., x_test=..., y_test=...)")
    if not magic.startswith(_ZIP_MAGIC):
        what = ("the file is empty" if not magic else "it looks like a Python pickle, which nasforge never loads"
                if magic.startswith(b"\x80") else "it has no zip header")
        raise DataError(f"{path} is not a .npz (zip) archive ({what}); save the arrays {_NPZ_KEYS} with "
                        "np.savez('data.npz', x_train=..., y_train=..., x_test=..., y_test=...)")


def npz_member(f: Any, key: str, path: str) -> np.ndarray:
    """One array of an open .npz; an object array (stored pickled, never loaded) is refused by name."""
    try:
        return f[key]
    except ValueError as exc:
        if "allow_pickle" not in str(exc):  # numpy: "Object arrays cannot be loaded when allow_pickle=False"
            raise DataError(f"cannot read {key} in {path}: {exc}") from None
        fix = ("save it as a string, e.g. layout='NCL'" if key == "layout" else
               f"its values must be numbers: save it as a numeric array, e.g. np.asarray({key}, "
               f"dtype={'np.int64' if key.startswith('y_') else 'np.float32'})")
        raise DataError(f"{key} in {path} is an array of Python objects (dtype object, stored pickled), which "
                        f"nasforge never loads; {fix}") from None
    except Exception as exc:  # noqa: BLE001 - a damaged member (bad CRC, truncated) is a bad file, said once
        raise DataError(f"cannot read {key} in {path}: {exc}") from None

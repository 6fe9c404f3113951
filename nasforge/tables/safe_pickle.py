"""A pickle reader that only builds the classes a benchmark file is known to need.

Benchmark tables ship as pickles, and ``pickle.load`` runs whatever callable a file names. The
unpickler here resolves a global only through an explicit allow-list of ``(module, name)`` pairs
and refuses every other one before anything is called, so a tampered file fails with a clear
error instead of running code. The allowed targets are our own stand-ins or checked wrappers, so
even an allowed name cannot be turned into a general-purpose call.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Tuple, Union

import numpy as np

Allowed = Mapping[Tuple[str, str], Callable[..., Any]]


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle referenced a global outside the allow-list (or used a feature we do not allow)."""


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose globals come only from ``allowed``."""

    def __init__(self, file, allowed: Allowed, source: str = "pickle", encoding: str = "ASCII"):
        super().__init__(file, encoding=encoding)  # "latin1" reads Python 2 numpy pickles (CIFAR's)
        self._allowed = dict(allowed)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            permitted = ", ".join(f"{m}.{n}" for m, n in sorted(self._allowed)) or "(nothing)"
            raise UnsafePickleError(
                f"{self._source} refers to {module}.{name}, which is not on the allow-list "
                f"({permitted}); refusing to load it"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self._source} uses persistent ids, which are not allowed")


def restricted_load(source: Union[str, Path, bytes], allowed: Allowed, encoding: str = "ASCII") -> Any:
    """Unpickle a file path or a bytes object with only the ``allowed`` globals."""
    if isinstance(source, (bytes, bytearray)):
        return RestrictedUnpickler(io.BytesIO(source), allowed, "pickle data", encoding).load()
    path = Path(source)
    with path.open("rb") as handle:
        return RestrictedUnpickler(handle, allowed, str(path), encoding).load()


# ---- checked numpy helpers ------------------------------------------------------------------------
# numpy pickles a scalar as ``numpy.core.multiarray.scalar(dtype, raw_bytes)`` and a dtype as
# ``numpy.dtype(code, align, copy)`` followed by a state tuple. These wrappers rebuild only plain
# numeric scalars, so neither name can be abused to construct objects.

_NUMERIC_KINDS = "biuf"


def numpy_dtype(code: Any, align: Any = False, copy: Any = True) -> np.dtype:
    """Allow-listed stand-in for ``numpy.dtype``: numeric type codes only."""
    if not isinstance(code, str):
        raise UnsafePickleError(f"numpy dtype code must be a string, got {type(code).__name__}")
    dtype = np.dtype(code)
    if dtype.kind not in _NUMERIC_KINDS:
        raise UnsafePickleError(f"numpy dtype {code!r} is not a plain numeric type")
    return np.dtype(code, bool(align), bool(copy))


def numpy_scalar(dtype: Any, data: Any) -> Any:
    """Allow-listed stand-in for ``numpy.core.multiarray.scalar``: numeric bytes only."""
    if not isinstance(dtype, np.dtype) or dtype.kind not in _NUMERIC_KINDS:
        raise UnsafePickleError(f"numpy scalar of dtype {dtype!r} is not allowed")
    if not isinstance(data, (bytes, bytearray)) or len(data) != dtype.itemsize:
        raise UnsafePickleError("numpy scalar payload is not the raw bytes of one value")
    return np.frombuffer(bytes(data), dtype=dtype)[0]


NUMPY_SCALARS: Dict[Tuple[str, str], Callable[..., Any]] = {
    ("numpy", "dtype"): numpy_dtype,
    ("numpy.core.multiarray", "scalar"): numpy_scalar,
    ("numpy._core.multiarray", "scalar"): numpy_scalar,
}


# ---- plain records ----------------------------------------------------------------------------------


class PlainRecord:
    """Stand-in for a pickled instance of some foreign class: keeps its attributes, runs nothing.

    Pickle rebuilds such an object with ``cls.__new__(cls)`` and then ``__setstate__(state)``; we
    accept only a dict of string keys whose values are plain data or other records.
    """

    _PLAIN = (int, float, str, bool, type(None), np.number)
    _EXACT = frozenset({int, float, str, bool, type(None)})

    def __setstate__(self, state: Any) -> None:
        if type(state) is not dict:
            raise UnsafePickleError(f"{type(self).__name__} state must be a dict of attributes")
        for key, value in state.items():
            if type(key) is not str:
                raise UnsafePickleError(f"{type(self).__name__} has a non-string attribute name")
            if type(value) in self._EXACT or isinstance(value, PlainRecord):
                continue
            if not self._is_plain(value):
                raise UnsafePickleError(
                    f"{type(self).__name__}.{key} holds a {type(value).__name__}, not plain data"
                )
        self.__dict__.update(state)

    @classmethod
    def _is_plain(cls, value: Any) -> bool:
        if isinstance(value, (cls._PLAIN, PlainRecord)):
            return True
        if isinstance(value, tuple):
            return all(cls._is_plain(v) for v in value)
        return False

    def fields(self) -> Dict[str, Any]:
        return dict(self.__dict__)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.__dict__!r})"

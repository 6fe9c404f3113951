"""nasforge: neural architecture search, after Zoph & Le (2017), and the methods around it.

The Python API mirrors the CLI::

    from nasforge import SearchConfig, run_search
    result = run_search(SearchConfig(budget=20), "runs/my-search")

The names below are imported on first use (PEP 562), so that ``nasforge --help`` and
``--version`` do not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "SearchConfig": ".config",
    "SearchResult": ".search",
    "run_search": ".search",
    "Store": ".store",
    "create_space": ".spaces",
    "create_strategy": ".strategies",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'nasforge' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value

"""nasforge: neural architecture search, after Zoph & Le (2017), and the methods around it.

The Python API mirrors the CLI::

    from nasforge import SearchConfig, run_search
    result = run_search(SearchConfig(budget=20), "runs/my-search")
"""

from . import benchmarks  # noqa: F401  (registers the tabular benchmark spaces)
from .config import SearchConfig
from .search import SearchResult, run_search
from .spaces import create_space
from .store import Store
from .strategies import create_strategy

__all__ = ["SearchConfig", "SearchResult", "Store", "create_space", "create_strategy", "run_search"]
__version__ = "0.1.0"

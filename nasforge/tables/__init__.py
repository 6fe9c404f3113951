"""Tabular NAS benchmarks: search spaces whose every architecture has already been measured.

Importing this package registers the spaces ``nb201-cifar10`` and ``nbgraph-<dataset>`` (nine
datasets) in ``SPACES`` and the estimator ``tabular`` in ``ESTIMATORS``. A query is a table
lookup, so a whole search runs in seconds and regrets against the best architecture are exact.
The tables come from PyPI packages (see ``requirements-benchmarks.txt``); they are read lazily,
once per process, with a restricted unpickler. ``docs/benchmarks-data.md`` describes the files.
"""

from .base import TabularEstimator, TabularSpace
from . import nb201, nbgraph, own_table  # noqa: F401  (registration)
from .nb201 import NB201Space
from .nbgraph import DATASETS as NBGRAPH_DATASETS
from .nbgraph import NBGraphSpace

__all__ = ["NB201Space", "NBGraphSpace", "NBGRAPH_DATASETS", "TabularEstimator", "TabularSpace"]

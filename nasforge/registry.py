"""Registries by name, so that spaces, strategies and estimators are chosen by a string.

A string name is what a config file, a CLI flag and a stored trial can all carry; the registry
turns it back into a class and gives a clear error that lists the valid names.

Each registry declares its built-in entries as ``name -> module``: the names are known without
importing anything (so ``nasforge --help`` lists them without loading torch), and a module is
imported the first time one of its names is asked for. Plugins register with the decorator as
before. ``tests/test_registries.py`` checks that the declaration matches what the modules register.

The registries themselves live here, at the bottom, and ``spaces/base.py`` etc. re-export them:
importing any of those packages imports torch, and the command line's help must not.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Callable, Dict, Generic, List, Mapping, Optional, TypeVar

T = TypeVar("T")


def did_you_mean(key: str, valid) -> str:
    """`` (did you mean 'x'?)`` for the closest valid name, or nothing: shared by every unknown-name message."""
    close = difflib.get_close_matches(str(key), list(valid), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class UnknownNameError(ValueError):
    """Raised when a name is not registered; the message lists what is."""


class Registry(Generic[T]):
    def __init__(self, kind: str, builtins: Optional[Mapping[str, str]] = None):
        self.kind = kind
        self.builtins: Dict[str, str] = dict(builtins or {})
        self._items: Dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = factory
            return factory

        return decorator

    def get(self, name: str) -> Callable[..., T]:
        if name not in self._items and name in self.builtins:
            importlib.import_module(self.builtins[name])
        try:
            return self._items[name]
        except KeyError:
            valid = ", ".join(self.names()) or "(none)"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; choose one of: {valid}") from None

    def create(self, name: str, **settings) -> T:
        return self.get(name)(**settings)

    def names(self) -> List[str]:
        """Every name, built-in or registered, without importing anything."""
        return sorted(set(self._items) | set(self.builtins))

    def load_all(self) -> Dict[str, Callable[..., T]]:
        """Import every built-in module; returns name -> factory for every entry."""
        for module in sorted(set(self.builtins.values())):
            importlib.import_module(module)
        return dict(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self.builtins


# ---- the registries (re-exported by spaces/base.py, strategies/base.py, estimators/base.py,
# predictors/base.py; executors stay in execution/base.py, which is light) ----------------------
SPACES: Registry = Registry("search space", {
    "chain-cnn": "nasforge.spaces.chain_cnn",
    "nb201-cell": "nasforge.spaces.nb201_cell", "mobile-blocks": "nasforge.spaces.mobile_blocks",
    "nb201-cifar10": "nasforge.tables.nb201",
    **{f"nbgraph-{d}": "nasforge.tables.nbgraph" for d in (
        "cora", "citeseer", "pubmed", "cs", "physics", "photo", "computers", "arxiv", "proteins")},
    "own-table": "nasforge.tables.own_table", "mnist1d-chain": "nasforge.tables.own_table",
    "mnist1d-chain-nearest": "nasforge.tables.own_table",
    "update-rules": "nasforge.spaces.update_rules",
})
STRATEGIES: Registry = Registry("strategy", {
    "random": "nasforge.strategies.random_search", "reinforce": "nasforge.strategies.reinforce",
    "reinforce-elite": "nasforge.strategies.reinforce_elite",
    "ppo": "nasforge.strategies.ppo", "evolution": "nasforge.strategies.evolution",
    "local-search": "nasforge.strategies.local_search", "bananas": "nasforge.strategies.bananas",
    "tpe": "nasforge.strategies.tpe", "predictor-filter": "nasforge.strategies.predictor_filter",
    "enumerate": "nasforge.strategies.enumerate_space",
})
ESTIMATORS: Registry = Registry("estimator", {
    "train": "nasforge.estimators.train", "train-and-test": "nasforge.estimators.train_and_test",
    "shared-weights": "nasforge.estimators.weight_sharing", "zero-cost": "nasforge.estimators.zero_cost",
    "synthetic": "nasforge.estimators.synthetic", "tabular": "nasforge.tables",
    "rule-train": "nasforge.estimators.rule_train",
})
PREDICTORS: Registry = Registry("predictor", {
    "gp": "nasforge.predictors.gp", "mlp-ensemble": "nasforge.predictors.mlp", "gbt": "nasforge.predictors.trees",
})

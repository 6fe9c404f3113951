"""Every registry's declared built-in names are exactly what its modules register, so that the
names listed without importing (``--help``, error messages) cannot go stale."""

from __future__ import annotations

import pytest

from nasforge.estimators.base import ESTIMATORS
from nasforge.execution.base import EXECUTORS
from nasforge.predictors.base import PREDICTORS
from nasforge.spaces.base import SPACES
from nasforge.strategies.base import STRATEGIES

REGISTRIES = {"space": SPACES, "strategy": STRATEGIES, "estimator": ESTIMATORS, "executor": EXECUTORS,
              "predictor": PREDICTORS}


@pytest.mark.parametrize("kind", sorted(REGISTRIES))
def test_declared_builtins_are_what_the_modules_register(kind):
    registry = REGISTRIES[kind]
    registered = registry.load_all()
    plugins = {name for name, factory in registered.items() if not factory.__module__.startswith("nasforge.")}
    assert sorted(set(registered) - plugins) == sorted(registry.builtins)  # tests register plugins too
    for name, module in registry.builtins.items():
        assert registered[name].__module__.startswith(module), (name, module)


@pytest.mark.parametrize("kind", sorted(REGISTRIES))
def test_get_imports_a_builtin_on_first_use(kind):
    registry = REGISTRIES[kind]
    for name in registry.builtins:
        assert callable(registry.get(name))

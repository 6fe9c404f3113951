"""From settings to the parts every process builds for itself: the space and the estimator.

The driver builds them once to check the settings; every worker builds its own from an
:class:`~nasforge.execution.base.EstimatorRecipe` whose builder is :func:`estimator_from_recipe`.
Executors sit below this module: they call the builder they are handed and import nothing here.
"""

from __future__ import annotations

import inspect
from typing import Any, Dict, Optional

from .config import ConfigError, SearchConfig, import_plugins
from .data.datasets import Dataset, load_dataset
from .estimators.base import ESTIMATORS, Estimator, create_estimator
from .execution.base import EstimatorRecipe
from .spaces.base import SPACES, SearchSpace, create_space, is_tabular, lookup_estimator


def default_estimator(space_name: str) -> str:
    """The estimator a space is trained with when ``[training] estimator`` names none
    (``SearchSpace.default_estimator``; ``train`` for a space that declares none)."""
    factory = SPACES.get(space_name)
    return getattr(factory, "default_estimator", None) or "train"


def is_rule_space(space) -> bool:
    return hasattr(space, "rule") and hasattr(space, "child_network")


def no_network(space_name: str, space) -> "str | None":
    """Why a search has no network to retrain or export (and what to do instead); None when it has."""
    if is_tabular(space_name):
        return (f"{space_name} is a tabular benchmark: its architectures are looked up, not trained, "
                "so there is nothing to retrain or export; `nasforge best` and `nasforge pareto` read its results")
    if is_rule_space(space):
        return ("an update-rules search finds an optimiser, not a network: export it with "
                "`nasforge export --optimizer`, measure it with benchmarks/search/update_rules.py")
    return None


def unsavable_network(space_name: str, space, tokens, input_shape, num_classes: int) -> "str | None":
    """Why the networks of a search cannot be retrained and exported (the protocol of
    :mod:`nasforge.spaces.networks`), or None: asked of one network built untrained from ``tokens``,
    before any training, since a space's networks all follow the protocol or none does."""
    from .spaces.networks import PROTOCOL, unsavable

    why = unsavable(space.build(tokens, input_shape, num_classes))
    return f"space {space_name} cannot be retrained or exported: {why}; {PROTOCOL}" if why else None


def estimator_name(config: SearchConfig) -> str:
    """The estimator a search uses: the space's lookup estimator, else ``[training] estimator``."""
    return lookup_estimator(config.space["name"]) or config.training.get("estimator", default_estimator(config.space["name"]))


def build_space(config: SearchConfig, data: Optional[Dataset]) -> SearchSpace:
    space_settings = {k: v for k, v in config.space.items() if k != "name"}
    if config.space["name"] == "chain-cnn" and "dims" not in space_settings and data is not None:
        space_settings["dims"] = data.dims
    try:
        return create_space(config.space["name"], **space_settings)
    except TypeError as exc:
        raise ConfigError(f"[space]: {exc}") from None


def build_estimator(config: SearchConfig, data: Optional[Dataset] = None,
                    space: Optional[SearchSpace] = None) -> Estimator:
    """The estimator of a search, ready to evaluate: what every worker builds for itself.

    ``[training] estimator`` names it (default ``train``; a space with a lookup estimator always
    uses that one, with only the settings it declares); the other ``[training]`` settings go to it."""
    import_plugins(config.plugins)
    lookup = lookup_estimator(config.space["name"])
    if lookup is None and data is None:
        data = load_dataset(config.dataset)
    if space is None:
        space = build_space(config, data)
    try:
        if lookup is not None:  # a benchmark space answers by lookup; other [training] settings do not apply
            settings = {k: v for k, v in config.training.items() if k in space.lookup_settings}
            estimator = create_estimator(lookup, **settings)
        else:
            settings = dict(config.training)
            name = settings.pop("estimator", default_estimator(config.space["name"]))
            if "dataset" in inspect.signature(ESTIMATORS.get(name)).parameters:
                settings["dataset"] = config.dataset
            estimator = create_estimator(name, **settings)
        estimator.setup(space, data)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"[training]: {exc}") from None
    return estimator


def estimator_from_recipe(config: Dict[str, Any], data: Any = None) -> Estimator:
    """An :class:`EstimatorRecipe`'s builder: a module-level function, so the recipe pickles."""
    return build_estimator(SearchConfig.from_dict(config), data)


def estimator_recipe(config: Dict[str, Any], data: Any = None) -> EstimatorRecipe:
    """What a worker needs to build the search's estimator (the stored config; the dataset the
    driver loaded or was handed, so that no worker reads the files again)."""
    return EstimatorRecipe(estimator_from_recipe, config, data)

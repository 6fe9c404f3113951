"""The settings of one search, as plain values: from defaults, a YAML/TOML file, and CLI flags.

Sections mirror the parts of the system (space, strategy, training, reward, execution), so a
config file reads like the architecture. Everything here is stored with the experiment, which is how a
resumed search checks that it continues the same search.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from .plugin_import import why_not_imported
from .registry import did_you_mean

SECTIONS = ("space", "strategy", "training", "reward", "execution")
# how a search runs, not what it searches: a resumed search may change these
RUN_ONLY = ["budget", "max_consecutive_failures", "execution"]
TOP_LEVEL = ("dataset", "budget", "seed", "max_consecutive_failures", "plugins")
# `nasforge retrain`: the final training of a found architecture (children get 8 epochs and no
# label smoothing); chosen on MNIST-1D's validation split (docs/benchmarks.md)
RETRAIN_EPOCHS = 60
RETRAIN_LABEL_SMOOTHING = 0.1
# ... of the search's top children, chosen by that recipe on the validation split
# (nasforge/final_selection.py; measured in docs/benchmarks.md)
RERANK_CANDIDATES = 3
# the built-in datasets (nasforge/data/datasets.py DATASETS), named here so that `--help` lists them
# without importing numpy; tests/test_cli_help.py checks that the two agree
BUILTIN_DATASETS = ("digits", "mnist1d", "mnist5k")


class ConfigError(ValueError):
    """A config that cannot be used; the message names the key and the problem."""


@dataclass
class SearchConfig:
    dataset: str = "mnist1d"
    budget: int = 300
    seed: int = 0
    max_consecutive_failures: int = 20
    # modules imported (in the driver and in every worker) before anything is built, so that
    # spaces, strategies and estimators they register can be named in this config
    plugins: List[str] = field(default_factory=list)
    space: Dict[str, Any] = field(default_factory=lambda: {"name": "chain-cnn", "num_layers": 6})
    strategy: Dict[str, Any] = field(default_factory=lambda: {"name": "reinforce-elite"})
    training: Dict[str, Any] = field(default_factory=lambda: {"epochs": 8})
    reward: Dict[str, Any] = field(default_factory=lambda: {"metric": "val_acc", "transform": "cube"})
    # name: auto (inline for tabular benchmarks, local otherwise), inline, local or ray; workers,
    # threads_per_worker, trial_timeout (s), memory_limit_mb, retries (of lost trials),
    # recycle_after (local: trials per worker process), address, cpus_per_trial, gpus_per_trial
    execution: Dict[str, Any] = field(default_factory=lambda: {"name": "auto"})

    def to_dict(self) -> Dict[str, Any]:
        return copy.deepcopy(asdict(self))

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "SearchConfig":
        """Exactly the settings of ``data`` (a saved config): a section it holds replaces the
        default one instead of merging into it; a section it lacks keeps its default."""
        config = cls()
        if isinstance(data, dict):
            for key in SECTIONS:
                if isinstance(data.get(key), dict):
                    getattr(config, key).clear()
        config.update(data, source="config")
        return config

    def update(self, data: Dict[str, Any], source: str = "config") -> None:
        """Merge ``data`` (possibly partial) into this config, checking top-level names and types.

        A section's keys and types depend on the component it names, which a plugin may provide,
        so they are checked by :meth:`check` (after the plugins are imported)."""
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a mapping of settings, got {type(data).__name__}")
        hints = _top_level_types()
        for key, value in data.items():
            if key in TOP_LEVEL:
                problem = type_problem(value, hints[key])
                if problem:
                    raise ConfigError(f"{source}: {key} must be {problem}, got {value!r}")
                setattr(self, key, list(value) if key == "plugins" else value)
            elif key in SECTIONS:
                if not isinstance(value, dict):
                    raise ConfigError(f"{source}: [{key}] must be a table of settings, got {value!r}")
                section = getattr(self, key)
                if "name" in value and value["name"] != section.get("name") and key in ("space", "strategy",
                                                                                        "execution"):
                    section.clear()  # settings of another space or strategy do not carry over
                if key == "training" and value.get("estimator", "train") != section.get("estimator", "train"):
                    section.clear()  # nor those of another estimator
                section.update(value)
            else:
                raise ConfigError(f"{source}: unknown setting {key!r}{did_you_mean(key, TOP_LEVEL + SECTIONS)}; "
                                  f"valid keys: {', '.join(TOP_LEVEL + SECTIONS)}")

    def check(self) -> None:
        """Everything that can be checked without data: ranges of the top-level settings, then
        every section's keys and value types against the component it configures (see
        :func:`section_schema`). Runs before any store or experiment folder exists."""
        import_plugins(self.plugins)
        hints = _top_level_types()
        for key in TOP_LEVEL:
            problem = type_problem(getattr(self, key), hints[key])
            if problem:
                raise ConfigError(f"{key} must be {problem}, got {getattr(self, key)!r}")
        if self.budget < 1:
            raise ConfigError(f"budget must be at least 1 trial, got {self.budget}")
        if self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed}")
        if self.max_consecutive_failures < 1:
            raise ConfigError(f"max_consecutive_failures must be at least 1, got {self.max_consecutive_failures}")
        for key in SECTIONS:
            if not isinstance(getattr(self, key), dict):
                raise ConfigError(f"[{key}] must be a table of settings, got {getattr(self, key)!r}")
        for key in ("space", "strategy", "execution"):
            if not isinstance(getattr(self, key).get("name"), str):
                raise ConfigError(f"[{key}] needs a name (a string)")
        for key in SECTIONS:
            check_section(key, self._given(key), section_schema(key, self))

    def _given(self, section: str) -> Dict[str, Any]:
        """A section to check; a table's ``[training]`` less the default recipe, which it never trains by."""
        space = _space_class(self) if section == "training" else None
        if space is None or space.lookup_estimator is None:
            return getattr(self, section)
        return {k: v for k, v in self.training.items() if SearchConfig().training.get(k, object()) != v}


def import_plugins(modules: List[str]) -> None:
    """Import the config's plugin modules; one that does not import, whatever the reason, is named."""
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - a plugin's own code may raise anything on import
            raise ConfigError(f"plugin {name!r} cannot be imported: {why_not_imported(name, exc)}") from None


def load_config_file(path: str) -> Dict[str, Any]:
    """Read a YAML (.yaml/.yml) or TOML (.toml) file into a dict, with clear errors."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"config file {path} does not exist")
    text = p.read_text()
    suffix = p.suffix.lower()
    try:
        if suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        elif suffix == ".json":
            data = json.loads(text)
        else:
            raise ConfigError(f"config file {path}: use a .toml, .yaml, .yml or .json file")
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parser's error becomes one clear message
        raise ConfigError(f"config file {path} could not be parsed: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings at the top")
    return data


def differences(stored: Dict[str, Any], current: Dict[str, Any], ignore: List[str]) -> List[str]:
    """Human-readable list of settings that differ between two config dicts."""
    out: List[str] = []

    def walk(a: Any, b: Any, prefix: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                name = f"{prefix}.{k}" if prefix else k
                if name in ignore:
                    continue
                walk(a.get(k), b.get(k), name)
        elif a != b:
            out.append(f"{prefix}: stored {a!r}, now {b!r}")

    walk(stored, current, "")
    return out


def parse_value(text: str) -> Any:
    """A CLI ``key=value`` value: JSON when it parses (numbers, true/false), else a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


# ---- the settings schema ------------------------------------------------------------------------
# A section's valid keys and their types are read from the constructor of the component it
# configures (its signature and type hints), so the schema cannot drift from the code. Besides:
SEARCH_READS: Dict[str, Dict[str, Any]] = {  # keys the search itself reads, not the component
    "training": {"estimator": str},  # which estimator (build.build_estimator pops it)
    "execution": {"retries": int},  # reruns of a lost trial (parts.retries_allowed)
}
SEARCH_SUPPLIES = {"training": ("dataset",)}  # the top-level `dataset`, handed over by the search
AUTO_EXECUTORS = ("inline", "local")  # what execution.name = "auto" becomes (parts.build_executor)
# what Scorer.from_config reads besides the fields of Objective (nasforge/objectives/rewards.py)
REWARD_EXTRAS: Dict[str, Any] = {
    "constraints": List[str], "constraint_mode": str, "weights": Dict[str, float],
    "directions": Dict[str, str], "infeasible_reward": Optional[float], "excess_weight": float,
}


@dataclass
class SectionSchema:
    """The keys a section takes (name -> type) for the component ``owner`` (e.g. "estimator 'train'").
    ``open``: the component also takes keys no signature names (``**settings`` it keeps as they
    are); then unknown keys cannot be refused, only the known ones type-checked."""

    keys: Dict[str, Any]
    owner: str
    open: bool = False


def constructor_settings(factory: Callable) -> Tuple[Dict[str, Any], bool]:
    """(name -> type, open): the keyword settings ``factory`` takes.

    A class's ``__init__`` is read along its bases while it passes ``**kwargs`` on
    (``super().__init__(**settings)``), or, when the class names one in ``keyword_settings``, the
    callable its ``**kwargs`` go to (``TrainEstimator``: ``TrainRecipe``). ``**kwargs`` that reach
    the registry's base class only store or ignore them: the named keys are all there are, unless
    no constructor names any (then ``open``: anything goes, unchecked); so are a factory function's."""
    keys: Dict[str, Any] = {}
    owners = [c for c in factory.__mro__ if c is not object] if isinstance(factory, type) else [factory]
    for owner in owners:
        init = owner.__dict__.get("__init__") if isinstance(factory, type) else owner
        if init is None:
            continue
        try:
            parameters = list(inspect.signature(init).parameters.values())
        except (TypeError, ValueError):  # a builtin without a signature
            return keys, True
        if isinstance(factory, type):
            parameters = parameters[1:]  # self
        hints = _hints(init)
        for p in parameters:
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                keys.setdefault(p.name, hints.get(p.name, Any))
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            return keys, False
        if not isinstance(factory, type):
            return keys, True  # a factory function: where its **kwargs go cannot be read
        target = owner.__dict__.get("keyword_settings")
        if target is not None:
            more, more_open = constructor_settings(target)
            for name, kind in more.items():
                keys.setdefault(name, kind)
            return keys, more_open
    return keys, not keys


def _hints(function: Callable) -> Dict[str, Any]:
    """Resolved annotations; one that cannot be resolved counts as Any (the component checks it)."""
    try:
        return typing.get_type_hints(function)
    except Exception:  # noqa: BLE001 - a forward reference we cannot resolve: check what we can
        out: Dict[str, Any] = {}
        namespace = getattr(function, "__globals__", {})
        for name, text in getattr(function, "__annotations__", {}).items():
            try:
                out[name] = eval(text, namespace) if isinstance(text, str) else text  # noqa: S307
            except Exception:  # noqa: BLE001
                out[name] = Any
        return out


def section_schema(section: str, config: "SearchConfig") -> SectionSchema:
    """What ``[section]`` of ``config`` may hold, read from the component it names."""
    if section == "reward":
        from .objectives.objective import Objective

        keys, _ = constructor_settings(Objective)
        return SectionSchema({**keys, **REWARD_EXTRAS}, "the reward")
    if section == "execution":
        from .execution.base import EXECUTORS

        name = config.execution["name"]
        keys: Dict[str, Any] = {}
        is_open = False
        for executor in (AUTO_EXECUTORS if name == "auto" else (name,)):
            if executor not in EXECUTORS:  # "auto" is a choice too, the default
                choices = ["auto", *EXECUTORS.names()]
                raise ConfigError(f"[execution] unknown executor {name!r}; choose one of: {', '.join(choices)}"
                                  f"{did_you_mean(name, choices)}")
            more, more_open = constructor_settings(EXECUTORS.get(executor))
            keys.update({k: v for k, v in more.items() if k not in keys})
            is_open = is_open or more_open
        return SectionSchema({"name": str, **keys, **SEARCH_READS["execution"]}, f"executor {name!r}", is_open)
    if section == "training":
        from .registry import ESTIMATORS

        space = _space_class(config)
        if space is not None and space.lookup_estimator is not None:  # a table answers: only the settings
            hints = typing.get_type_hints(space)  # its lookup takes apply (nothing is trained)
            return SectionSchema({**{key: hints[key] for key in space.lookup_settings}, **SEARCH_READS["training"]},
                                 f"{config.space['name']}, a table whose architectures are looked up, not trained")
        name = config.training.get("estimator", getattr(space, "default_estimator", None) or "train")
        if not isinstance(name, str):
            raise ConfigError(f"[training] estimator must be a string (an estimator's name), got {name!r}")
        keys, is_open = constructor_settings(_get(ESTIMATORS, name, section))
        keys = {k: v for k, v in keys.items() if k not in SEARCH_SUPPLIES["training"]}
        keys.update(SEARCH_READS["training"])
        return SectionSchema(keys, f"estimator {name!r}", is_open)
    from .registry import SPACES, STRATEGIES

    registry = SPACES if section == "space" else STRATEGIES
    name = getattr(config, section)["name"]
    keys, is_open = constructor_settings(_get(registry, name, section))
    return SectionSchema({"name": str, **keys}, f"{section} {name!r}", is_open)


def _get(registry, name: str, section: str) -> Callable:
    from .registry import UnknownNameError

    try:
        return registry.get(name)
    except UnknownNameError as exc:
        raise ConfigError(f"[{section}] {exc}") from None


def _space_class(config: "SearchConfig"):
    """The searched space's class, or None when its factory is a plain function (a plugin)."""
    from .registry import SPACES
    from .spaces.base import SearchSpace

    factory = _get(SPACES, config.space["name"], "space")
    return factory if isinstance(factory, type) and issubclass(factory, SearchSpace) else None


def check_section(section: str, values: Dict[str, Any], schema: SectionSchema) -> None:
    """Refuse a key the component does not take, or a value of the wrong type, naming the key,
    the expected type and the valid keys."""
    for key, value in values.items():
        if key not in schema.keys:
            if schema.open:
                continue
            valid = sorted(schema.keys)
            raise ConfigError(f"[{section}] unknown setting {key!r}{did_you_mean(key, valid)}; "
                              f"valid keys for {schema.owner}: {', '.join(valid)}")
        problem = type_problem(value, schema.keys[key])
        if problem:
            raise ConfigError(f"[{section}] {key} must be {problem}, got {value!r}")


_NOUNS = {bool: ("true or false", "true/false values"), int: ("an integer", "integers"),
          float: ("a number", "numbers"), str: ("a string", "strings"), type(None): ("none", "nones")}


def type_problem(value: Any, kind: Any) -> Optional[str]:
    """None when ``value`` (as read from TOML, YAML, JSON or a flag) fits the type hint ``kind``;
    otherwise what was expected, in words ("a number", "an integer or none", "a list of strings").
    A type this does not know passes: its component checks it."""
    ok, expected = _fits(value, kind)
    return None if ok else expected


def _fits(value: Any, kind: Any) -> Tuple[bool, str]:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is Any or kind is inspect.Parameter.empty:
        return True, "anything"
    if origin is typing.Union or type(kind).__name__ == "UnionType":
        results = [_fits(value, arg) for arg in args]
        return any(ok for ok, _ in results), " or ".join(text for _, text in results)
    if origin is typing.Literal:
        return value in args, "one of " + ", ".join(repr(a) for a in args)
    if kind in _NOUNS:
        accepted = (int, float) if kind is float else kind  # an integer is a number; true is not one
        ok = isinstance(value, accepted) and (kind is bool or not isinstance(value, bool))
        return ok, _NOUNS[kind][0]
    container = origin or kind
    if isinstance(container, type) and issubclass(container, dict) or container in (typing.Mapping,) or \
            getattr(container, "__name__", "") in ("Mapping", "MutableMapping"):
        return isinstance(value, dict), "a table of settings"
    if container in (list, tuple, set, frozenset) or getattr(container, "__name__", "") in (
            "Sequence", "MutableSequence", "Iterable", "Collection"):
        items = [a for a in args if a is not Ellipsis]
        item = items[0] if len(set(items)) == 1 else Any
        text = "a list" + (f" of {_NOUNS[item][1]}" if item in _NOUNS else "")
        return isinstance(value, (list, tuple)) and all(_fits(v, item)[0] for v in value), text
    if kind is Path:
        return isinstance(value, (str, Path)), "a path (a string)"
    if isinstance(kind, type):
        return isinstance(value, kind), f"a {kind.__name__}"
    return True, "anything"


def _top_level_types() -> Dict[str, Any]:
    return typing.get_type_hints(SearchConfig)

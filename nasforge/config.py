"""The settings of one search, as plain values: from defaults, a YAML/TOML file, and CLI flags.

Sections mirror the parts of the system (space, strategy, training, reward, execution), so a
config file reads like the architecture. Everything here is stored with the experiment, which is how a
resumed search checks that it continues the same search.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List

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
    strategy: Dict[str, Any] = field(default_factory=lambda: {"name": "reinforce"})
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
        """Merge ``data`` (possibly partial) into this config, checking names and types."""
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a mapping of settings, got {type(data).__name__}")
        for key, value in data.items():
            if key in TOP_LEVEL:
                expected = type(getattr(self, key))
                if expected is int and (isinstance(value, bool) or not isinstance(value, int)):
                    raise ConfigError(f"{source}: {key} must be an integer, got {value!r}")
                if expected is str and not isinstance(value, str):
                    raise ConfigError(f"{source}: {key} must be a string, got {value!r}")
                if expected is list and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
                    raise ConfigError(f"{source}: {key} must be a list of module names, got {value!r}")
                setattr(self, key, value)
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
                valid = ", ".join(TOP_LEVEL + SECTIONS)
                raise ConfigError(f"{source}: unknown setting {key!r}; valid keys: {valid}")

    def check(self) -> None:
        import_plugins(self.plugins)
        if self.budget < 1:
            raise ConfigError(f"budget must be at least 1 trial, got {self.budget}")
        if self.max_consecutive_failures < 1:
            raise ConfigError(f"max_consecutive_failures must be at least 1, got {self.max_consecutive_failures}")
        for key in ("space", "strategy", "execution"):
            if not isinstance(getattr(self, key).get("name"), str):
                raise ConfigError(f"[{key}] needs a name")


def import_plugins(modules: List[str]) -> None:
    """Import the config's plugin modules; a missing one is a config error that names it."""
    import importlib

    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"plugin {name!r} cannot be imported: {exc}") from None


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

"""One validation layer for settings: each section's keys and value types come from the
constructor of the component it names, and a wrong key or type is refused before anything is
stored, with a message naming the key, the expected type and the valid keys."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import pytest

from nasforge.cli.search import FLAG_TARGETS
from nasforge.config import (REWARD_EXTRAS, SEARCH_READS, ConfigError, SearchConfig, constructor_settings,
                             section_schema, type_problem)
from nasforge.execution.base import EXECUTORS
from nasforge.registry import ESTIMATORS, SPACES, STRATEGIES

REGISTRIES = {"space": SPACES, "strategy": STRATEGIES, "training": ESTIMATORS, "execution": EXECUTORS}


# ---- through the real command line ----------------------------------------------------------------
@pytest.mark.parametrize("argv, config_file, messages", [
    (["--set", "training.lr=0.01"], None,
     ["[training] unknown setting 'lr'; valid keys for estimator 'train': ", "learning_rate", "batch_size"]),
    (["--set", "training.learning_rate=abc"], None, ["[training] learning_rate must be a number, got 'abc'"]),
    (["--config", "search.toml"], '[training]\nlearning_rate = "fast"\n',
     ["[training] learning_rate must be a number, got 'fast'"]),
    (["--seed", "-1"], None, ["seed must be a non-negative integer, got -1"]),
])
def test_the_cli_names_the_key_and_the_type_and_creates_nothing(tmp_path, argv, config_file, messages):
    if config_file is not None:
        (tmp_path / "search.toml").write_text(config_file)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NASFORGE_DEBUG")}
    run = subprocess.run([sys.executable, "-m", "nasforge", "search", "--experiment", "exp", "--budget", "2", *argv],
                         cwd=tmp_path, capture_output=True, text=True, timeout=180, env=env)
    assert run.returncode == 2, (run.stdout, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nasforge search: error: "), run.stderr
    for message in messages:
        assert message in lines[0]
    assert not (tmp_path / "exp").exists() and not (tmp_path / "runs").exists()


# ---- the schema is read from the constructors -------------------------------------------------------
@dataclass
class ToyRecipe:
    steps: int = 3
    rate: float = 0.5


class ToyBase:
    def __init__(self, **settings: Any):
        self.settings = settings


class Toy(ToyBase):
    keyword_settings = ToyRecipe  # its **recipe go there

    def __init__(self, names: Optional[List[str]] = None, flag: bool = False, **recipe: Any):
        super().__init__(names=names, flag=flag)


class ToyChild(Toy):
    def __init__(self, depth: int = 2, **settings: Any):
        super().__init__(**settings)


def test_keys_and_types_follow_kwargs_up_the_classes_and_into_keyword_settings():
    keys, is_open = constructor_settings(ToyChild)
    assert keys == {"depth": int, "names": Optional[List[str]], "flag": bool, "steps": int, "rate": float}
    assert not is_open
    assert constructor_settings(ToyBase) == ({}, True)  # takes anything: nothing can be refused

    def factory(size: int = 1, **anything):  # a plugin's factory function
        return size

    assert constructor_settings(factory) == ({"size": int}, True)


@pytest.mark.parametrize("value, kind, expected", [
    (3, int, None), (True, int, "an integer"), (8.0, int, "an integer"), (3, float, None), ("abc", float, "a number"),
    (False, bool, None), (1, bool, "true or false"), ("x", str, None), (None, Optional[int], None),
    ("a", Optional[int], "an integer or none"), (["a", "b"], Sequence[str], None), ("ab", Sequence[str],
                                                                                    "a list of strings"),
    ([1], List[str], "a list of strings"), ({"a": 1}, Dict[str, Any], None), ([1], Dict[str, Any], "a table of settings"),
    ({"x": 1}, Any, None),
])
def test_a_value_is_checked_against_its_type_hint(value, kind, expected):
    assert type_problem(value, kind) == expected


def test_every_builtin_component_can_be_checked_and_its_defaults_fit_its_hints():
    """The schema is only as good as the signatures: each built-in names its settings (no bare
    **settings, except the table lookup's) and each default fits its own type hint."""
    import inspect

    for section, registry in REGISTRIES.items():
        for name, factory in registry.load_all().items():
            if name not in registry.builtins:
                continue  # a plugin another test registered (counting, faulty, ...): its own business
            keys, is_open = constructor_settings(factory)
            assert is_open == (name == "tabular"), (section, name)
            for owner in factory.__mro__:
                init = owner.__dict__.get("__init__")
                if init is None or owner is object:
                    continue
                for p in inspect.signature(init).parameters.values():
                    if p.default is not p.empty and p.name in keys:
                        assert type_problem(p.default, keys[p.name]) is None, (name, p.name, p.default)


def test_every_flag_reaches_a_setting_some_component_takes():
    takes = {section: set(SEARCH_READS.get(section, {})) for section in REGISTRIES}
    for section, registry in REGISTRIES.items():
        for factory in registry.load_all().values():
            takes[section] |= set(constructor_settings(factory)[0])
    for flag, target in FLAG_TARGETS.items():
        section, key = target.split(".")
        if section != "reward" and key != "name":
            assert key in takes[section], f"--{flag.replace('_', '-')} sets {target}, which nothing takes"


def test_the_reward_schema_is_what_the_scorer_reads():
    from nasforge.objectives.rewards import Scorer

    schema = section_schema("reward", SearchConfig()).keys
    assert set(REWARD_EXTRAS) <= set(schema)
    Scorer.from_config({"metric": "val_acc", "direction": "maximize", "transform": "cube", "failure_penalty": 0.0,
                        "constraints": ["params<=1000"], "constraint_mode": "soft", "infeasible_reward": 0.0,
                        "excess_weight": 0.0})
    Scorer.from_config({"weights": {"val_acc": 1.0}, "directions": {"val_acc": "maximize"}})


# ---- in the config itself ---------------------------------------------------------------------------
def check(**sections) -> None:
    config = SearchConfig()
    config.update(sections, source="test")
    config.check()


@pytest.mark.parametrize("sections, message", [
    ({"strategy": {"batch_sise": 4}}, "[strategy] unknown setting 'batch_sise' (did you mean 'batch_size'?); "
                                      "valid keys for strategy 'reinforce-elite': baseline_decay, batch_size"),
    ({"strategy": {"name": "magic"}}, "[strategy] unknown strategy 'magic'; choose one of: "),
    ({"strategy": {"name": "random", "dedup": "yes"}}, "[strategy] dedup must be true or false, got 'yes'"),
    ({"space": {"num_layers": 2.5}}, "[space] num_layers must be an integer, got 2.5"),
    ({"training": {"measure": "latency_ms"}}, "[training] measure must be a list of strings, got 'latency_ms'"),
    ({"training": {"estimator": "zero-cost", "epochs": 3}}, "unknown setting 'epochs'; valid keys for estimator "
                                                           "'zero-cost'"),
    ({"training": {"dataset": "digits"}}, "[training] unknown setting 'dataset'"),  # a top-level setting
    ({"execution": {"name": "ray", "threads_per_worker": 2}}, "valid keys for executor 'ray': address"),
    ({"execution": {"workers": "2"}}, "[execution] workers must be an integer, got '2'"),
    ({"execution": {"retries": 1.5}}, "[execution] retries must be an integer, got 1.5"),
    ({"reward": {"metrc": "val_acc"}}, "[reward] unknown setting 'metrc' (did you mean 'metric'?)"),
    ({"space": {"name": "nb201-cifar10"}, "training": {"seconds_per_query": "1s"}},
     "[training] seconds_per_query must be a number, got '1s'"),
    # a table trains nothing: a recipe given for it was accepted and stored, doing nothing
    ({"space": {"name": "nb201-cifar10"}, "training": {"epochs": 3}},
     "[training] unknown setting 'epochs'; valid keys for nb201-cifar10, a table whose architectures are looked up"),
    ({"space": {"name": "nbgraph-cora"}, "training": {"learning_rate": 0.1}}, "unknown setting 'learning_rate'"),
    ({"budget": "3"}, "test: budget must be an integer, got '3'"),
    ({"plugins": "my_module"}, "test: plugins must be a list of strings, got 'my_module'"),
])
def test_a_wrong_key_or_type_names_the_key_the_type_and_the_choices(sections, message):
    with pytest.raises(ConfigError) as error:
        check(**sections)
    assert message in str(error.value)


def test_every_builtin_space_and_strategy_passes_with_its_defaults():
    for name in SPACES.names():
        check(space={"name": name})
    for name in STRATEGIES.names():
        check(strategy={"name": name})
    check(space={"name": "nb201-cifar10"}, training={"seconds_per_query": 2})  # the table's cost per query
    check(training={"estimator": "train-and-test", "epochs": 8, "latency_repeats": 3})  # nasforge tabulate's
    check(execution={"name": "local", "workers": 2, "recycle_after": None, "retries": 0})

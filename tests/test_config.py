"""Settings from files and flags: YAML and TOML, precedence, and clear errors."""

from __future__ import annotations

import pytest

from nasforge.cli import build_parser
from nasforge.cli.search import _overrides_from_args
from nasforge.config import ConfigError, SearchConfig, load_config_file


def parse(*argv):
    return build_parser().parse_args(["search", *argv])


def test_yaml_and_toml_files_give_the_same_config(tmp_path):
    (tmp_path / "a.yaml").write_text("budget: 7\nstrategy:\n  name: random\ntraining:\n  epochs: 3\n")
    (tmp_path / "a.toml").write_text('budget = 7\n[strategy]\nname = "random"\n[training]\nepochs = 3\n')
    configs = []
    for name in ("a.yaml", "a.toml"):
        c = SearchConfig()
        c.update(load_config_file(str(tmp_path / name)))
        configs.append(c.to_dict())
    assert configs[0] == configs[1]
    assert configs[0]["strategy"] == {"name": "random"} and configs[0]["training"]["epochs"] == 3


def test_flags_override_the_file(tmp_path):
    (tmp_path / "c.toml").write_text('budget = 7\n[training]\nepochs = 3\nbatch_size = 32\n')
    given = _overrides_from_args(parse("--config", str(tmp_path / "c.toml"), "--epochs", "5",
                                       "--set", "strategy.entropy_weight=0.01"))
    c = SearchConfig()
    c.update(given)
    assert c.budget == 7 and c.training == {"epochs": 5, "batch_size": 32}
    assert c.strategy == {"name": "reinforce-elite", "entropy_weight": 0.01}


def test_a_new_strategy_name_drops_the_old_strategys_settings(tmp_path):
    (tmp_path / "c.toml").write_text('[strategy]\nname = "reinforce"\nbatch_size = 4\n')
    c = SearchConfig()
    c.update(_overrides_from_args(parse("--config", str(tmp_path / "c.toml"), "--strategy", "random")))
    assert c.strategy == {"name": "random"}


@pytest.mark.parametrize("text, suffix, message", [
    ("budget = [", ".toml", "could not be parsed"),
    ("budgett = 3", ".toml", "unknown setting 'budgett'"),
    ("budget: three", ".yaml", "budget must be an integer"),
    ("- 1\n- 2", ".yaml", "mapping"),
    ("training = 3", ".toml", "must be a table"),
    ("x", ".ini", "use a .toml"),
])
def test_bad_files_get_clear_errors(tmp_path, text, suffix, message):
    path = tmp_path / f"bad{suffix}"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        SearchConfig().update(load_config_file(str(path)))


def test_missing_file():
    with pytest.raises(ConfigError, match="does not exist"):
        load_config_file("/nonexistent/search.toml")

"""The command line's help: every list of names it shows is complete (read from the registries, so
it cannot go stale), every command says what it does, and `--help` / `--version` stay fast
because they import neither torch nor the modules that do."""

from __future__ import annotations

import os
import re
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
import pytest

from nasforge.cli import build_parser
from nasforge.cli.inspect import CHAIN_CNN_LEGEND, TRIAL_STATES
from nasforge.cli.main import main
from nasforge.config import BUILTIN_DATASETS
from nasforge.data.datasets import DATASETS
from nasforge.execution.base import EXECUTORS
from nasforge.registry import ESTIMATORS, PREDICTORS, SPACES, STRATEGIES
from nasforge.store import STATES

COMMANDS = sorted(next(a for a in build_parser()._actions if a.dest == "command").choices)  # every subcommand


def run_cli(*args, timeout=120):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NASFORGE_DEBUG")}
    env["COLUMNS"] = "100"
    return subprocess.run([sys.executable, "-m", "nasforge", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(scope="module")
def helps():
    """Each subcommand's --help, as a user sees it."""
    out = {}
    for command in COMMANDS:
        run = run_cli(command, "--help")
        assert run.returncode == 0, run.stderr
        out[command] = run.stdout
    return out


def option_words(help_text: str, flag: str) -> set:
    """The words of one option's entry in a --help text (from its flag to the next option)."""
    lines = help_text.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"\s+{re.escape(flag)}\b", line))
    end = next((i for i in range(start + 1, len(lines)) if re.match(r" {2}-", lines[i]) or not lines[i].strip()),
               len(lines))
    return set(re.findall(r"[\w.-]+", " ".join(lines[start:end])))


def registered(registry) -> list:
    """Every name nasforge's modules really register (imports them), not only what is declared; a
    test plugin that another test in this process imported (tests/mlp_plugin_space.py) is not
    nasforge's, and the help does not list it."""
    return sorted(name for name in registry.load_all()
                  if registry.get(name).__module__.split(".")[0] == "nasforge")


@pytest.mark.parametrize("command, flag, names", [
    ("search", "--space", lambda: registered(SPACES)),
    ("search", "--strategy", lambda: registered(STRATEGIES)),
    ("search", "--estimator", lambda: registered(ESTIMATORS)),
    ("search", "--executor", lambda: ["auto"] + registered(EXECUTORS)),
    ("search", "--dataset", lambda: sorted(DATASETS)),
    ("search", "--set", lambda: registered(PREDICTORS)),
    ("benchmark", "--strategies", lambda: registered(STRATEGIES)),
    ("tabulate", "--dataset", lambda: sorted(DATASETS)),
    ("trials", "--state", lambda: list(STATES)),
])
def test_every_registered_name_is_listed_in_the_help(helps, command, flag, names):
    words = option_words(helps[command], flag)
    missing = [n for n in names() if n not in words]
    assert not missing, f"{command} {flag} does not list {missing}"


def test_names_declared_for_the_help_match_their_sources():
    assert sorted(BUILTIN_DATASETS) == sorted(DATASETS)
    assert sorted(TRIAL_STATES) == sorted(STATES)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_describes_itself(helps, command):
    text = helps[command]
    description = text.split("\n\n")[1]  # usage, blank line, description
    assert not description.startswith(("options:", "positional arguments:")), text[:300]
    assert len(description.split()) >= 6


def test_the_help_keeps_registry_names_whole():
    """A name with a hyphen is never broken across lines (argparse's own wrapping would)."""
    run = run_cli("search", "--help")
    assert not re.search(r"(local|predictor|mlp|nbgraph|chain)-\n", run.stdout)


def test_the_help_says_where_commands_differ(helps):
    search, tabulate, bench = helps["search"], helps["tabulate"], helps["benchmark"]
    assert {"6", "4"} <= option_words(search, "--layers") and {"6", "4"} <= option_words(tabulate, "--layers")
    assert {"alias", "--objective"} <= option_words(search, "--metric")
    assert {"space", "strategy", "training", "reward", "execution"} <= option_words(search, "--set")
    assert {"STRATEGY.KEY", "strategy.KEY", "search"} <= option_words(bench, "--set")


def test_metric_is_an_alias_of_objective():
    from nasforge.cli.search import _overrides_from_args

    parse = build_parser().parse_args
    by_metric = _overrides_from_args(parse(["search", "--metric", "params"]))["reward"]
    by_objective = _overrides_from_args(parse(["search", "--objective", "params"]))["reward"]
    assert by_metric == by_objective == {"metric": "params", "direction": "minimize"}


def test_trials_state_takes_any_case_and_lists_the_states(capsys):
    assert build_parser().parse_args(["trials", "--state", "failed"]).state == "FAILED"
    with pytest.raises(SystemExit) as exit:
        build_parser().parse_args(["trials", "--state", "broken"])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert "'broken' is not a trial state" in err and all(state in err for state in STATES)


def test_benchmark_set_strategy_key_applies_to_every_strategy_run():
    from nasforge.cli.benchmark import plan_from_args

    args = build_parser().parse_args(["benchmark", "--strategies", "random,evolution", "--set", "strategy.dedup=false",
                                      "--set", "evolution.dedup=true", "--seeds", "1", "--budget", "5"])
    plan = plan_from_args(args)
    assert plan.settings["random"]["dedup"] is False and plan.settings["evolution"]["dedup"] is True


def median_seconds(*args) -> tuple:
    """Median over 3 runs of (CPU seconds, wall seconds) of ``nasforge *args`` in a new process."""
    cpu, wall = [], []
    for _ in range(3):
        before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        run = run_cli(*args, timeout=60)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall.append(time.perf_counter() - start)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        assert run.returncode == 0, run.stderr
    return statistics.median(cpu), statistics.median(wall)


@pytest.mark.parametrize("args", [("--help",), ("--version",)])
def test_help_and_version_take_under_a_second(args):
    """A behaviour guard, not a benchmark: importing torch alone costs several seconds. The bound
    is on the process's CPU time: its wall time on a shared 2-core machine measures the neighbours
    (0.2 s of CPU took 1.5 s of wall time at a load of 10)."""
    cpu, wall = median_seconds(*args)
    assert cpu < 1.0, f"nasforge {' '.join(args)}: {cpu:.2f} s of CPU ({wall:.2f} s wall)"


@pytest.mark.parametrize("command", COMMANDS)
def test_help_imports_no_torch_nor_numpy(command):
    """The cause the timing guards against, checked exactly (the timing depends on the machine)."""
    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "nasforge", command, "--help"],
                         capture_output=True, text=True, timeout=60)
    imported = {line.split("|")[-1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")}
    assert not {"torch", "numpy"} & imported


# ---- the architecture shorthand ----------------------------------------------------------------
ITEM = re.compile(r"^(C\d+(x\d+)?x\d+|[MA]\d+(x\d+)?|I)(/\d+)?(<(in|\d+(\+\d+)*))?$")


@pytest.mark.parametrize("dims", [1, 2])
def test_the_legend_describes_every_form_the_shorthand_takes(dims):
    """Every summary() of random architectures parses by the legend's grammar, and the legend
    names each symbol, so a change to the shorthand shows up here."""
    from nasforge.spaces.chain_cnn import ChainCNNSpace

    space = ChainCNNSpace(num_layers=5, dims=dims)
    rng = np.random.default_rng(0)
    for _ in range(300):
        layers, head = space.summary(space.sample(rng)).split(" | ")
        assert all(ITEM.match(item) for item in layers.split()), layers
        assert re.fullmatch(r"(avg|flatten)( fc\d+)*", head), head
    for symbol in ("C7x24/2", "M3", "A3", "I =", "<0+1", "<in", "| avg", "flatten", "fc64"):
        assert symbol in CHAIN_CNN_LEGEND


def test_best_prints_the_legend_under_a_chain_cnn_table(tmp_path, capsys):
    from nasforge.config import SearchConfig
    from nasforge.search import run_search

    config = SearchConfig(budget=2, dataset="digits")
    config.space = {"name": "chain-cnn", "num_layers": 2, "dims": 1}  # synthetic scores: no network is built
    config.strategy = {"name": "random"}
    config.training = {"estimator": "synthetic", "seconds": 0.0}
    config.execution = {"name": "inline"}
    run_search(config, tmp_path / "exp")
    assert main(["best", "--experiment", str(tmp_path / "exp")]) == 0
    assert CHAIN_CNN_LEGEND.split(";")[0] in capsys.readouterr().out.replace("\n", " ")

"""``benchmarks/search/update_rules.py`` with several search seeds, run as a user runs it.

Its searches run side by side in processes of their own and their best rules are pooled for the
re-ranking. The contract: running beside another search does not change a search's children (each
store holds what a search of that seed alone holds), and the re-ranking draws from every search,
best search score first, one rule per behaviour.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

from nasforge import SearchConfig, run_search
from nasforge.spaces.update_rules import UpdateRuleSpace
from nasforge.store import Store, store_path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "search" / "update_rules.py"
TINY = ["--bits", "2", "--epochs", "1", "--select-seeds", "10", "--test-seeds", "100"]


def run_script(tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(SCRIPT.parents[2]), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, str(SCRIPT), *TINY, *args], capture_output=True, text=True,
                          timeout=600, env=env, cwd=tmp_path)


def stored(folder) -> list:
    with Store(store_path(folder), readonly=True) as store:
        return sorted((r.number, tuple(r.tokens), r.state, r.objective) for r in store.trials())


def test_searches_side_by_side_are_each_the_search_alone_and_are_pooled(tmp_path):
    folders = [str(tmp_path / "s0"), str(tmp_path / "s1")]
    done = run_script(tmp_path, "--search-budget", "3", "--search-seed", "0", "1", "--rerank", "4",
                      "--experiment", *folders, "--json", "out.json")
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((tmp_path / "out.json").read_text())

    for seed, folder in zip((0, 1), folders):  # the same search alone, in this process
        config = SearchConfig(dataset="mnist1d", budget=3, seed=seed)
        config.space = {"name": "update-rules", "weight_bits": 2, "child_layers": 3}
        config.strategy = {"name": "reinforce-elite"}
        config.training = {"epochs": 1, "repeats": 2}
        config.execution = {"name": "inline"}
        run_search(config, tmp_path / f"alone{seed}")
        assert stored(folder) == stored(tmp_path / f"alone{seed}")

    space = UpdateRuleSpace(weight_bits=2, child_layers=3)
    pooled = sorted((-objective, seed, number, tokens) for seed, folder in zip((0, 1), folders)
                    for number, tokens, state, objective in stored(folder) if state == "COMPLETE")
    expected, seen = [], set()
    for minus_objective, seed, _, tokens in pooled:  # best search score first, one rule per behaviour
        if space.arch_hash(list(tokens)) not in seen:
            seen.add(space.arch_hash(list(tokens)))
            expected.append((seed, list(tokens), -minus_objective))
    candidates = result["candidates"]
    assert sorted((c["search_seed"], c["tokens"], c["search_val"]) for c in candidates) == sorted(expected[:4])
    assert [c["select_val"] for c in candidates] == sorted((c["select_val"] for c in candidates), reverse=True)
    assert result["found"]["tokens"] == candidates[0]["tokens"]
    assert [(s["seed"], s["complete"] + s["failed"]) for s in candidates[0]["searches"]] == [(0, 3), (1, 3)]
    best = max(result["baselines"], key=lambda k: result["baselines"][k]["test_acc"])
    margin = result["margin_paired"]
    assert margin["baseline"] == best and math.isclose(margin["mean"], result["margin_test"], abs_tol=1e-12)
    assert margin["better"] == int(result["found"]["test_acc"] > result["baselines"][best]["test_acc"])
    assert "found - best baseline (" + best + ", test)" in done.stdout


def load_script():
    """The script as a module its worker processes can import by name (spawn hands them sys.path)."""
    if str(SCRIPT.parent) not in sys.path:
        sys.path.insert(0, str(SCRIPT.parent))
    return importlib.import_module(SCRIPT.stem)


def test_trainings_in_worker_processes_are_the_trainings_in_this_one():
    """``--workers``: each seed's training in a process of its own gives what it gives here, in the
    seeds' order (a worker that trained another seed, or returned out of order, would differ)."""
    script = load_script()
    groups = script.REFERENCE_RULES["powersign"][0]
    here = script.Task("mnist1d", bits=2, child_layers=3, epochs=1)
    side_by_side = script.Task("mnist1d", bits=2, child_layers=3, epochs=1, workers=2)
    try:
        seeds = [12, 10, 11]
        alone = here.runs(groups, 0.1, {}, seeds)
        assert side_by_side.runs(groups, 0.1, {}, seeds) == alone
        assert len({r["val_acc"] for r in alone}) > 1  # the seeds do train differently
    finally:
        side_by_side.pool.shutdown()


def test_paired_difference_against_a_hand_count():
    script = load_script()
    # differences 0.2 and 0.1: mean 0.15, sd 0.0707, se 0.05, t = 3 on one degree of freedom, where
    # Student's t is Cauchy: two-sided p = 1 - 2 atan(3) / pi
    got = script.paired([0.7, 0.5], [0.5, 0.4])
    assert math.isclose(got["mean"], 0.15) and math.isclose(got["se"], 0.05)
    assert got["better"] == 2 and got["seeds"] == 2
    assert math.isclose(got["p"], 1 - 2 * math.atan(3) / math.pi, rel_tol=1e-9)
    assert script.paired([0.5, 0.6, 0.4], [0.6, 0.6, 0.3])["better"] == 1  # a tie is not better


def test_search_seeds_and_folders_are_checked(tmp_path):
    for args, message in ((["--search-seed", "0", "0"], "the search seeds must differ"),
                          (["--search-seed", "0", "1", "--experiment", "a"], "one folder per search seed"),
                          (["--workers", "0"], "--workers must be at least 1")):
        done = run_script(tmp_path, "--search-budget", "3", *args)
        assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


class _Peaked:
    """A stand-in task whose selection accuracy of a learning rate is known: highest at ``peak``."""

    def __init__(self, peak: float):
        self.peak, self.asked = peak, []

    def selection_val(self, groups, lr, constants, seeds):
        self.asked.append(lr)
        return -abs(math.log10(lr) - math.log10(self.peak))


def test_a_learning_rate_at_an_end_of_the_range_is_searched_past_it():
    script = load_script()
    grid = script.LEARNING_RATES
    inside = _Peaked(grid[3])  # inside the first range tried: nothing more is trained
    assert script.best_lr(inside, None, grid[1:6], [10])[0] == grid[3] and sorted(inside.asked) == list(grid[1:6])
    far = _Peaked(grid[-1])  # past the top of the range: one step at a time up to the peak, no further
    best, tried = script.best_lr(far, None, grid[:3], [10])
    assert best == grid[-1] and sorted(tried) == list(grid)


def test_tune_rule_lr_needs_a_rule(tmp_path):
    done = run_script(tmp_path, "--tune-rule-lr")
    assert done.returncode == 2 and "--tune-rule-lr needs --rule" in done.stderr and "Traceback" not in done.stderr


def test_a_transferred_rule_gets_the_learning_rate_its_selection_seeds_prefer(tmp_path):
    groups = [["m_bop", "sign(m_hat)", "sqrt|x|", "drop", "add"], ["sign(g)", "w_q", "log|x|", "drop", "power"],
              ["tau", "sign(g)", "drop", "identity", "divide"], ["g", "w_q", "sign", "identity", "subtract"]]
    rule = tmp_path / "found.json"
    # stated at the grid's lowest rate, where one epoch barely moves the weights: the rate must move up
    rule.write_text(json.dumps({"found": {"rule": "0.0001 * subtract(sign(g), w_q)", "groups": groups, "lr": 1e-4}}))
    done = run_script(tmp_path, "--rule", str(rule), "--tune-rule-lr", "--json", "out.json")
    assert done.returncode == 0, done.stderr
    found = json.loads((tmp_path / "out.json").read_text())["found"]
    tried = {t["lr"]: t["select_val"] for t in found["tried"]}
    assert found["searched_lr"] == 1e-4 and {1e-4, 3e-4, 1e-3}.issubset(tried) and found["lr"] > 1e-4
    assert found["lr"] == max(tried, key=tried.get) and found["select_val"] == tried[found["lr"]]
    assert found["rule"] == f"{found['lr']:g} * subtract(sign(g), w_q)"

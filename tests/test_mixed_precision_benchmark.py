"""``benchmarks/search/mixed_precision_pareto.py``: the limits of its bit searches and the front it
pools from them, checked by hand, and one tiny precision-mode run of the script as a user runs it,
its bit children fine-tuned from the fp32 best's weights."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nasforge.store import Store
from nasforge.stored_config import read_config

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "search" / "mixed_precision_pareto.py"


def script_module():
    spec = importlib.util.spec_from_file_location("mixed_precision_pareto", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_bit_search_gets_its_own_limit():
    limits = script_module().bit_limits(["ratio", "uniform-2"], fp32_bits=8_000, uniform2_bits=530, ratio=8)
    assert limits == {"ratio": 1_000, "uniform-2": 530}
    assert script_module().bit_limits(["ratio"], 8_000, 530, 16) == {"ratio": 500}


def test_the_pooled_front_keeps_exactly_the_points_no_other_search_beats():
    module = script_module()
    first = [{"trial": 1, "val_acc": 0.98, "weight_bits": 900}, {"trial": 2, "val_acc": 0.95, "weight_bits": 400}]
    second = [{"trial": 1, "val_acc": 0.97, "weight_bits": 380}, {"trial": 2, "val_acc": 0.90, "weight_bits": 300},
              {"trial": 3, "val_acc": 0.98, "weight_bits": 950}]
    kept = module.joint_front([first, second])
    # by hand: (0.95, 400) loses to (0.97, 380); (0.98, 950) to (0.98, 900); the other three stand
    assert sorted((t["val_acc"], t["weight_bits"]) for t in kept) == [(0.90, 300), (0.97, 380), (0.98, 900)]
    assert module.joint_front([[], []]) == []


def test_inheriting_weights_is_refused_where_there_is_no_fp32_best_first(tmp_path):
    run = subprocess.run([sys.executable, str(SCRIPT), "--mode", "joint", "--inherit-epochs", "2"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 2 and "--inherit-epochs needs --mode precision" in run.stderr


@pytest.mark.slow
def test_precision_mode_with_two_limits_runs_both_bit_searches_and_pools_their_fronts(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(SCRIPT.parents[2]), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "out.json"
    run = subprocess.run([sys.executable, str(SCRIPT), "--mode", "precision", "--bit-limits", "ratio", "uniform-2",
                          "--minutes", "20", "--budget", "2", "--seeds", "0", "--epochs", "1", "--inherit-epochs", "1",
                          "--out", str(tmp_path / "runs"), "--json", str(out)],
                         capture_output=True, text=True, timeout=1200, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    result = json.loads(out.read_text())["0"]
    fp32_bits, uniform2_bits = result["uniform"]["32"][1], result["uniform"]["2"][1]
    assert result["limit"] == {"ratio": int(fp32_bits / 8), "uniform-2": int(uniform2_bits)}
    assert set(result["searches"]) == {"fp32", "mixed-ratio", "mixed-uniform-2"}
    assert all(s["trials"] == 2 for s in result["searches"].values())
    assert (tmp_path / "runs" / "mp-0").is_dir() and (tmp_path / "runs" / "mp-uniform-2-0").is_dir()
    stored = {folder: json.loads(subprocess.run(
        [sys.executable, "-m", "nasforge", "trials", "--experiment", str(tmp_path / "runs" / folder), "--json"],
        capture_output=True, text=True, check=True, env=env).stdout) for folder in ("mp-0", "mp-uniform-2-0")}
    # the second bit search has a seed of its own: none of its children is the first one's again
    first, second = ([t["tokens"] for t in trials] for trials in stored.values())
    assert all(a != b for a, b in zip(first, second))
    # every bit child started from the fp32 best's weights, saved once, and trained one epoch more
    weights = tmp_path / "runs" / "fp32-best-0.pt"
    assert weights.is_file() and result["pretrain_seconds"] > 0
    for folder in ("mp-0", "mp-uniform-2-0"):
        with Store(tmp_path / "runs" / folder / "trials.sqlite", readonly=True) as store:
            assert read_config(store)["training"]["init_weights"] == str(weights.resolve())
    assert all(t["metrics"]["epochs"] == 1 for trials in stored.values() for t in trials)
    # the pooled front is the non-dominated set of both bit searches' completed trials, counted here
    points = [(t["metrics"]["val_acc"], t["metrics"]["weight_bits"])
              for trials in stored.values() for t in trials if t["state"] == "COMPLETE"]
    expected = {p for p in points
                if not any(q[0] >= p[0] and q[1] <= p[1] and q != p for q in points)}
    assert {tuple(p) for p in result["found_val"]} == expected
    assert len(result["found_summaries"]) == len(result["found"]) == len(result["found_val"])

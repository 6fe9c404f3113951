"""The real command line, end to end on a tiny budget: search, trials, best, retrain, export."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from cli_paths import user_env


def nasforge(*args, cwd: Path, timeout: int = 300):
    return subprocess.run([sys.executable, "-m", "nasforge", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=user_env())


def test_search_inspect_retrain_export(tmp_path, mnist1d_npz):
    config = tmp_path / "search.toml"
    config.write_text(
        f'dataset = "{mnist1d_npz}"\nbudget = 3\nseed = 2\n'
        '[space]\nname = "chain-cnn"\nnum_layers = 2\n'
        '[strategy]\nname = "reinforce"\nbatch_size = 2\n'
        '[training]\nepochs = 2\n')
    run = nasforge("search", "--config", str(config), "--experiment", "exp", cwd=tmp_path)
    assert run.returncode == 0, run.stderr + run.stdout
    assert "best architectures, one row each (3 completed, 0 failed" in run.stdout
    assert (tmp_path / "exp" / "trials.sqlite").exists()
    assert (tmp_path / "runs" / "latest").read_text().strip() == "exp"

    trials = nasforge("trials", "--json", cwd=tmp_path)  # the latest experiment by default
    assert trials.returncode == 0, trials.stderr
    rows = json.loads(trials.stdout)
    assert [r["state"] for r in rows] == ["COMPLETE"] * 3

    best = nasforge("best", cwd=tmp_path)
    assert best.returncode == 0 and "tokens:" in best.stdout and "L0:" in best.stdout

    retrain = nasforge("retrain", "--epochs", "2", "--seeds", "2", "--shift", "1", "--ema", "0.9", cwd=tmp_path)
    assert retrain.returncode == 0, retrain.stderr + retrain.stdout
    assert "test accuracy over 2 seeds" in retrain.stdout
    assert "2 epochs, shift 1, label smoothing 0.1, mixup 0.0, weight average 0.9, seed 1" in retrain.stdout
    # the search's top 3 were first trained with that recipe and the best on validation retrained
    assert "final selection: the search's top 3" in retrain.stdout
    chosen = int(retrain.stdout.split("chosen: trial ")[1].split()[0])
    assert f"retraining trial {chosen} on train+validation" in retrain.stdout
    flagged = [t["trial"] for t in json.loads(nasforge("best", "--json", "--top", "3", cwd=tmp_path).stdout)
               if t["final_choice"]]
    assert flagged == [chosen]
    bad = nasforge("retrain", "--epochs", "2", "--rerank", "0", cwd=tmp_path)
    assert bad.returncode == 2 and "--rerank must be at least 1" in bad.stderr, bad.stderr
    bad = nasforge("retrain", "--epochs", "2", "--shift", "-1", cwd=tmp_path)
    assert bad.returncode == 2 and "shift must be a non-negative whole number" in bad.stderr, bad.stderr
    bad = nasforge("retrain", "--epochs", "2", "--mixup", "-1", cwd=tmp_path)
    assert bad.returncode == 2 and "mixup must be a non-negative Beta parameter" in bad.stderr, bad.stderr

    export = nasforge("export", "--out", "model", cwd=tmp_path)
    assert export.returncode == 0, export.stderr + export.stdout
    out = tmp_path / "model"
    assert {"model.py", "weights.pt", "spec.json", "model.onnx"} <= {p.name for p in out.iterdir()}
    # the export predicts with torch alone: no nasforge on the path
    code = ("import torch, model, json; m = model.load('.'); meta = json.load(open('metadata.json'));"
            "x = torch.zeros(3, *meta['input_shape']); print(m(x).shape)")  # raw inputs: (3, 40)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    pred = subprocess.run([sys.executable, "-E", "-s", "-c", "import sys; sys.modules['nasforge'] = None;" + code],
                          cwd=out, capture_output=True, text=True, env=env, timeout=120)
    assert pred.returncode == 0, pred.stderr
    assert "torch.Size([3, 10])" in pred.stdout
    assert json.loads((out / "metadata.json").read_text())["trial"] == chosen  # the retrained choice

    resume = nasforge("search", "--resume", "--budget", "4", cwd=tmp_path)
    assert resume.returncode == 0, resume.stderr + resume.stdout
    assert "4 completed" in resume.stdout
    other = nasforge("search", "--resume", "--epochs", "5", cwd=tmp_path)
    assert other.returncode == 2 and "training.epochs: stored 2, now 5" in other.stderr


def test_bad_input_exits_2_with_a_clear_message_and_touches_nothing(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, x_train=np.zeros((20, 8)), y_train=np.full(20, 0.5), x_test=np.zeros((4, 8)), y_test=np.zeros(4))
    cases = [
        (["search", "--dataset", str(bad), "--experiment", "e1"], "integer class labels"),
        (["search", "--strategy", "magic", "--experiment", "e2"], "unknown strategy 'magic'"),
        (["search", "--optimizer", "lion", "--experiment", "e3"], "optimizer must be one of"),
        (["search", "--set", "training.epochs", "--experiment", "e4"], "SECTION.KEY=VALUE"),
        (["trials", "--experiment", "nowhere"], "no experiment store"),
    ]
    for args, message in cases:
        run = nasforge(*args, cwd=tmp_path, timeout=120)
        assert run.returncode == 2, (args, run.stdout, run.stderr)
        assert message in run.stderr, (args, run.stderr)
    assert not any((tmp_path / e / "trials.sqlite").exists() for e in ("e1", "e2", "e3", "e4"))


def test_help_explains_every_flag(tmp_path):
    run = nasforge("search", "--help", cwd=tmp_path)
    assert run.returncode == 0
    for flag in ("--controller-lr", "--entropy-weight", "--reward-transform", "--epochs", "--config", "--resume"):
        assert flag in run.stdout

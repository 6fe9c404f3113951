"""Through the real command line: search -> retrain -> export -> a fresh process on the raw file.

The path a user walks (issue 13, item 2): the exported model takes the test arrays of their
.npz as they are and scores the test accuracy `nasforge retrain` reported. And bad labels are
refused (exit 2, the value named) before any trial (issue 14, item 2).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

FRESH = r"""
import json, sys
sys.modules["nasforge"] = None  # the export must stand alone
import numpy as np, onnxruntime, torch
import model
with np.load(sys.argv[1]) as f:
    x, y = f["x_test"], f["y_test"]
with torch.no_grad():
    torch_pred = model.load(".")(torch.from_numpy(x)).argmax(1).numpy()
session = onnxruntime.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
onnx_pred = session.run(None, {"input": x})[0].argmax(1)
print(json.dumps({"torch_acc": float((torch_pred == y).mean()), "onnx_acc": float((onnx_pred == y).mean())}))
"""


def nasforge(*args, cwd, timeout=300):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NASFORGE_DEBUG")}
    return subprocess.run([sys.executable, "-m", "nasforge", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def _signals(mnist1d):
    return dict(x_train=mnist1d.x_train[:600, 0].astype(np.float64) * 40 + 128, y_train=mnist1d.y_train[:600],
                x_test=mnist1d.x_test[:300, 0].astype(np.float64) * 40 + 128, y_test=mnist1d.y_test[:300])


def _images(_):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.images * 40 + 128
    order = np.random.default_rng(0).permutation(len(x))
    return dict(x_train=x[order[:1400]], y_train=bunch.target[order[:1400]], x_test=x[order[1400:]],
                y_test=bunch.target[order[1400:]], layout="NHW")


# slow: test_user_paths walks the same path (export -> a fresh process on the raw test arrays) for a
# 1-D and a 2-D .npz in the default run
@pytest.mark.slow
@pytest.mark.parametrize("make", [_signals, _images], ids=["NL", "NHW"])
def test_exported_model_scores_the_reported_accuracy_on_the_raw_file(tmp_path, mnist1d, make):
    arrays = make(mnist1d)
    np.savez(tmp_path / "raw.npz", **arrays)
    # seed 1: the first architecture has a convolution (a pooling-only one would learn little)
    run = nasforge("search", "--dataset", "raw.npz", "--budget", "1", "--epochs", "1", "--layers", "2",
                   "--executor", "inline", "--seed", "1", "--experiment", "exp", "--quiet", cwd=tmp_path)
    assert run.returncode == 0, run.stderr + run.stdout
    retrain = nasforge("retrain", "--epochs", "3", "--rerank", "1", "--device", "cpu", cwd=tmp_path)
    assert retrain.returncode == 0, retrain.stderr + retrain.stdout
    export = nasforge("export", "--out", "model", cwd=tmp_path)
    assert export.returncode == 0, export.stderr + export.stdout
    assert "no saved preprocessing" not in export.stdout  # retrain saved it with the model
    meta = json.loads((tmp_path / "model" / "metadata.json").read_text())
    reported = meta["test_acc"]  # saved by retrain with the model
    assert f"{100 * reported:.2f}" in retrain.stdout and reported > 0.2

    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    proc = subprocess.run([sys.executable, "-E", "-s", "-c", FRESH, str(tmp_path / "raw.npz")],
                          cwd=tmp_path / "model", env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert abs(got["torch_acc"] - reported) <= 1e-6 and abs(got["onnx_acc"] - reported) <= 1e-6, (got, reported)
    assert meta["preprocessing"]["standardise"]["mean"] == pytest.approx(arrays["x_train"].mean(), rel=1e-12)
    assert meta["input_shape"] == list(arrays["x_test"].shape[1:]) and meta["input_dtype"] == "float64"

    # a model retrained before records were kept: the record comes from the search's data, the same
    (saved,) = (tmp_path / "exp" / "retrain").glob("*/preprocessing.json")
    saved.unlink()
    old = nasforge("export", "--out", "model-old", cwd=tmp_path)
    assert old.returncode == 0 and "no saved preprocessing" in old.stdout, old.stderr + old.stdout
    assert (tmp_path / "model-old" / "preprocessing.json").read_text() == \
        (tmp_path / "model" / "preprocessing.json").read_text()


def test_a_huge_label_is_refused_before_any_trial(tmp_path):
    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    y[9] = 10**9
    np.savez(tmp_path / "big.npz", x_train=rng.normal(size=(60, 16)), y_train=y, x_test=rng.normal(size=(9, 16)),
             y_test=np.arange(9) % 3)
    run = nasforge("search", "--dataset", "big.npz", "--budget", "2", "--epochs", "1", "--experiment", "exp",
                   cwd=tmp_path, timeout=120)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "1000000000 (1 samples, row 9) lie outside" in run.stderr, run.stderr
    assert not (tmp_path / "exp" / "trials.sqlite").exists()

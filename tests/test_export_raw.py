"""An export takes the raw arrays of the user's data file and predicts what retrain tested.

Issue 13, item 2: inputs were standardised at load time and the export knew nothing of it, so a
model reported at 100% scored 32.5% on the raw test arrays of a rescaled file. Here: a rescaled
.npz (x*40 + 128) -> retrain a tiny model -> save the model dir -> export from that dir -> a fresh
interpreter without nasforge feeds the file's raw ``x_test`` to the torch module and to the ONNX
graph; the accuracy must be the one retrain measured, on the same predictions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from nasforge.data.datasets import load_npz
from nasforge.estimators.train import TrainRecipe, predict, retrain_and_test
from nasforge.report.export import export_model, raw_example
from nasforge.report.model_files import load_model_dir, load_preprocessing, save_model
from nasforge.spaces.base import space_of_section

pytest.importorskip("onnxruntime")
FRESH = r"""
import json, sys
sys.modules["nasforge"] = None  # nasforge may be installed here: make any import of it fail
import numpy as np, onnxruntime, torch
import model
with np.load(sys.argv[1]) as f:
    x, y = f["x_test"], f["y_test"]  # exactly as the user's file holds them
m = model.load(".")
with torch.no_grad():
    torch_pred = m(torch.from_numpy(x)).argmax(1).numpy()
meta = json.load(open("metadata.json"))
session = onnxruntime.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
onnx_pred = session.run(None, {meta["onnx_input"]: x})[0].argmax(1)
print(json.dumps({"torch_acc": float((torch_pred == y).mean()), "onnx_acc": float((onnx_pred == y).mean()),
                  "torch_pred": torch_pred.tolist(), "onnx_pred": onnx_pred.tolist(),
                  "onnx_input": [str(d) for d in session.get_inputs()[0].shape], "onnx_type": session.get_inputs()[0].type}))
"""


def _signals(mnist1d):
    """(N, L) float64: MNIST-1D rows, rescaled."""
    return dict(x_train=mnist1d.x_train[:600, 0].astype(np.float64) * 40 + 128, y_train=mnist1d.y_train[:600],
                x_test=mnist1d.x_test[:300, 0].astype(np.float64) * 40 + 128, y_test=mnist1d.y_test[:300])


def _images(dtype):
    """(N, H, W): scikit-learn's digits, rescaled (float64) or as 8-bit pixels (uint8)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.images * 40 + 128 if dtype == "float64" else (bunch.images * 15).astype(np.uint8)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    train, test = order[:1400], order[1400:]
    return dict(x_train=x[train], y_train=bunch.target[train], x_test=x[test], y_test=bunch.target[test],
                layout="NHW")


#: case: (arrays, dims of the space, seed of an architecture with a convolution and a head)
CASES = {"NL-float64": (lambda m: _signals(m), 1, 1), "NHW-float64": (lambda m: _images("float64"), 2, 0),
         "NHW-uint8": (lambda m: _images("uint8"), 2, 0)}


def _devices():
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", _devices())
@pytest.mark.parametrize("case", list(CASES))
def test_export_on_raw_test_arrays_matches_retrain(tmp_path, mnist1d, case, device):
    make, dims, arch_seed = CASES[case]
    arrays = make(mnist1d)
    npz = tmp_path / "raw.npz"
    np.savez(npz, **arrays)
    data = load_npz(str(npz))
    space = space_of_section({"name": "chain-cnn", "num_layers": 2, "dims": dims})
    tokens = space.sample(np.random.default_rng(arch_seed))
    model, metrics = retrain_and_test(space, tokens, data, TrainRecipe(epochs=4), seed=0, device=device)
    assert metrics["test_acc"] > 0.2, metrics  # above chance (0.1): a wrong input would show
    save_model(model, tmp_path / "retrain", {"tokens": list(tokens), **metrics}, preprocessing=data.preprocessing)

    loaded, meta = load_model_dir(tmp_path / "retrain")
    out = tmp_path / "export"
    export_model(loaded, out, metadata=meta, preprocessing=load_preprocessing(tmp_path / "retrain"))

    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    proc = subprocess.run([sys.executable, "-E", "-s", "-c", FRESH, str(npz)], cwd=out, env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert abs(got["torch_acc"] - metrics["test_acc"]) <= 1e-6, (got["torch_acc"], metrics["test_acc"])
    assert abs(got["onnx_acc"] - metrics["test_acc"]) <= 1e-6, (got["onnx_acc"], metrics["test_acc"])
    want = predict(model.cpu(), torch.from_numpy(data.x_test)).argmax(1).tolist()
    assert got["torch_pred"] == want and got["onnx_pred"] == want
    assert got["onnx_input"][1:] == [str(s) for s in arrays["x_test"].shape[1:]]  # raw shape, any batch
    assert got["onnx_type"] == {"float64": "tensor(double)", "uint8": "tensor(uint8)"}[str(arrays["x_test"].dtype)]

    stored = json.loads((out / "metadata.json").read_text())
    assert stored["preprocessing"] == data.preprocessing
    assert stored["input_shape"] == list(arrays["x_test"].shape[1:]) and stored["test_acc"] == metrics["test_acc"]
    assert stored["network_input_shape"] == list(data.input_shape)


SPEC = {"dims": 1, "in_channels": 1, "input_size": [12], "num_classes": 3, "head": {"depth": 0, "width": 4},
        "layers": [{"op": "conv", "kernel": [3], "filters": 4, "stride": 1, "inputs": []}], "readout": "avg"}
PREP = {"version": 1, "raw_shape": [12], "raw_dtype": "float64", "input_shape": [1, 12], "divide": None,
        "standardise": {"mean": 128.0, "std": 40.0}}


def _net():
    from nasforge.spaces.chain_net import ChainNet

    torch.manual_seed(0)
    return ChainNet(SPEC).eval()


@pytest.mark.parametrize("bad, message", [
    ({**PREP, "input_shape": [2, 6]}, "network takes \\[1, 12\\]"),
    ({**PREP, "raw_shape": [13]}, "cannot reshape raw samples"),
    ({**PREP, "standardise": {"mean": [1.0, 2.0], "std": 1.0}}, "2 values for 1 channels"),
])
def test_a_record_that_does_not_fit_is_refused_before_writing(tmp_path, bad, message):
    with pytest.raises(ValueError, match=message):
        export_model(_net(), tmp_path / "out", preprocessing=bad)
    assert not (tmp_path / "out").exists()


def test_example_must_be_raw_when_there_is_preprocessing(tmp_path):
    with pytest.raises(ValueError, match="expected \\(batch, 12\\)"):
        export_model(_net(), tmp_path / "out", torch.zeros(2, 1, 12, dtype=torch.float64), preprocessing=PREP)
    with pytest.raises(ValueError, match="dtype torch.float32, but the export takes raw inputs of float64"):
        export_model(_net(), tmp_path / "out", torch.zeros(2, 12), preprocessing=PREP)
    assert not (tmp_path / "out").exists()


def test_overwrite_without_preprocessing_leaves_no_stale_record(tmp_path):
    from nasforge.spaces import chain_net

    net = _net()
    export_model(net, tmp_path, preprocessing=PREP)
    raw = raw_example(PREP, 4, seed=7)
    assert raw.dtype == torch.float64 and 60 < float(raw.mean()) < 200  # looks like the raw data
    with torch.no_grad():
        torch.testing.assert_close(chain_net.load(str(tmp_path))(raw), net(((raw - 128.0) / 40.0).float()[:, None]),
                                   atol=1e-6, rtol=0)
    export_model(net, tmp_path, torch.zeros(2, 1, 12), overwrite=True)
    assert isinstance(chain_net.load(str(tmp_path)), chain_net.ChainNet)
    assert json.loads((tmp_path / "metadata.json").read_text())["preprocessing"] is None


def test_model_dir_keeps_and_clears_its_record(tmp_path):
    net = _net()
    save_model(net, tmp_path, {"test_acc": 0.5}, preprocessing=PREP)
    assert load_preprocessing(tmp_path) == PREP
    save_model(net, tmp_path, {"test_acc": 0.5})  # saved again without one: no record of other data
    assert load_preprocessing(tmp_path) is None

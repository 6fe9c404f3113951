"""Export of a ChainNet: the folder must reproduce the model without nasforge, in torch and ONNX."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

if importlib.util.find_spec("nasforge") is None:  # run from a checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nasforge.report import export as export_mod  # noqa: E402
from nasforge.report.export import export_model  # noqa: E402
from nasforge.spaces import chain_net  # noqa: E402
from nasforge.spaces.chain_net import ChainNet  # noqa: E402

ort = pytest.importorskip("onnxruntime")


def layer(op, kernel, filters=8, stride=1, inputs=()):
    return {"op": op, "kernel": list(kernel), "filters": filters, "stride": stride, "inputs": list(inputs)}


def spec_1d(layers, readout, depth):
    return {
        "dims": 1,
        "in_channels": 1,
        "input_size": [40],
        "num_classes": 10,
        "layers": layers,
        "head": {"depth": depth, "width": 16},
        "readout": readout,
    }


SPECS = {
    # plain chain, global average, linear head
    "chain-avg-d0": spec_1d([layer("conv", [5]), layer("conv", [3], 6, stride=2, inputs=[0])], "avg", 0),
    # skips of different lengths, concatenated after zero padding; flatten keeps position
    "skips-flatten-d2": spec_1d(
        [
            layer("conv", [5], 8, stride=2),
            layer("maxpool", [3], inputs=[0]),
            layer("conv", [3], 6),
            layer("avgpool", [3], stride=2, inputs=[1, 2]),
            layer("identity", [1], inputs=[3]),
            layer("conv", [1], 4, inputs=[0, 4]),
        ],
        "flatten",
        2,
    ),
    # pools and identity on the input; layer 2 is read by nobody, so it feeds the readout too
    "pools-dangling-flatten-d1": spec_1d(
        [
            layer("maxpool", [3], stride=2),
            layer("avgpool", [5], inputs=[0]),
            layer("identity", [1]),
            layer("conv", [7], 4, stride=2, inputs=[1]),
        ],
        "flatten",
        1,
    ),
    "2d-skips-avg-d1": {
        "dims": 2,
        "in_channels": 1,
        "input_size": [8, 8],
        "num_classes": 4,
        "layers": [
            layer("conv", [3, 5], 6, stride=2),
            layer("conv", [5, 3], 4),
            layer("maxpool", [3, 3], inputs=[0, 1]),
            layer("conv", [1, 3], 4, stride=2, inputs=[2]),
        ],
        "head": {"depth": 1, "width": 12},
        "readout": "avg",
    },
}
EXAMPLE_BATCH = 3


def make_model(spec, seed=0):
    """Random weights, but BatchNorm statistics that differ from their (0, 1) start."""
    torch.manual_seed(seed)
    model = ChainNet(spec)
    model.train()
    with torch.no_grad():
        model(torch.randn(16, spec["in_channels"], *spec["input_size"]) * 2 + 0.5)
    return model.eval()


def inputs(spec, batch, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn((batch, spec["in_channels"], *spec["input_size"]), generator=gen)


def predict(model, x):
    with torch.no_grad():
        return model(x)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Each spec exported once (into a not yet existing nested folder), shared by the tests."""
    root = tmp_path_factory.mktemp("exports")
    result = {}
    for name, spec in SPECS.items():
        model = make_model(spec)
        x = inputs(spec, EXAMPLE_BATCH)
        paths = export_model(model, root / name / "out", x, metadata={"search": "unit-test", "score": 0.5})
        result[name] = (model, x, paths)
    return result


@pytest.mark.parametrize("name", list(SPECS))
def test_export_writes_files(exported, name):
    model, x, paths = exported[name]
    assert set(paths) == {"model_py", "spec", "weights", "preprocessing", "metadata", "onnx", "readme"}
    assert all(p.is_file() for p in paths.values())
    out = paths["model_py"].parent
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths.values())
    assert paths["model_py"].read_bytes() == Path(chain_net.__file__).read_bytes()
    assert json.loads(paths["spec"].read_text()) == model.spec
    state = torch.load(paths["weights"], weights_only=True)
    assert state.keys() == model.state_dict().keys()
    meta = json.loads(paths["metadata"].read_text())
    spec = SPECS[name]
    assert meta["search"] == "unit-test" and meta["score"] == 0.5
    assert meta["input_shape"] == [spec["in_channels"], *spec["input_size"]]  # no preprocessing: the network's
    assert meta["preprocessing"] is None and json.loads(paths["preprocessing"].read_text()) is None
    assert meta["num_classes"] == spec["num_classes"]
    assert meta["torch_version"] == torch.__version__
    assert meta["exported_at"][:4].isdigit() and meta["onnx_checked"] is True
    assert meta["onnx_opset"] >= 17
    readme = paths["readme"].read_text().splitlines()
    assert 6 <= len(readme) <= 10
    assert "model.load('.')" in "\n".join(readme) and "onnxruntime" in "\n".join(readme)


@pytest.mark.parametrize("name", list(SPECS))
def test_onnx_matches_for_other_batch_sizes(exported, name):
    model, x, paths = exported[name]
    session = ort.InferenceSession(str(paths["onnx"]), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert not isinstance(inp.shape[0], int), "batch dimension must be dynamic"
    for batch in (x, inputs(SPECS[name], 1, seed=2), inputs(SPECS[name], 7, seed=3)):
        got = torch.from_numpy(session.run(None, {inp.name: batch.numpy()})[0])
        torch.testing.assert_close(got, predict(model, batch), atol=1e-4, rtol=1e-4)
    onnx = pytest.importorskip("onnx")
    opsets = {o.domain: o.version for o in onnx.load(str(paths["onnx"])).opset_import}
    assert opsets.get("", opsets.get("ai.onnx", 0)) >= 17


STANDALONE = r"""
import json, sys
sys.modules["nasforge"] = None  # nasforge may be installed here: make any import of it fail
import torch
import model
m = model.load(".")
x = torch.load(sys.argv[1], weights_only=True)
with torch.no_grad():
    y = m(x)
print(json.dumps({"file": model.__file__, "training": m.training, "logits": y.tolist()}))
"""


@pytest.mark.parametrize("name", ["skips-flatten-d2", "2d-skips-avg-d1"])
def test_standalone_load_in_clean_interpreter(exported, name, tmp_path):
    model, _, paths = exported[name]
    out = paths["model_py"].parent
    x = inputs(SPECS[name], 5, seed=4)
    torch.save(x, tmp_path / "x.pt")  # outside the export folder, which stays as exported
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    # -E -s: no PYTHON* variables, no user site; like -I, except that the current folder stays
    # importable, which `import model` in the README relies on.
    proc = subprocess.run(
        [sys.executable, "-E", "-s", "-c", STANDALONE, str(tmp_path / "x.pt")],
        cwd=out,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(result["file"]).resolve() == paths["model_py"].resolve()
    assert result["training"] is False
    torch.testing.assert_close(torch.tensor(result["logits"]), predict(model, x), atol=1e-5, rtol=0)
    assert predict(model, x).argmax(1).tolist() == torch.tensor(result["logits"]).argmax(1).tolist()


SMALL = SPECS["chain-avg-d0"]


def test_non_empty_dir_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not empty"):
        export_model(make_model(SMALL), tmp_path, inputs(SMALL, 2))
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_overwrite_replaces_the_export(tmp_path):
    first, second = make_model(SMALL, seed=0), make_model(SMALL, seed=1)
    x = inputs(SMALL, 2)
    export_model(first, tmp_path, x)
    with pytest.raises(ValueError, match="overwrite=True"):
        export_model(second, tmp_path, x)
    (tmp_path / "notes.txt").write_text("keep me")
    export_model(second, tmp_path, x, overwrite=True)
    torch.testing.assert_close(predict(chain_net.load(str(tmp_path)), x), predict(second, x), atol=1e-6, rtol=0)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_empty_existing_dir_is_fine_and_model_is_untouched(tmp_path):
    model = make_model(SMALL)
    model.train()
    export_model(model, tmp_path, inputs(SMALL, 1))
    assert model.training, "export must not flip the caller's model to eval mode"


def test_bad_input_is_refused_before_writing(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="shape"):
        export_model(make_model(SMALL), out, torch.randn(2, 1, 39))
    with pytest.raises(ValueError, match="JSON"):
        export_model(make_model(SMALL), out, inputs(SMALL, 2), metadata={"bad": object()})
    assert not out.exists()


class Tweaked(ChainNet):
    """Behaviour that spec + weights do not capture, so the reloaded copy must disagree."""

    def forward(self, x):
        return super().forward(x) + 1.0


def test_mismatch_after_reload_raises(tmp_path):
    model = Tweaked(SMALL).eval()
    with pytest.raises(RuntimeError, match="reloaded torch model"):
        export_model(model, tmp_path, inputs(SMALL, 2))


def test_onnx_check_is_skipped_without_onnxruntime(tmp_path, monkeypatch):
    monkeypatch.setattr(export_mod, "_onnxruntime", lambda: None)
    paths = export_model(make_model(SMALL), tmp_path, inputs(SMALL, 2))
    assert json.loads(paths["metadata"].read_text())["onnx_checked"] is False
    assert paths["onnx"].is_file()


def test_falls_back_to_dynamo_exporter(tmp_path, monkeypatch):
    """The TorchScript exporter is deprecated; once it is gone the dynamo one must take over."""
    pytest.importorskip("onnxscript")
    real_export = torch.onnx.export

    def without_legacy(*args, **kwargs):
        if not kwargs.get("dynamo", True):
            raise RuntimeError("legacy exporter removed")
        return real_export(*args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", without_legacy)
    spec = SPECS["skips-flatten-d2"]
    model, x = make_model(spec), inputs(spec, 1)  # a batch of 1 must not pin the batch size
    paths = export_model(model, tmp_path, x)
    assert json.loads(paths["metadata"].read_text())["onnx_exporter"] == "dynamo"
    session = ort.InferenceSession(str(paths["onnx"]), providers=["CPUExecutionProvider"])
    batch = inputs(spec, 4, seed=5)
    got = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: batch.numpy()})[0])
    torch.testing.assert_close(got, predict(model, batch), atol=1e-4, rtol=1e-4)

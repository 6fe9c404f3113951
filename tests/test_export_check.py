"""Every export is checked by running its ONNX file (README): an ONNX file that computes something
else than the model must make the export fail with a clear error, not hand back a broken folder.

The ONNX runtime is made to lie (its ``InferenceSession.run`` is patched in this process, where
the export runs its check), which stands for an exporter that silently mistranslates an op.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nasforge.report.export import export_model
from nasforge.spaces.chain_net import ChainNet

ort = pytest.importorskip("onnxruntime")
SPEC = {
    "dims": 1,
    "in_channels": 1,
    "input_size": [24],
    "num_classes": 5,
    "layers": [
        {"op": "conv", "kernel": [5], "filters": 6, "stride": 1, "inputs": []},
        {"op": "conv", "kernel": [3], "filters": 4, "stride": 2, "inputs": [0]},
    ],
    "head": {"depth": 1, "width": 8},
    "readout": "avg",
}
EXAMPLE_BATCH = 3


def model_and_input():
    torch.manual_seed(0)
    model = ChainNet(SPEC).eval()
    x = torch.randn(EXAMPLE_BATCH, SPEC["in_channels"], *SPEC["input_size"], generator=torch.Generator().manual_seed(1))
    return model, x


def lying_runtime(monkeypatch, change, only_other_batches=False):
    """Patch onnxruntime so that every run's first output goes through ``change``; with
    ``only_other_batches``, only runs on a batch of another size than the example's lie."""
    real_run = ort.InferenceSession.run
    runs = []

    def run(self, output_names, feeds, *args, **kwargs):
        outputs = real_run(self, output_names, feeds, *args, **kwargs)
        batch = next(iter(feeds.values())).shape[0]
        runs.append(batch)
        if only_other_batches and batch == EXAMPLE_BATCH:
            return outputs
        return [change(outputs[0]), *outputs[1:]]

    monkeypatch.setattr(ort.InferenceSession, "run", run)
    return runs


def relative_shift(size):
    """Adds ``size`` times the largest logit magnitude (at least 1) to one logit of the first row."""
    def change(out):
        out = np.array(out, copy=True)
        out[0, 0] += size * max(1.0, float(np.abs(out).max()))
        return out
    return change


def nan_out(out):
    out = np.array(out, copy=True)
    out[-1, -1] = np.nan
    return out


@pytest.mark.parametrize("change, message", [
    (relative_shift(0.5), r"ONNX output \(batch of \d+\) differs from the model"),
    (relative_shift(1e-3), r"ONNX output \(batch of \d+\) differs from the model"),  # ten times the tolerance
    (nan_out, r"ONNX output \(batch of \d+\) differs from the model by nan"),
    (lambda out: out[:, :-1], r"ONNX output \(batch of \d+\) has shape \(\d+, 4\), expected \(\d+, 5\)"),
], ids=["shifted", "slightly-shifted", "nan", "wrong-shape"])
def test_an_onnx_file_that_computes_something_else_fails_the_export(tmp_path, monkeypatch, change, message):
    model, x = model_and_input()
    runs = lying_runtime(monkeypatch, change)
    with pytest.raises(RuntimeError, match=message):
        export_model(model, tmp_path / "out", x)
    assert runs  # the check really ran the file
    assert not (tmp_path / "out" / "metadata.json").exists()  # nothing claims a checked export


def test_the_check_also_runs_a_batch_of_another_size(tmp_path, monkeypatch):
    """The ONNX batch dimension must be dynamic: a file right on the example but wrong on other
    batch sizes fails too."""
    model, x = model_and_input()
    runs = lying_runtime(monkeypatch, relative_shift(0.5), only_other_batches=True)
    with pytest.raises(RuntimeError, match=r"ONNX output \(batch of (?!3\))\d+\) differs"):
        export_model(model, tmp_path / "out", x)
    assert EXAMPLE_BATCH in runs and any(b != EXAMPLE_BATCH for b in runs)


def test_a_difference_within_the_tolerance_passes_and_is_recorded_as_checked(tmp_path, monkeypatch):
    """The other side of the bound: rounding-sized differences (a tenth of the tolerance) are
    not an error, so the failures above come from the size of the difference."""
    model, x = model_and_input()
    runs = lying_runtime(monkeypatch, relative_shift(1e-5))
    paths = export_model(model, tmp_path / "out", x)
    assert len(runs) == 2
    assert json.loads(paths["metadata"].read_text())["onnx_checked"] is True

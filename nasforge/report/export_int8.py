"""``nasforge export --int8``: the network as an int8 ONNX model, made by onnxruntime's own static
quantisation (quantise / dequantise nodes, per-channel int8 weights, activation ranges calibrated
on training data), checked against the fake-quantised PyTorch network and timed beside the fp32
ONNX model.

The float graph that onnxruntime quantises is the network with its fake-quantised weights as plain
weights (``quant.layers.strip``): a network trained at 4 bits keeps its 4-bit levels, which int8
represents closely. The int8 model takes the network's own float32 input (``preprocessing.json``
says how raw arrays become it); the fp32 ``model.onnx`` beside it takes raw arrays.

Agreement is the share of test examples on which the int8 model and the PyTorch network predict
the same class; below ``min_agreement`` (95% unless set) the export is refused (:class:`Int8Mismatch`).
"""

from __future__ import annotations

import copy
import json
import statistics
import time
from pathlib import Path
from typing import Any, Dict

import numpy as np
import torch

from ..quant.layers import strip
from .export import INPUT_NAME, _export_onnx

INT8_FILE = "model_int8.onnx"
FP32_FILE = "model_fp32_network.onnx"
REPORT_FILE = "int8.json"
MIN_AGREEMENT = 0.95


class Int8Mismatch(ValueError):
    """The int8 model predicts too differently from the network it was made from."""


class _Reader:
    """onnxruntime's calibration data reader over training inputs, a batch at a time."""

    def __init__(self, x: np.ndarray, batch_size: int = 64):
        self.batches = iter([x[i: i + batch_size] for i in range(0, len(x), batch_size)])

    def get_next(self):
        batch = next(self.batches, None)
        return None if batch is None else {INPUT_NAME: batch}


def _session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _latency_ms(session, example: np.ndarray, warmup: int = 10, repeats: int = 50) -> float:
    """Median of timed batch-1 runs after untimed ones, like the children's latency."""
    feed = {INPUT_NAME: example[:1]}
    for _ in range(warmup):
        session.run(None, feed)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _predict(session, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    return np.concatenate([session.run(None, {INPUT_NAME: x[i: i + batch_size]})[0]
                           for i in range(0, len(x), batch_size)]).argmax(1)


def _quantize(net: torch.nn.Module, x_calib: np.ndarray, fp32: Path, int8: Path) -> None:
    """Export, run onnxruntime's pre-processing (graph optimisation and shape inference, which it
    asks for before quantising: batch norms after convolutions fold into them), then quantise the
    pre-processed graph statically."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    _export_onnx(net, torch.as_tensor(x_calib[:2]), fp32, dynamo=False)
    prepared = fp32.with_name(fp32.stem + ".prepared.onnx")
    try:
        quant_pre_process(str(fp32), str(prepared))
        quantize_static(str(prepared), str(int8), _Reader(x_calib), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        # a batch norm left unfused (after a sum) has one scale per channel along its only axis
                        extra_options={"QDQOpTypePerChannelSupportToAxis": {"BatchNormalization": 0}})
    finally:
        prepared.unlink(missing_ok=True)


def export_int8(model: torch.nn.Module, out_dir: Path, x_calib: np.ndarray, x_test: np.ndarray,
                y_test: np.ndarray, min_agreement: float = MIN_AGREEMENT, threads: int = 1) -> Dict[str, Any]:
    """Write ``model_int8.onnx`` (and the float network it was made from) to ``out_dir``; return
    and write ``int8.json``: agreement, accuracies, latency and file size of int8 against fp32."""
    if not 0 <= min_agreement <= 1:
        raise ValueError(f"min_agreement must be in [0, 1], got {min_agreement}")
    out_dir = Path(out_dir)
    reference = copy.deepcopy(model).cpu().eval()
    x_calib = np.ascontiguousarray(x_calib, dtype=np.float32)
    x_test = np.ascontiguousarray(x_test, dtype=np.float32)
    fp32, int8 = out_dir / FP32_FILE, out_dir / INT8_FILE
    _quantize(strip(copy.deepcopy(reference)), x_calib, fp32, int8)
    with torch.no_grad():
        want = reference(torch.as_tensor(x_test)).argmax(1).numpy()
    sessions = {"fp32": _session(fp32, threads), "int8": _session(int8, threads)}
    got = _predict(sessions["int8"], x_test)
    report = {
        "agreement": float((got == want).mean()),
        "min_agreement": min_agreement,
        "test_examples": int(len(x_test)),
        "int8_test_acc": float((got == y_test).mean()),
        "torch_test_acc": float((want == y_test).mean()),
        **{f"{k}_latency_ms": _latency_ms(s, x_test) for k, s in sessions.items()},
        "fp32_bytes": fp32.stat().st_size,
        "int8_bytes": int8.stat().st_size,
        "threads": threads,
        "int8_file": INT8_FILE,
        "fp32_file": FP32_FILE,
        "input": "the network's float32 input (preprocessing.json applied)",
    }
    (out_dir / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    if report["agreement"] < min_agreement:
        raise Int8Mismatch(f"the int8 model agrees with the PyTorch network on {report['agreement']:.1%} of "
                           f"{len(x_test)} test examples, below the required {100 * min_agreement:g}% "
                           f"(files left in {out_dir} for inspection; --min-agreement sets the level)")
    _readme_section(out_dir, tuple(x_test.shape[1:]), report)
    return report


def _readme_section(out_dir: Path, shape, report: Dict[str, Any]) -> None:
    """Say in the export's README what the int8 file takes: unlike ``model.onnx`` it holds the
    quantised network alone, so it reads the preprocessed input, not the raw arrays."""
    readme = out_dir / "README.md"
    if not readme.exists():
        return
    dims = ", ".join(str(int(s)) for s in shape)
    readme.write_text(readme.read_text().rstrip("\n") + "\n\n"
                      f"## int8: `{INT8_FILE}`\n\n"
                      f"Input: the network's float32 input, shape (batch, {dims}): the raw arrays with "
                      "`preprocessing.json` applied (`model.onnx` applies it itself; this file holds only the "
                      "quantised network). Output: logits. It agrees with the PyTorch network on "
                      f"{report['agreement']:.1%} of {report['test_examples']} test examples; `{REPORT_FILE}` has "
                      "its accuracy, latency and size against the fp32 network's.\n")

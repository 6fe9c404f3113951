"""Measured properties of a network and of its predictions.

Accuracies are fractions in [0, 1]. FLOPs come from PyTorch's own counter
(``torch.utils.flop_counter``), which counts a multiply-add as two FLOPs and counts only matrix
products and convolutions (no bias additions, normalisation, activations or pooling; see
:func:`count_flops_with_pooling`). ``METRICS`` names every metric nasforge reports, with its unit
and which direction is better, so constraints, rewards and Pareto fronts need no extra settings.
"""

from __future__ import annotations

import math
import time
import weakref
from dataclasses import dataclass
from itertools import count
from typing import Any, Dict, Optional, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


def count_params(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def count_flops(model: nn.Module, input_shape: Sequence[int], pooling: bool = False) -> int:
    """FLOPs of one forward pass for a single example of ``input_shape`` (channels first).

    ``pooling=True`` adds our count for pooling layers and mean reductions, which PyTorch's
    counter leaves out (see :func:`count_flops_with_pooling`).
    """
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    x = torch.zeros((1, *input_shape), device=device)
    counter = FlopCounterMode(display=False, custom_mapping=_pooling_flop_mapping() if pooling else None)
    with torch.no_grad(), counter:
        model(x)
    model.train(was_training)
    return int(counter.get_total_flops())


# ---- the registry of named metrics -----------------------------------------------------------------
@dataclass(frozen=True)
class MetricInfo:
    """What a metric measures: its unit and which way is better (used by rewards and Pareto fronts)."""

    unit: str
    direction: str  # "maximize" or "minimize"
    description: str = ""


DIRECTIONS = ("maximize", "minimize")

METRICS: Dict[str, MetricInfo] = {
    # measured by the training estimator and the final evaluation
    "val_acc": MetricInfo("fraction", "maximize", "best validation accuracy of the last score_epochs epochs"),
    "val_acc_last": MetricInfo("fraction", "maximize", "validation accuracy after the last epoch"),
    "test_acc": MetricInfo("fraction", "maximize", "test accuracy"),
    "test_top3_acc": MetricInfo("fraction", "maximize", "test top-3 accuracy"),
    "test_average_precision": MetricInfo("fraction", "maximize", "test macro average precision"),
    "top3_acc": MetricInfo("fraction", "maximize", "top-3 accuracy"),
    "average_precision": MetricInfo("fraction", "maximize", "macro average precision (one-vs-rest)"),
    "macro_f1": MetricInfo("fraction", "maximize", "unweighted mean of the per-class F1 scores"),
    "params": MetricInfo("count", "minimize", "trainable and frozen parameters"),
    "size_bytes": MetricInfo("bytes", "minimize", "parameters (+ floating buffers) stored at a bit width"),
    "flops": MetricInfo("FLOPs", "minimize", "one forward pass, one example; a multiply-add is 2 FLOPs"),
    "flops_with_pooling": MetricInfo("FLOPs", "minimize", "flops plus one FLOP per pooling-window element"),
    "latency_ms": MetricInfo("ms", "minimize", "median forward time of one batch"),
    "latency_p90_ms": MetricInfo("ms", "minimize", "90th percentile forward time of one batch"),
    "latency_cv": MetricInfo("ratio", "minimize", "coefficient of variation of the forward times"),
    "peak_memory_bytes": MetricInfo("bytes", "minimize", "parameters + buffers + peak live activations"),
    "train_seconds": MetricInfo("s", "minimize", "wall time of child training"),
    "simulated_seconds": MetricInfo("s", "minimize", "cost a tabular query stands for"),
    # NAS-Bench-Graph (nasforge/tables/nbgraph.py)
    "latency_s": MetricInfo("s", "minimize", "NAS-Bench-Graph's stored latency"),
    "params_m": MetricInfo("millions", "minimize", "NAS-Bench-Graph's stored parameter count"),
    # NAS-Bench-201 / analog-nasbench (nasforge/tables/nb201.py)
    "fp_acc": MetricInfo("fraction", "maximize", "full-precision accuracy"),
    "ptq_acc": MetricInfo("fraction", "maximize", "accuracy after post-training quantisation"),
    "qat_acc": MetricInfo("fraction", "maximize", "accuracy after quantisation-aware training"),
    "noisy_acc": MetricInfo("fraction", "maximize", "accuracy under noise (tracks baseline_drift_*)"),
    "analog_acc": MetricInfo("fraction", "maximize", "accuracy on analog hardware (tracks analog_drift_*)"),
}
for _kind in ("baseline", "analog"):
    for _t in (60, 3600, 86400, 2592000):
        METRICS[f"{_kind}_drift_{_t}s"] = MetricInfo("fraction", "maximize", f"accuracy after {_t} s of drift")
        METRICS[f"{_kind}_drift_{_t}s_std"] = MetricInfo("fraction", "minimize", "spread of that accuracy")


def register_metric(name: str, unit: str, direction: str, description: str = "") -> MetricInfo:
    """Add a metric of your own (e.g. one a custom estimator reports) so constraints and fronts know it."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction of metric {name!r} must be one of {DIRECTIONS}, got {direction!r}")
    METRICS[name] = MetricInfo(unit, direction, description)
    return METRICS[name]


def metric_info(name: str) -> MetricInfo:
    """The registered metric, or a ValueError that lists the known names."""
    try:
        return METRICS[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; known metrics: {', '.join(sorted(METRICS))} "
                         "(register_metric adds one)") from None


def metric_direction(name: str) -> str:
    return metric_info(name).direction


# ---- size --------------------------------------------------------------------------------------------
def model_size_bytes(model: nn.Module, bits: int = 32, include_buffers: bool = True) -> int:
    """Bytes to store the network's weights at ``bits`` bits per value (rounded up to whole bytes).

    Floating-point buffers (batch-norm running statistics) are counted with the parameters because
    inference needs them unless they are folded into the weights; integer buffers (batch norm's
    ``num_batches_tracked``) are training bookkeeping and are not.
    """
    if bits < 1:
        raise ValueError(f"bits must be at least 1, got {bits}")
    values = sum(p.numel() for p in model.parameters())
    if include_buffers:
        values += sum(b.numel() for b in model.buffers() if b.is_floating_point() or b.is_complex())
    return int(math.ceil(values * bits / 8))


def _tensor_bytes(tensors) -> int:
    storages = {}
    for t in tensors:
        s = t.untyped_storage()
        storages[(s.device.type, s.data_ptr())] = s.nbytes()
    return int(sum(storages.values()))


# ---- FLOPs with pooling --------------------------------------------------------------------------------
# torch.utils.flop_counter counts matrix products and convolutions only (bias additions, batch
# norm, activations and every pooling op count 0).  Pooling can matter for a network made mostly of
# pooling layers, so count_flops_with_pooling adds, as a documented convention of ours, one FLOP per
# element of each pooling window per output value: a max over k values is k-1 comparisons, an
# average k-1 additions and a division, so "k" is the round figure.  Windows count at their nominal
# size (positions in the padding included).  A mean reduction (how global average pooling is
# usually written, ChainNet's readout too) costs one FLOP per input element, as does amax.


def _output_shape(out_shape):
    """max_pool*_with_indices returns (values, indices): count the values once."""
    if isinstance(out_shape, (tuple, list)) and out_shape and isinstance(out_shape[0], (tuple, list)):
        return out_shape[0]
    return out_shape


def _window_pool_flop(x_shape, kernel_size, *args, out_shape=None, **kwargs) -> int:
    spatial = len(x_shape) - 2 if len(x_shape) > 2 else len(kernel_size)
    kernel = list(kernel_size) * spatial if len(kernel_size) == 1 else list(kernel_size)
    return int(math.prod(_output_shape(out_shape))) * int(math.prod(kernel))


def _adaptive_pool_flop(x_shape, output_size, *args, out_shape=None, **kwargs) -> int:
    """Adaptive windows differ in size: output i along an axis of length L reads
    [floor(i L / O), ceil((i + 1) L / O)); sum them exactly."""
    k = len(output_size)
    total = int(math.prod(x_shape[:-k]))
    for length, out in zip(x_shape[-k:], output_size):
        out = length if out is None else int(out)
        total *= sum(-(-(i + 1) * length // out) - (i * length) // out for i in range(out))
    return total


def _reduction_flop(x_shape, *args, out_shape=None, **kwargs) -> int:
    return int(math.prod(x_shape))


def _pooling_flop_mapping() -> Dict[Any, Any]:
    aten = torch.ops.aten
    mapping = {aten.mean: _reduction_flop, aten.amax: _reduction_flop}
    for name in ("max_pool1d", "max_pool2d_with_indices", "max_pool3d_with_indices",
                 "avg_pool1d", "avg_pool2d", "avg_pool3d"):
        if hasattr(aten, name):
            mapping[getattr(aten, name)] = _window_pool_flop
    for name in ("_adaptive_avg_pool2d", "_adaptive_avg_pool3d", "adaptive_max_pool2d", "adaptive_max_pool3d",
                 "adaptive_avg_pool1d", "adaptive_max_pool1d"):
        if hasattr(aten, name):
            mapping[getattr(aten, name)] = _adaptive_pool_flop
    return mapping


def count_flops_with_pooling(model: nn.Module, input_shape: Sequence[int]) -> int:
    """:func:`count_flops` plus pooling and mean reductions (see the convention above)."""
    return count_flops(model, input_shape, pooling=True)


# ---- latency -------------------------------------------------------------------------------------------
def _model_device(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def measure_latency(model: nn.Module, input_shape: Sequence[int], batch_size: int = 1, warmup: int = 10,
                    repeats: int = 50, threads: Optional[int] = None,
                    device: Optional[str | torch.device] = None, min_sample_ms: float = 2.0) -> Dict[str, Any]:
    """Wall time of one inference forward pass of a batch, in milliseconds.

    Reports the median (robust to the odd slow run when other processes share the CPU), the 90th
    percentile, the mean and minimum, and the coefficient of variation (std / mean) so callers can
    tell a noisy measurement.  ``threads`` sets torch's intra-op threads for the measurement and
    restores the previous value afterwards (process-wide: do not measure from two threads at once).
    On CUDA every run is synchronised.  The model is moved nowhere: pass ``device`` only to check.
    Each timed sample runs enough forward passes back to back to last ``min_sample_ms`` and
    reports their mean: a single pass of a small network takes about 0.1 ms, where timer and
    scheduler jitter alone made repeated medians vary by 10 to 16%.
    """
    if batch_size < 1 or repeats < 1 or warmup < 0:
        raise ValueError(f"need batch_size >= 1, repeats >= 1, warmup >= 0; got {batch_size}, {repeats}, {warmup}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    dev = torch.device(device) if device is not None else _model_device(model)
    was_training = model.training
    previous_threads = torch.get_num_threads()
    generator = torch.Generator().manual_seed(0)
    x = torch.randn((batch_size, *input_shape), generator=generator).to(dev)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    times = []
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        used_threads = torch.get_num_threads()
        model.eval()
        with torch.inference_mode():
            for _ in range(warmup):
                model(x)
            sync()
            start = time.perf_counter_ns()
            model(x)
            sync()
            one = max((time.perf_counter_ns() - start) / 1e6, 1e-3)
            calls = int(min(1000, max(1, math.ceil(min_sample_ms / one))))
            for _ in range(repeats):
                start = time.perf_counter_ns()
                for _ in range(calls):
                    model(x)
                sync()
                times.append((time.perf_counter_ns() - start) / 1e6 / calls)
    finally:
        torch.set_num_threads(previous_threads)
        model.train(was_training)
    ms = np.asarray(times)
    mean = float(ms.mean())
    return {
        "median_ms": float(np.median(ms)),
        "p90_ms": float(np.percentile(ms, 90)),
        "mean_ms": mean,
        "min_ms": float(ms.min()),
        "cv": float(ms.std(ddof=1) / mean) if len(ms) > 1 and mean > 0 else 0.0,
        "threads": int(used_threads),
        "device": str(dev),
        "batch_size": int(batch_size),
        "repeats": int(repeats),
        "warmup": int(warmup),
        "calls_per_sample": int(calls),
    }


# ---- peak memory ---------------------------------------------------------------------------------------
class _LiveTensorTracker(TorchDispatchMode):
    """Follows every tensor an operator returns, by storage, from creation until the last tensor
    using that storage is garbage: the bytes alive at once, sampled after every operator.

    Views share their base's storage and add nothing; storages of parameters and buffers are
    excluded (counted separately); scratch memory a kernel allocates and frees inside itself is
    invisible at this level and not counted.
    """

    def __init__(self, excluded: set):
        super().__init__()
        self.excluded = excluded
        self._ids = count()
        self.refs: Dict[int, Any] = {}  # holder id -> weak reference to the tensor
        self.holders: Dict[Any, set] = {}  # storage key -> holder ids of live tensors using it
        self.sizes: Dict[Any, int] = {}
        self.live = 0
        self.peak = 0

    def track(self, t: torch.Tensor) -> None:
        try:
            storage = t.untyped_storage()
        except (RuntimeError, NotImplementedError):  # tensors without storage (sparse, ...)
            return
        key = (storage.device.type, storage.data_ptr())
        if storage.nbytes() == 0 or key in self.excluded:
            return
        if key not in self.holders:
            self.holders[key] = set()
            self.sizes[key] = storage.nbytes()
            self.live += self.sizes[key]
        ident = next(self._ids)
        self.holders[key].add(ident)
        self.refs[ident] = weakref.ref(t, lambda _, key=key, ident=ident: self._release(key, ident))
        self.peak = max(self.peak, self.live)

    def _release(self, key, ident) -> None:
        self.refs.pop(ident, None)
        holders = self.holders.get(key)
        if holders is None:
            return
        holders.discard(ident)
        if not holders:
            del self.holders[key]
            self.live -= self.sizes.pop(key)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self.track(t)
        return out


def peak_memory_breakdown(model: nn.Module, input_shape: Sequence[int], batch_size: int = 1,
                          method: str = "auto") -> Dict[str, Any]:
    """Measured memory of one inference forward pass, in bytes, with its parts.

    ``method="tracker"`` (CPU's default) follows tensor lifetimes at the operator level, so the
    result is exact and repeatable (the input batch counts as an activation: it stays alive for the
    whole pass).  ``method="cuda"`` (the default on CUDA) reads the caching allocator's peak over the
    pass, which also includes kernel workspaces (cuDNN); activations are that peak minus what was
    allocated before the pass.
    """
    dev = _model_device(model)
    if method == "auto":
        method = "cuda" if dev.type == "cuda" else "tracker"
    if method not in ("tracker", "cuda"):
        raise ValueError(f"method must be auto, tracker or cuda, got {method!r}")
    if method == "cuda" and dev.type != "cuda":
        raise ValueError("method 'cuda' needs a model on a CUDA device")
    params_bytes = _tensor_bytes(model.parameters())
    buffers_bytes = _tensor_bytes(model.buffers())
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if method == "cuda":
                torch.cuda.synchronize(dev)
                torch.cuda.reset_peak_memory_stats(dev)
                before = torch.cuda.memory_allocated(dev)
                x = torch.zeros((batch_size, *input_shape), device=dev)
                model(x)
                torch.cuda.synchronize(dev)
                activations = torch.cuda.max_memory_allocated(dev) - before
                del x
            else:
                excluded = {(t.untyped_storage().device.type, t.untyped_storage().data_ptr())
                            for t in (*model.parameters(), *model.buffers())}
                tracker = _LiveTensorTracker(excluded)
                x = torch.zeros((batch_size, *input_shape), device=dev)
                with tracker:
                    tracker.track(x)
                    out = model(x)
                    del out
                activations = tracker.peak
                del x
    finally:
        model.train(was_training)
    return {
        "params_bytes": params_bytes,
        "buffers_bytes": buffers_bytes,
        "activations_bytes": int(activations),
        "total_bytes": int(params_bytes + buffers_bytes + activations),
        "method": method,
        "batch_size": int(batch_size),
    }


def measure_peak_memory(model: nn.Module, input_shape: Sequence[int], batch_size: int = 1) -> int:
    """Bytes of parameters + buffers + the largest set of simultaneously live activations during
    one inference pass, measured (see :func:`peak_memory_breakdown`)."""
    return int(peak_memory_breakdown(model, input_shape, batch_size)["total_bytes"])


def hardware_metrics(model: nn.Module, input_shape: Sequence[int], batch_size: int = 1, bits: int = 32,
                     latency: bool = True, memory: bool = True, pooling_flops: bool = False,
                     warmup: int = 10, repeats: int = 50, threads: Optional[int] = None) -> Dict[str, Any]:
    """The hardware metrics of one network under their registered names, ready to merge into a
    trial's metrics (what an estimator adds after building the child)."""
    out: Dict[str, Any] = {
        "params": count_params(model),
        "size_bytes": model_size_bytes(model, bits),
        "flops": count_flops(model, input_shape),
    }
    if pooling_flops:
        out["flops_with_pooling"] = count_flops_with_pooling(model, input_shape)
    if latency:
        lat = measure_latency(model, input_shape, batch_size, warmup, repeats, threads)
        out.update(latency_ms=lat["median_ms"], latency_p90_ms=lat["p90_ms"], latency_cv=lat["cv"],
                   latency_threads=lat["threads"], latency_device=lat["device"])
    if memory:
        out["peak_memory_bytes"] = measure_peak_memory(model, input_shape, batch_size)
    return out


# ---- predictions ---------------------------------------------------------------------------------------
def accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    return float((np.asarray(scores).argmax(axis=1) == np.asarray(labels)).mean())


def top_k_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    top = np.argsort(-np.asarray(scores), axis=1)[:, :k]
    return float((top == np.asarray(labels)[:, None]).any(axis=1).mean())


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Macro average precision: one-vs-rest AP per class present in ``labels``, averaged.

    AP of a class is the mean, over its positive examples, of the precision at that example's
    rank when examples are sorted by the class score (ties share the worst rank among them).
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    aps = []
    for c in np.unique(labels):
        s = scores[:, c]
        positive = labels == c
        order = np.argsort(-s, kind="stable")
        s_sorted, pos_sorted = s[order], positive[order]
        # group ties: precision is evaluated at the end of each block of equal scores
        ends = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), len(s_sorted) - 1]
        tp_cum = np.cumsum(pos_sorted)[ends]
        precision = tp_cum / (ends + 1)
        new_tp = np.diff(np.r_[0, tp_cum])
        aps.append(float((precision * new_tp).sum() / positive.sum()))
    return float(np.mean(aps))


def classification_report(scores: np.ndarray, labels: np.ndarray) -> Dict[str, float]:
    return {
        "accuracy": accuracy(scores, labels),
        "top3_accuracy": top_k_accuracy(scores, labels, min(3, np.asarray(scores).shape[1])),
        "average_precision": average_precision(scores, labels),
    }


def _predictions(scores: np.ndarray) -> np.ndarray:
    """Class scores (N, K) -> predicted labels; predicted labels (N,) pass through."""
    scores = np.asarray(scores)
    return scores.argmax(axis=1) if scores.ndim == 2 else scores.astype(np.int64)


def confusion_matrix(scores: np.ndarray, labels: np.ndarray, num_classes: Optional[int] = None) -> np.ndarray:
    """Counts, rows = true class, columns = predicted class (scikit-learn's layout).

    ``scores`` are class scores (N, K) or already predicted labels (N,).
    """
    predicted, labels = _predictions(scores), np.asarray(labels, dtype=np.int64)
    if num_classes is None:
        width = np.asarray(scores).shape[1] if np.asarray(scores).ndim == 2 else 0
        num_classes = int(max(width, labels.max(initial=-1) + 1, predicted.max(initial=-1) + 1))
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def per_class_report(scores: np.ndarray, labels: np.ndarray,
                     num_classes: Optional[int] = None) -> Dict[str, Any]:
    """Precision, recall, F1 and support per class, with macro and support-weighted means.

    A ratio with nothing to divide (no predictions of a class, no examples of it) is 0, as in
    scikit-learn's default; classes with no examples are left out of the macro mean only if they
    were also never predicted.
    """
    matrix = confusion_matrix(scores, labels, num_classes)
    tp = np.diag(matrix).astype(np.float64)
    predicted, support = matrix.sum(axis=0), matrix.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    seen = (support > 0) | (predicted > 0)
    weights = support / max(support.sum(), 1)
    per_class = {int(c): {"precision": float(precision[c]), "recall": float(recall[c]), "f1": float(f1[c]),
                          "support": int(support[c])} for c in range(len(tp))}
    return {
        "per_class": per_class,
        "macro": {k: float(v[seen].mean()) if seen.any() else 0.0
                  for k, v in (("precision", precision), ("recall", recall), ("f1", f1))},
        "weighted": {k: float((v * weights).sum()) for k, v in (("precision", precision), ("recall", recall), ("f1", f1))},
        "accuracy": float(tp.sum() / max(matrix.sum(), 1)),
        "confusion_matrix": matrix.tolist(),
    }

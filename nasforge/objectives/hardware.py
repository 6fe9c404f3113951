"""Measured hardware properties of a network: parameters, size, FLOPs, latency and peak memory.

FLOPs come from PyTorch's own counter (``torch.utils.flop_counter``), which counts a multiply-add
as two FLOPs and counts only matrix products and convolutions (no bias additions, normalisation,
activations or pooling; see :func:`count_flops_with_pooling`). The results carry the names the
metric registry (:mod:`.registry`) gives them.
"""

from __future__ import annotations

import math
import time
import weakref
from itertools import count
from typing import Any, Dict, List, Optional, Sequence, Tuple

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


def prepare_flop_counter() -> None:
    """Pay the one-off cost of the first :func:`count_flops` in a process: torch's flop counter
    imports its compiler stack then (1.5 s on an idle machine, several seconds on a busy one)."""
    count_flops(nn.Linear(2, 2), (2,))


def count_flops_with_pooling(model: nn.Module, input_shape: Sequence[int]) -> int:
    """:func:`count_flops` plus pooling and mean reductions (see the convention above)."""
    return count_flops(model, input_shape, pooling=True)


# ---- latency -------------------------------------------------------------------------------------------
def _model_device(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def _timed_samples(model: nn.Module, x: torch.Tensor, warmup: int, repeats: int, min_sample_ms: float,
                   sync) -> Tuple[List[float], int]:
    """Per-pass milliseconds of ``repeats`` samples, after ``warmup`` passes, and how many passes
    each sample runs back to back (enough to last ``min_sample_ms``, judged from one timed pass)."""
    for _ in range(warmup):
        model(x)
    sync()
    start = time.perf_counter_ns()
    model(x)
    sync()
    one = max((time.perf_counter_ns() - start) / 1e6, 1e-3)
    calls = int(min(1000, max(1, math.ceil(min_sample_ms / one))))
    times = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        for _ in range(calls):
            model(x)
        sync()
        times.append((time.perf_counter_ns() - start) / 1e6 / calls)
    return times, calls


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
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        used_threads = torch.get_num_threads()
        model.eval()
        with torch.inference_mode():
            times, calls = _timed_samples(model, x, warmup, repeats, min_sample_ms, sync)
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

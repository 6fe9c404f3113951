"""How the hardware metrics of a trained child are measured: the ``[training] measure`` settings
(moved out of ``train.py``, which trains; this measures)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Tuple

from torch import nn

from ..objectives.hardware import count_flops_with_pooling, measure_latency, measure_peak_memory, model_size_bytes

# Metrics a trained child reports only when asked (``measure``); params and FLOPs are always there.
LATENCY_METRICS = ("latency_ms", "latency_p90_ms", "latency_cv")
MEASURABLE = ("size_bytes", "flops_with_pooling", "peak_memory_bytes") + LATENCY_METRICS


@dataclass
class HardwareProbe:
    """How the hardware metrics of a trained child are measured (after training, in eval mode).

    Latency: the median of ``repeats`` timed forward passes of a batch of ``batch_size`` after
    ``warmup`` untimed ones, with torch's intra-op threads fixed to ``threads`` so that children
    are timed alike whatever else the process does; the thread count is reported with it.
    """

    measure: Tuple[str, ...] = ()
    batch_size: int = 1
    warmup: int = 10
    repeats: int = 30
    threads: int = 1
    bits: int = 32

    def check(self) -> None:
        unknown = [m for m in self.measure if m not in MEASURABLE]
        if unknown:
            raise ValueError(f"measure: child training cannot measure {unknown}; choose from {list(MEASURABLE)} "
                             "(params and flops are always reported)")
        for name in ("batch_size", "repeats", "threads", "bits"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"latency_{name} must be a positive integer, got {value!r}"
                                 if name != "bits" else f"size_bits must be a positive integer, got {value!r}")
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, int) or self.warmup < 0:
            raise ValueError(f"latency_warmup must be a non-negative integer, got {self.warmup!r}")

    def metrics(self, model: nn.Module, input_shape) -> Dict[str, Any]:
        """The requested metrics of ``model`` under their registered names."""
        out: Dict[str, Any] = {}
        wanted = set(self.measure)
        if "size_bytes" in wanted:
            out["size_bytes"] = model_size_bytes(model, self.bits)
        if "flops_with_pooling" in wanted:
            out["flops_with_pooling"] = count_flops_with_pooling(model, input_shape)
        if wanted & set(LATENCY_METRICS):
            lat = measure_latency(model, input_shape, self.batch_size, self.warmup, self.repeats, self.threads)
            out.update(latency_ms=lat["median_ms"], latency_p90_ms=lat["p90_ms"], latency_cv=lat["cv"],
                       latency_threads=lat["threads"], latency_batch_size=lat["batch_size"])
        if "peak_memory_bytes" in wanted:
            out["peak_memory_bytes"] = measure_peak_memory(model, input_shape, self.batch_size)
        return out

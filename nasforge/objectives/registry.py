"""The registry of named metrics: each metric's unit and which direction is better.

``METRICS`` names every metric nasforge reports, so constraints, rewards and Pareto fronts need no
extra settings. It imports no torch, so the command line can check names and directions cheaply.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional

from ..registry import did_you_mean


@dataclass(frozen=True)
class MetricInfo:
    """What a metric measures: its unit and which way is better (used by rewards and Pareto fronts)."""

    unit: str
    direction: str  # "maximize" or "minimize"
    description: str = ""
    non_finite: str = ""  # what an infinite or NaN value says about the network, for the failed trial's reason


DIRECTIONS = ("maximize", "minimize")
#: The short forms settings and flags accept (``val_acc:max``, ``--directions max,min``).
DIRECTION_ALIASES = {"max": "maximize", "maximize": "maximize", "min": "minimize", "minimize": "minimize"}

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
    # quantised children (nasforge/quant/metrics.py defines them; val_acc is then the quantised accuracy)
    "weight_bits": MetricInfo("bits", "minimize", "sum of parameters x their bits (conv/linear weights at their "
                              "layer's bits, the rest at 32)"),
    "quant_size_bytes": MetricInfo("bytes", "minimize", "weight_bits plus floating buffers at 32 bits, in bytes"),
    "bitops": MetricInfo("bit operations", "minimize", "per conv/linear layer: multiply-accumulates of one "
                         "example x weight bits x activation bits"),
    "val_acc_fp32": MetricInfo("fraction", "maximize", "validation accuracy before post-training quantisation"),
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


def register_metric(name: str, unit: str, direction: str, description: str = "",
                    non_finite: str = "") -> MetricInfo:
    """Add a metric of your own (e.g. one a custom estimator reports) so constraints and fronts know it.
    ``non_finite`` explains an infinite or NaN value, when the metric has a reason to give one."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction of metric {name!r} must be one of {DIRECTIONS}, got {direction!r}")
    METRICS[name] = MetricInfo(unit, direction, description, non_finite)
    return METRICS[name]


def unknown_metric(name: str, known: Optional[Iterable[str]] = None) -> str:
    """The message for a metric name that is not known: the closest name, then the known ones with
    each family of drift horizons written once (they are most of the list)."""
    names = sorted(METRICS if known is None else known)
    families: Dict[str, List[str]] = {}
    for n in names:
        m = re.fullmatch(r"(.+_)(\d+)s(_std)?", n)
        key = f"{m.group(1)}{{}}s{m.group(3) or ''}" if m else n
        families.setdefault(key, []).append(m.group(2) if m else n)
    listed = [key.format("{" + ",".join(sorted(parts, key=int)) + "}") if "{}" in key else key
              for key, parts in families.items()]
    return f"unknown metric {name!r}{did_you_mean(name, names)}; known metrics: {', '.join(listed)}"


def metric_info(name: str) -> MetricInfo:
    """The registered metric, or a ValueError that names the closest and lists the known ones."""
    try:
        return METRICS[name]
    except KeyError:
        raise ValueError(unknown_metric(name) + " (register_metric adds one)") from None


def metric_direction(name: str) -> str:
    return metric_info(name).direction


def metric_value(metrics: Dict[str, Any], name: str, role: str) -> float:
    """A trial's value of metric ``name`` (read as the ``role``'s metric) as a finite float;
    missing or non-finite values are errors, so the trial fails instead of ranking oddly."""
    if name not in metrics:
        raise KeyError(f"{role} metric {name!r} not among the measured metrics {sorted(metrics)}")
    value = float(metrics[name])
    if not math.isfinite(value):
        why = METRICS[name].non_finite if name in METRICS else ""
        raise ValueError(f"{role} metric {name!r} is {value}" + (f": {why}" if why else ""))
    return value

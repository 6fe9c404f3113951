"""Quantisation as a training setting: QAT (the child trains with fake quantisation) or PTQ (it
trains in full precision, is quantised afterwards and its activation ranges calibrated on
training data). The train estimator and retrain call these hooks around their training loop.

With either, the network's spec records the bit widths (``spec["quant"]``), so a saved, reloaded
or exported network is the quantised one; ``val_acc`` and ``test_acc`` are then the quantised
network's accuracy (PTQ also reports the full-precision ``val_acc_fp32``).
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import torch
from torch import nn

from .fake import ACTIVATION_BITS, WEIGHT_BITS, check_bits
from .layers import calibrate, quantize_modules

MODES = ("off", "qat", "ptq")
#: Training examples PTQ calibrates activation ranges on (a random subset when there are more).
CALIBRATION_SIZE = 2048
QUANT_METRICS = ("weight_bits", "quant_size_bytes", "bitops")


def check_settings(quantization: str, weight_bits: int, activation_bits: int) -> None:
    """ValueError naming the setting, before anything trains."""
    if quantization not in MODES:
        raise ValueError(f"quantization must be one of {', '.join(MODES)}, got {quantization!r}")
    check_bits(weight_bits, WEIGHT_BITS, "weight")
    check_bits(activation_bits, ACTIVATION_BITS, "activation")
    if quantization == "off" and (weight_bits, activation_bits) != (32, 32):
        raise ValueError(f"weight_bits={weight_bits}, activation_bits={activation_bits} need quantization=qat "
                         "(train quantised) or ptq (quantise after training); it is off")


def _record(recipe: Any) -> Dict[str, int]:
    return {"weight_bits": recipe.weight_bits, "activation_bits": recipe.activation_bits}


def quantize_network(model: nn.Module, record: Dict[str, Any]) -> nn.Module:
    """Quantise ``model`` in place and write ``record`` into its spec (if it has one)."""
    quantize_modules(model, record)
    device = next((p.device for p in model.parameters()), None)
    if device is not None:  # the new range buffers start on the CPU
        model.to(device)
    spec = getattr(model, "spec", None)
    if isinstance(spec, dict):
        spec["quant"] = dict(record)
    return model


def before_training(model: nn.Module, recipe: Any) -> None:
    """QAT: the child is quantised before its first step."""
    if getattr(recipe, "quantization", "off") == "qat":
        _refuse_twice(model)
        quantize_network(model, _record(recipe))


def after_training(model: nn.Module, recipe: Any, x_train: torch.Tensor, seed: int) -> bool:
    """PTQ: quantise the trained child and calibrate its ranges on training data; True if done."""
    if getattr(recipe, "quantization", "off") != "ptq":
        return False
    _refuse_twice(model)
    quantize_network(model, _record(recipe))
    gen = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(x_train), generator=gen)[:CALIBRATION_SIZE].to(x_train.device)
    calibrate(model, x_train[pick])
    return True


def _refuse_twice(model: nn.Module) -> None:
    spec = getattr(model, "spec", None)
    if isinstance(spec, dict) and spec.get("quant"):
        raise ValueError("this network is quantised by its space already (space.mixed_precision); "
                         "leave training.quantization off")


def is_quantised(model: nn.Module) -> bool:
    spec: Optional[dict] = getattr(model, "spec", None)
    return isinstance(spec, dict) and bool(spec.get("quant"))


def produces(recipe: Any, space: Any = None) -> set:
    """The metrics quantised children add: the bit metrics; with PTQ also ``val_acc_fp32``."""
    mode = getattr(recipe, "quantization", "off")
    quantised = mode != "off" or bool(getattr(space, "mixed_precision", False))
    return (set(QUANT_METRICS) if quantised else set()) | ({"val_acc_fp32"} if mode == "ptq" else set())

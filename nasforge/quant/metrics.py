"""What a quantised network costs: weight bits, its size at those bits, and BitOps.

Definitions (the registry's ``weight_bits``, ``quant_size_bytes`` and ``bitops``):

* weight bits: every conv / linear weight at its layer's weight bits, every other parameter
  (biases, batch-norm scale and shift) at 32: they stay in full precision or int32 when deployed.
* quant size: weight bits plus the floating buffers (batch-norm statistics, activation ranges) at
  32 bits, in whole bytes; for a network with nothing quantised it equals ``size_bytes`` at 32 bits.
* BitOps: for each conv / linear layer, its multiply-accumulates for one example times its weight
  bits times its activation bits (Baskin et al.'s and HAQ's measure); unquantised layers count
  32 x 32. Multiply-accumulates are counted here, per layer, by forward hooks, because torch's
  FLOP counter sums a whole forward pass and cannot say which layer's bits apply.
"""

from __future__ import annotations

import math
from typing import Dict, Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize

from .layers import layer_bits, quantisable_layers


def weight_bits(model: nn.Module) -> int:
    """Sum over parameters of their bits (module order; a parametrised weight counted once)."""
    total = 0
    seen = set()
    for layer in quantisable_layers(model):
        weight = layer.parametrizations["weight"].original if parametrize.is_parametrized(layer, "weight") \
            else layer.weight
        total += weight.numel() * layer_bits(layer)["weight_bits"]
        seen.add(id(weight))
    return int(total + 32 * sum(p.numel() for p in model.parameters() if id(p) not in seen))


def quant_size_bytes(model: nn.Module) -> int:
    buffers = sum(b.numel() for b in model.buffers() if b.is_floating_point())
    return int(math.ceil((weight_bits(model) + 32 * buffers) / 8))


def layer_macs(model: nn.Module, input_shape: Sequence[int]) -> Dict[nn.Module, int]:
    """Multiply-accumulates of each conv / linear layer for one example of ``input_shape``."""
    macs: Dict[nn.Module, int] = {}

    def count(layer, _inputs, output):
        per_output = layer.weight.shape[1] * math.prod(layer.weight.shape[2:]) if not isinstance(layer, nn.Linear) \
            else layer.in_features
        macs[layer] = macs.get(layer, 0) + int(output[0].numel()) * int(per_output)

    handles = [layer.register_forward_hook(count) for layer in quantisable_layers(model)]
    was_training = model.training
    model.eval()
    try:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        with torch.no_grad():
            model(torch.zeros((1, *input_shape), device=device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return macs


def bitops(model: nn.Module, input_shape: Sequence[int]) -> int:
    total = 0
    for layer, macs in layer_macs(model, input_shape).items():
        bits = layer_bits(layer)
        total += macs * bits["weight_bits"] * bits["activation_bits"]
    return int(total)


def quant_metrics(model: nn.Module, input_shape: Sequence[int]) -> Dict[str, int]:
    """The three under their registered names."""
    return {"weight_bits": weight_bits(model), "quant_size_bytes": quant_size_bytes(model),
            "bitops": bitops(model, input_shape)}

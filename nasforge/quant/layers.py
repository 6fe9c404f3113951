"""Fake-quantised conv and linear layers of a built network, with a bit width per layer.

A network's convolutions and linear layers, in module order, are its *quantisable layers*. A
quantisation record (``{"weight_bits": [...], "activation_bits": [...]}``, one entry per
quantisable layer, as a network spec carries it) makes each layer see its weight rounded to its
bits (torch's parametrisations: the state dict keeps the full-precision latent weight, which QAT
trains) and its input rounded to its activation bits (an :class:`ActQuant` run before the layer).

Activation ranges: while training, an exponential average of each batch's largest magnitude (as
QAT observers do); :func:`calibrate` instead sets them to the largest magnitude seen over data
(post-training quantisation); in eval mode the stored range is used, so a prediction does not
depend on the rest of its batch. Only torch and the sibling ``fake.py`` are imported, so an export
carries both files beside the network's code.
"""

from __future__ import annotations

import contextlib
from typing import Dict, Iterator, List, Sequence, Union

import torch
from torch import nn
from torch.nn.utils import parametrize

try:
    from .fake import ACTIVATION_BITS, check_bits, quantize_activation, quantize_weight
except ImportError:  # loaded as a file beside an export's model.py: fake.py is beside it too
    import os
    import runpy

    _fake = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake.py"))
    ACTIVATION_BITS, check_bits = _fake["ACTIVATION_BITS"], _fake["check_bits"]
    quantize_activation, quantize_weight = _fake["quantize_activation"], _fake["quantize_weight"]

QUANTISABLE = (nn.Conv1d, nn.Conv2d, nn.Linear)
#: Weight of the newest batch in the running activation range during training.
RANGE_MOMENTUM = 0.1


class QuantWeight(nn.Module):
    """Parametrisation: the weight as the forward pass sees it at ``bits`` (straight-through)."""

    def __init__(self, bits: int):
        super().__init__()
        self.bits = check_bits(bits)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return quantize_weight(w, self.bits)


class ActQuant(nn.Module):
    """A layer's input at ``bits``, with the range in the buffer ``max_abs`` (0: not yet seen)."""

    def __init__(self, bits: int):
        super().__init__()
        self.bits = check_bits(bits, ACTIVATION_BITS, "activation")
        self.calibrating = False
        self.register_buffer("max_abs", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bits == 32:
            return x
        seen = x.detach().abs().amax()
        if self.calibrating:
            self.max_abs.copy_(torch.maximum(self.max_abs, seen))
        elif self.training:
            first = bool(self.max_abs == 0)
            self.max_abs.copy_(seen if first else (1 - RANGE_MOMENTUM) * self.max_abs + RANGE_MOMENTUM * seen)
        return quantize_activation(x, self.bits, self.max_abs)


def _quantize_input(module: nn.Module, inputs):
    quantiser = getattr(module, "act_quant", None)  # gone after strip(): the hook then passes through
    return None if quantiser is None else (quantiser(inputs[0]),) + tuple(inputs[1:])


def quantisable_layers(model: nn.Module) -> List[nn.Module]:
    """The convolutions and linear layers of ``model``, in module order."""
    return [m for m in model.modules() if isinstance(m, QUANTISABLE)]


def _per_layer(value: Union[int, Sequence[int]], count: int, what: str) -> List[int]:
    values = [value] * count if isinstance(value, int) else list(value)
    if len(values) != count:
        raise ValueError(f"quantisation: {len(values)} {what} bit widths for {count} conv/linear layers")
    return values


def quantize_modules(model: nn.Module, record: Dict) -> nn.Module:
    """Fake-quantise ``model``'s layers in place as ``record`` says (an int applies to every
    layer); a layer at 32 and 32 bits is left alone. Returns ``model``."""
    layers = quantisable_layers(model)
    weights = _per_layer(record.get("weight_bits", 32), len(layers), "weight")
    activations = _per_layer(record.get("activation_bits", 32), len(layers), "activation")
    for layer, w_bits, a_bits in zip(layers, weights, activations):
        check_bits(w_bits)
        check_bits(a_bits, ACTIVATION_BITS, "activation")
        if hasattr(layer, "act_quant") or parametrize.is_parametrized(layer):
            raise ValueError("quantisation: the network is quantised already")
        if w_bits != 32:
            parametrize.register_parametrization(layer, "weight", QuantWeight(w_bits))
        if a_bits != 32:
            layer.act_quant = ActQuant(a_bits)
            layer.register_forward_pre_hook(_quantize_input)
    return model


def layer_bits(layer: nn.Module) -> Dict[str, int]:
    """A layer's weight and activation bit widths (32 where it is not quantised)."""
    weight = 32
    if parametrize.is_parametrized(layer, "weight"):
        weight = next(p.bits for p in layer.parametrizations["weight"] if isinstance(p, QuantWeight))
    act = layer.act_quant.bits if isinstance(getattr(layer, "act_quant", None), ActQuant) else 32
    return {"weight_bits": weight, "activation_bits": act}


@contextlib.contextmanager
def _calibrating(model: nn.Module) -> Iterator[None]:
    quantisers = [m for m in model.modules() if isinstance(m, ActQuant)]
    was_training = model.training
    model.eval()
    for q in quantisers:
        q.calibrating = True
        q.max_abs.zero_()
    try:
        yield
    finally:
        for q in quantisers:
            q.calibrating = False
        model.train(was_training)


@torch.no_grad()
def calibrate(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> None:
    """Set every activation range to the largest magnitude its layer sees on ``x`` (eval mode)."""
    with _calibrating(model):
        for i in range(0, len(x), batch_size):
            model(x[i: i + batch_size])


def strip(model: nn.Module) -> nn.Module:
    """``model`` in place with its quantised weights as its weights and no rounding left: the float
    network a deployment tool quantises again (``nasforge export --int8``). The weight's
    parametrisation stays, at 32 bits (the identity): torch's ``remove_parametrizations`` edits the
    class that a deep copy shares with its original, which would break the original."""
    for layer in quantisable_layers(model):
        if parametrize.is_parametrized(layer, "weight"):
            with torch.no_grad():
                layer.parametrizations["weight"].original.copy_(layer.weight)
            for p in layer.parametrizations["weight"]:
                p.bits = 32
        if hasattr(layer, "act_quant"):
            del layer.act_quant
    return model

"""The network of the ``mobile-blocks`` space (MobileNetV2's inverted residual blocks), built from a spec.

This file imports nothing but torch on purpose: ``nasforge export`` copies it next to the
weights (as ``model.py``, with ``chain_net.py`` beside it for the raw-input wrapper), so that an
exported model loads and predicts without nasforge installed.

Spec (plain JSON values; every width already multiplied out by the space)::

    {"kind": "mobile-blocks", "in_channels": 3, "input_size": [32, 32], "num_classes": 10,
     "stem": {"channels": 16, "stride": 1},
     "blocks": [{"channels": 16, "stride": 1, "expand": 1, "kernel": 3, "se": false}, ...],
     "head_channels": 128}

After Sandler et al. (MobileNetV2, CVPR 2018) and Tan et al. (MnasNet, CVPR 2019). The stem is a
3 x 3 convolution, batch norm, ReLU6. A block (inverted residual, linear bottleneck) is a 1 x 1
expansion to ``expand`` times its input channels with batch norm and ReLU6 (left out when
``expand`` is 1, as MobileNetV2 does), a ``kernel`` x ``kernel`` depthwise convolution with the
block's stride, batch norm and ReLU6, optionally squeeze-and-excitation, then a 1 x 1 projection
to ``channels`` with batch norm and no activation; the input is added when the stride is 1 and
the channels are equal. Squeeze-and-excitation (MnasNet's, ratio 0.25 of the block's input
channels): global average pooling, 1 x 1 convolution down, ReLU, 1 x 1 convolution up, sigmoid,
scaling the depthwise output per channel. The head is a 1 x 1 convolution to ``head_channels``,
batch norm, ReLU6, global average pooling and a linear classifier (MobileNetV2's dropout before it
is left out: children train for a few epochs). Padding is ``kernel // 2``, so any image size
works; a stride of 2 rounds an odd size up.
"""

from __future__ import annotations

import json
from typing import Dict

import torch
from torch import nn

KIND = "mobile-blocks"
EXPANSIONS = (1, 3, 6)
KERNELS = (3, 5, 7)


def _positive(value, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"spec {what} must be a positive integer, got {value!r}")


def check_spec(spec: Dict) -> None:
    """Raise ValueError naming the first thing wrong with a spec."""
    if spec.get("kind") != KIND:
        raise ValueError(f"spec kind must be {KIND!r}, got {spec.get('kind')!r}")
    if len(spec.get("input_size", ())) != 2:
        raise ValueError(f"the mobile-blocks network takes 2-D images; input_size {spec.get('input_size')} "
                         "is not (height, width)")
    for key in ("in_channels", "num_classes", "head_channels"):
        _positive(spec.get(key), key)
    _positive(spec["stem"].get("channels"), "stem channels")
    _positive(spec["stem"].get("stride"), "stem stride")
    if not spec.get("blocks"):
        raise ValueError("spec blocks must list at least one block")
    for i, block in enumerate(spec["blocks"]):
        _positive(block.get("channels"), f"block {i} channels")
        if block.get("stride") not in (1, 2):
            raise ValueError(f"spec block {i}: stride must be 1 or 2, got {block.get('stride')!r}")
        if block.get("expand") not in EXPANSIONS or block.get("kernel") not in KERNELS:
            raise ValueError(f"spec block {i}: expand must be in {EXPANSIONS} and kernel in {KERNELS}, "
                             f"got {block.get('expand')!r} and {block.get('kernel')!r}")
        if not isinstance(block.get("se"), bool):
            raise ValueError(f"spec block {i}: se must be true or false, got {block.get('se')!r}")


def conv_bn(c_in: int, c_out: int, kernel: int = 1, stride: int = 1, groups: int = 1,
            relu6: bool = True) -> nn.Sequential:
    """Convolution (no bias), batch norm, and ReLU6 unless it is a linear projection."""
    layers = [nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out)]
    return nn.Sequential(*layers, nn.ReLU6()) if relu6 else nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    """Per-channel gates from the globally pooled features: down, ReLU, up, sigmoid."""

    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, reduced, 1), nn.ReLU(),
                                  nn.Conv2d(reduced, channels, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class InvertedResidual(nn.Module):
    """Expand (1x1), depthwise (k x k, the stride), optional SE, linear project (1x1); residual when shapes agree."""

    def __init__(self, c_in: int, block: Dict):
        super().__init__()
        c_out, stride, kernel = int(block["channels"]), int(block["stride"]), int(block["kernel"])
        hidden = c_in * int(block["expand"])
        layers = [] if hidden == c_in else [conv_bn(c_in, hidden)]
        layers.append(conv_bn(hidden, hidden, kernel, stride, groups=hidden))
        if block["se"]:
            layers.append(SqueezeExcite(hidden, max(1, c_in // 4)))
        layers.append(conv_bn(hidden, c_out, relu6=False))
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class MobileNet(nn.Module):
    """The network a ``mobile-blocks`` architecture describes (the spec in the module docstring)."""

    def __init__(self, spec: Dict):
        super().__init__()
        check_spec(spec)
        self.spec = json.loads(json.dumps(spec))
        c = int(spec["stem"]["channels"])
        self.stem = conv_bn(int(spec["in_channels"]), c, 3, int(spec["stem"]["stride"]))
        blocks = []
        for block in spec["blocks"]:
            blocks.append(InvertedResidual(c, block))
            c = int(block["channels"])
        self.blocks = nn.Sequential(*blocks)
        self.head = conv_bn(c, int(spec["head_channels"]))
        self.classifier = nn.Linear(int(spec["head_channels"]), int(spec["num_classes"]))
        if self.spec.get("quant"):  # trained or calibrated quantised: the same fake-quantised layers
            _chain_net().quant_layers().quantize_modules(self, self.spec["quant"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.head(self.blocks(self.stem(x)))
        return self.classifier(feat.flatten(2).mean(dim=2))


def _chain_net():
    """chain_net (RawInput, quantised layers): the package's module inside nasforge, the file beside
    this one in an export."""
    try:
        from . import chain_net
        return chain_net
    except ImportError:  # loaded as a file (an export's model.py): no package around it
        import importlib.util
        import os

        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "chain_net.py")
        module_spec = importlib.util.spec_from_file_location(f"{__name__}_chain_net", path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        return module


def load(directory: str, map_location: str = "cpu", raw_input: bool = True) -> nn.Module:
    """Load an exported model: ``spec.json`` and ``weights.pt`` in ``directory``; with
    ``raw_input`` and a ``preprocessing.json`` there, it takes the training data's raw arrays."""
    return _chain_net().load_network(MobileNet, directory, map_location, raw_input)

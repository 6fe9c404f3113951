"""The chain network of the ``chain-cnn`` space, built from a plain-dict spec.

This file imports nothing but torch on purpose: ``nasforge export`` copies it next to the
weights, so that an exported model loads and predicts without nasforge installed.

Spec (all plain JSON values)::

    {"dims": 1, "in_channels": 1, "input_size": [40], "num_classes": 10,
     "layers": [{"op": "conv", "kernel": [5], "filters": 36, "stride": 1, "inputs": []}, ...],
     "head": {"depth": 1, "width": 128}, "readout": "avg"}

Rules (after Zoph & Le, 2017): a layer with no inputs reads the network input; several inputs of
different sizes are zero-padded to the largest and concatenated along channels; every layer whose
output no later layer reads feeds the readout, together with the last layer.
"""

from __future__ import annotations

import json
from typing import Dict, List

import torch
import torch.nn.functional as F
from torch import nn

OPS = ("conv", "maxpool", "avgpool", "identity")
READOUTS = ("avg", "flatten")


def output_size(size: int, kernel: int, stride: int) -> int:
    """Length after a window of ``kernel`` with padding ``kernel // 2`` and ``stride``."""
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


def check_spec(spec: Dict) -> None:
    """Raise ValueError naming the first thing wrong with a spec."""
    dims = spec.get("dims")
    if dims not in (1, 2):
        raise ValueError(f"dims must be 1 or 2, got {dims!r}")
    if len(spec["input_size"]) != dims:
        raise ValueError(f"input_size {spec['input_size']} does not have {dims} entries")
    if spec.get("readout", "avg") not in READOUTS:
        raise ValueError(f"readout must be one of {READOUTS}, got {spec.get('readout')!r}")
    for i, layer in enumerate(spec["layers"]):
        if layer["op"] not in OPS:
            raise ValueError(f"layer {i}: op must be one of {OPS}, got {layer['op']!r}")
        if len(layer["kernel"]) != dims:
            raise ValueError(f"layer {i}: kernel {layer['kernel']} does not have {dims} entries")
        for j in layer["inputs"]:
            if not 0 <= j < i:
                raise ValueError(f"layer {i}: input {j} is not an earlier layer")


def _pad_to(x: torch.Tensor, size: List[int]) -> torch.Tensor:
    """Zero-pad the trailing spatial dimensions of ``x`` at their end up to ``size``."""
    pads: List[int] = []
    for have, want in zip(reversed(list(x.shape[2:])), reversed(size)):
        pads += [0, want - have]
    if any(p > 0 for p in pads):
        x = F.pad(x, pads)
    return x


def _gather(tensors: List[torch.Tensor], dims: int) -> torch.Tensor:
    if len(tensors) == 1:
        return tensors[0]
    size = [max(int(t.shape[2 + d]) for t in tensors) for d in range(dims)]
    return torch.cat([_pad_to(t, size) for t in tensors], dim=1)


class ChainLayer(nn.Module):
    def __init__(self, op: str, dims: int, in_channels: int, kernel: List[int], filters: int, stride: int):
        super().__init__()
        self.op = op
        kernel_t = tuple(int(k) for k in kernel)
        padding = tuple(k // 2 for k in kernel_t)
        if op == "conv":
            conv = nn.Conv1d if dims == 1 else nn.Conv2d
            bn = nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
            self.body = nn.Sequential(
                conv(in_channels, filters, kernel_t, stride=stride, padding=padding, bias=False),
                bn(filters),
                nn.ReLU(),
            )
            self.out_channels = filters
        elif op in ("maxpool", "avgpool"):
            if op == "maxpool":
                pool = nn.MaxPool1d if dims == 1 else nn.MaxPool2d
                self.body = pool(kernel_t, stride=stride, padding=padding)
            else:
                pool = nn.AvgPool1d if dims == 1 else nn.AvgPool2d
                self.body = pool(kernel_t, stride=stride, padding=padding, count_include_pad=False)
            self.out_channels = in_channels
        else:
            self.body = nn.Identity()
            self.out_channels = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class ChainNet(nn.Module):
    """The network a ``chain-cnn`` architecture describes."""

    def __init__(self, spec: Dict):
        super().__init__()
        check_spec(spec)
        self.spec = json.loads(json.dumps(spec))
        dims = self.dims = int(spec["dims"])
        self.inputs: List[List[int]] = [list(layer["inputs"]) for layer in spec["layers"]]
        channels: List[int] = []
        sizes: List[List[int]] = []
        in_size = [int(s) for s in spec["input_size"]]
        layers = []
        for i, layer in enumerate(spec["layers"]):
            sources = self.inputs[i]
            if sources:
                c_in = sum(channels[j] for j in sources)
                s_in = [max(sizes[j][d] for j in sources) for d in range(dims)]
            else:
                c_in, s_in = int(spec["in_channels"]), in_size
            module = ChainLayer(layer["op"], dims, c_in, layer["kernel"], int(layer["filters"]), int(layer["stride"]))
            layers.append(module)
            channels.append(module.out_channels)
            if layer["op"] == "identity":
                sizes.append(list(s_in))
            else:
                sizes.append([output_size(s_in[d], int(layer["kernel"][d]), int(layer["stride"])) for d in range(dims)])
        self.layers = nn.ModuleList(layers)
        n = len(layers)
        used = {j for sources in self.inputs for j in sources}
        self.final = [i for i in range(n) if i not in used or i == n - 1]
        if n == 0:
            self.final = []
            feat_channels, feat_size = int(spec["in_channels"]), in_size
        else:
            feat_channels = sum(channels[i] for i in self.final)
            feat_size = [max(sizes[i][d] for i in self.final) for d in range(dims)]
        self.feature_size = feat_size
        self.readout = spec.get("readout", "avg")
        features = feat_channels
        if self.readout == "flatten":
            for s in feat_size:
                features *= s
        head: List[nn.Module] = []
        width = features
        for _ in range(int(spec["head"]["depth"])):
            head += [nn.Linear(width, int(spec["head"]["width"])), nn.ReLU()]
            width = int(spec["head"]["width"])
        head.append(nn.Linear(width, int(spec["num_classes"])))
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs: List[torch.Tensor] = []
        for layer, sources in zip(self.layers, self.inputs):
            inp = x if not sources else _gather([outputs[j] for j in sources], self.dims)
            outputs.append(layer(inp))
        if self.final:
            feat = _gather([outputs[i] for i in self.final], self.dims)
            feat = _pad_to(feat, self.feature_size)
        else:
            feat = x
        if self.readout == "flatten":
            feat = feat.flatten(1)
        else:
            feat = feat.flatten(2).mean(dim=2)
        return self.head(feat)


def load(directory: str, map_location: str = "cpu") -> ChainNet:
    """Load an exported model: ``spec.json`` and ``weights.pt`` in ``directory``."""
    import os

    with open(os.path.join(directory, "spec.json")) as f:
        spec = json.load(f)
    model = ChainNet(spec)
    state = torch.load(os.path.join(directory, "weights.pt"), map_location=map_location, weights_only=True)
    model.load_state_dict(state)
    model.eval()
    return model

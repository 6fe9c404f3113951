"""The chain network of the ``chain-cnn`` space, built from a plain-dict spec.

This file imports nothing but torch on purpose: ``nasforge export`` copies it next to the
weights, so that an exported model loads and predicts without nasforge installed. A quantised
spec (``"quant"``: bits per conv / linear layer) also loads ``nasforge/quant/layers.py`` and
``fake.py`` (torch only), which an export copies beside it.

Spec (all plain JSON values)::

    {"dims": 1, "in_channels": 1, "input_size": [40], "num_classes": 10,
     "layers": [{"op": "conv", "kernel": [5], "filters": 36, "stride": 1, "inputs": []}, ...],
     "head": {"depth": 1, "width": 128}, "readout": "avg"}

A layer's ``stride`` is one number for every spatial axis, or a list with one per axis (the
paper's separate stride height and width).

Rules (after Zoph & Le, 2017): a layer with no inputs reads the network input; several inputs of
different sizes are zero-padded to the largest and concatenated along channels; every layer whose
output no later layer reads feeds the readout, together with the last layer.

An export also holds the training data's preprocessing (``preprocessing.json``); :func:`load`
wraps the network in :class:`RawInput`, which replays it, so the model takes the raw arrays.
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


def strides(layer: Dict, dims: int) -> List[int]:
    """A layer's stride per spatial axis (the spec gives one number for all, or one per axis)."""
    stride = layer["stride"]
    return [int(s) for s in stride] if isinstance(stride, (list, tuple)) else [int(stride)] * dims


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
        if isinstance(layer["stride"], (list, tuple)) and len(layer["stride"]) != dims:
            raise ValueError(f"layer {i}: stride {layer['stride']} does not have {dims} entries")
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


class PadExcludingAvgPool2d(nn.AvgPool2d):
    """2-D average pooling whose border windows average only the pixels inside the image
    (``count_include_pad=False``), pooled in the standard memory layout on CUDA. There torch's
    channels-last kernel for it returned wrong gradients (torch 2.11 on an H200: they differed from
    the standard layout's by more than their own size; docs/benchmarks-images.md). On the CPU
    nothing is copied."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__(kernel_size, stride=stride, padding=padding, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_cuda:
            x = x.contiguous()
        return super().forward(x)


class ChainLayer(nn.Module):
    def __init__(self, op: str, dims: int, in_channels: int, kernel: List[int], filters: int, stride):
        super().__init__()
        self.op = op
        stride = tuple(stride) if isinstance(stride, (list, tuple)) else stride
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
            elif dims == 1:
                self.body = nn.AvgPool1d(kernel_t, stride=stride, padding=padding, count_include_pad=False)
            else:
                self.body = PadExcludingAvgPool2d(kernel_t, stride=stride, padding=padding)
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
            step = strides(layer, dims)
            module = ChainLayer(layer["op"], dims, c_in, layer["kernel"], int(layer["filters"]),
                                step if isinstance(layer["stride"], (list, tuple)) else step[0])
            layers.append(module)
            channels.append(module.out_channels)
            if layer["op"] == "identity":
                sizes.append(list(s_in))
            else:
                sizes.append([output_size(s_in[d], int(layer["kernel"][d]), step[d]) for d in range(dims)])
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
        if self.spec.get("quant"):  # bit widths per conv / linear layer (mixed precision, QAT, PTQ)
            quant_layers().quantize_modules(self, self.spec["quant"])

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


def quant_layers():
    """nasforge's quantised layers (torch only): the package's module, or in an export the copy
    ``quant_layers.py`` beside this file (with ``fake.py``); only a quantised spec needs it."""
    try:
        from ..quant import layers
    except ImportError:  # loaded as a file (an export's model.py): no package around it
        import os
        import runpy
        from types import SimpleNamespace

        return SimpleNamespace(**runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                             "quant_layers.py")))
    return layers


def _per_channel(value, ndim: int) -> torch.Tensor:
    """A float64 constant: a scalar, or a per-channel list shaped to broadcast over (N, C, ...)."""
    t = torch.tensor(value, dtype=torch.float64)
    return t.reshape(-1, *([1] * (ndim - 2))) if t.dim() else t


def check_preprocessing(prep: Dict) -> None:
    """Raise ValueError naming the first thing wrong with a preprocessing record."""
    for key in ("raw_shape", "input_shape"):
        if not isinstance(prep.get(key), list) or not all(isinstance(s, int) and s > 0 for s in prep[key]):
            raise ValueError(f"preprocessing {key} must be a list of positive sizes, got {prep.get(key)!r}")
    raw, net = 1, 1
    for s in prep["raw_shape"]:
        raw *= s
    for s in prep["input_shape"]:
        net *= s
    if raw != net:
        raise ValueError(f"preprocessing cannot reshape raw samples {prep['raw_shape']} to {prep['input_shape']}")
    if prep.get("divide") is not None and not prep["divide"] != 0:
        raise ValueError("preprocessing divide must be a non-zero number")
    stats = prep.get("standardise")
    if stats:
        channels = prep["input_shape"][0]
        for key in ("mean", "std"):
            value = stats.get(key)
            if isinstance(value, list) and len(value) != channels:
                raise ValueError(f"preprocessing standardise {key} has {len(value)} values for {channels} channels")
            if not isinstance(value, (int, float, list)):
                raise ValueError(f"preprocessing standardise {key} must be a number or a list, got {value!r}")


class RawInput(nn.Module):
    """The network behind the preprocessing of its training data, so it takes the data's raw arrays.

    ``prep`` is the record nasforge's loader made (``preprocessing.json`` of an export): each raw
    sample is reshaped to the network's (C, L) or (C, H, W), divided by ``divide``, standardised
    with the training ``mean`` / ``std``; in float64 like the loader, then cast to float32. Any
    numeric input dtype is taken; numpy arrays too.
    """

    def __init__(self, net: nn.Module, prep: Dict):
        super().__init__()
        check_preprocessing(prep)
        self.net = net
        self.prep = json.loads(json.dumps(prep))
        self.raw_shape = [int(s) for s in prep["raw_shape"]]
        self.input_shape = [int(s) for s in prep["input_shape"]]
        ndim = len(self.input_shape) + 1
        self.divide = None if prep.get("divide") is None else float(prep["divide"])
        stats = prep.get("standardise") or None
        self.standardise = stats is not None
        if stats is not None:  # constants in the graph, not weights: the record is their source
            self.register_buffer("mean", _per_channel(stats["mean"], ndim), persistent=False)
            self.register_buffer("std", _per_channel(stats["std"], ndim), persistent=False)

    def preprocess(self, x) -> torch.Tensor:
        """The network's float32 input for raw ``x`` of shape (batch, *raw_shape)."""
        if not isinstance(x, torch.Tensor):
            x = torch.as_tensor(x)
        if x.dim() != len(self.raw_shape) + 1 or list(x.shape[1:]) != self.raw_shape:
            raise ValueError(f"input has shape {tuple(x.shape)}, expected (batch, {', '.join(map(str, self.raw_shape))}): "
                             "the raw arrays of the training data")
        x = x.to(torch.float64).reshape(x.shape[0], *self.input_shape)
        if self.divide is not None:
            x = x / self.divide
        if self.standardise:
            x = (x - self.mean) / self.std
        return x.to(torch.float32)

    def forward(self, x) -> torch.Tensor:
        return self.net(self.preprocess(x))


def load_network(network_class, directory: str, map_location: str = "cpu", raw_input: bool = True) -> nn.Module:
    """``network_class`` built from ``spec.json`` in ``directory``, with ``weights.pt``, in eval mode: what every
    network module's ``load`` does (nasforge/spaces/networks.py), so a plugin's module needs only its class."""
    import os

    def read(name: str):
        path = os.path.join(directory, name)
        if not os.path.exists(path):
            return None
        with open(path) as f:
            return json.load(f)

    model = network_class(read("spec.json"))
    state = torch.load(os.path.join(directory, "weights.pt"), map_location=map_location, weights_only=True)
    model.load_state_dict(state)
    prep = read("preprocessing.json") if raw_input else None  # ``null`` there: exported without one
    return (model if prep is None else RawInput(model, prep)).eval()


def load(directory: str, map_location: str = "cpu", raw_input: bool = True) -> nn.Module:
    """Load an exported model: ``spec.json`` and ``weights.pt`` in ``directory``.

    With ``raw_input`` (the default) and a ``preprocessing.json`` there, the model takes the raw
    arrays of the training data (:class:`RawInput`); otherwise the bare network, which takes
    already preprocessed float32 inputs of shape (batch, in_channels, *input_size)."""
    return load_network(ChainNet, directory, map_location, raw_input)

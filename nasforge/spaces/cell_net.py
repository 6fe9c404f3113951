"""The network of the ``nb201-cell`` space (NAS-Bench-201's macro skeleton), built from a plain-dict spec.

This file imports nothing but torch on purpose: ``nasforge export`` copies it next to the
weights (as ``model.py``, with ``chain_net.py`` beside it for the raw-input wrapper), so that an
exported model loads and predicts without nasforge installed.

Spec (all plain JSON values)::

    {"kind": "nb201-cell", "in_channels": 3, "input_size": [32, 32], "num_classes": 10,
     "cell": "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|skip_connect~0|none~1|avg_pool_3x3~2|",
     "cells_per_stage": 5, "channels": 16}

``cell`` is NAS-Bench-201's own architecture string: node ``j`` is the sum of ``op(node i)`` over
its incoming edges ``op~i``; node 0 is the cell input, node 3 its output. Operations, after the
benchmark (Dong & Yang, ICLR 2020): ``nor_conv_kxk`` is ReLU, k x k convolution (stride 1, same
padding, no bias), batch norm; ``avg_pool_3x3`` is 3 x 3 average pooling (stride 1, padding 1,
padded cells not counted); ``skip_connect`` the identity; ``none`` the zero. A node whose every
input is zero is zero, and a cell whose output is cut off from its input outputs zeros (as the
benchmark's zero op does): the network then gives every image the same logits.

Skeleton: a 3 x 3 convolution to ``channels`` and batch norm (the stem); three stages of
``cells_per_stage`` cells with ``channels``, 2x and 4x channels; between stages a residual block
that halves the resolution and doubles the channels (ReLU-conv 3 x 3 stride 2-BN, ReLU-conv
3 x 3-BN, plus a shortcut of 2 x 2 average pooling and a 1 x 1 convolution); then batch norm,
ReLU, global average pooling and a linear classifier. The benchmark used ``channels`` 16 and
``cells_per_stage`` 5. One departure, for odd sizes the benchmark never met (32 and 16 pixels):
the shortcut's pooling rounds up (``ceil_mode``), so that it matches the strided convolution's
size; on even sizes it is the benchmark's pooling exactly.
"""

from __future__ import annotations

import functools
import json
from typing import Dict, List, Tuple

import torch
from torch import nn

KIND = "nb201-cell"
CELL_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NODES = 4


def parse_cell(text: str) -> List[Tuple[int, int, str]]:
    """``(to, from, op)`` for each of the six edges of an NB-201 architecture string."""
    parts = text.strip().split("+")
    if len(parts) != NODES - 1:
        raise ValueError(f"{text!r} is not an NB-201 cell string (3 nodes separated by '+')")
    edges = []
    for node, part in enumerate(parts, start=1):
        items = [p for p in part.strip("|").split("|") if p]
        sources = []
        for item in items:
            op, _, src = item.partition("~")
            if op not in CELL_OPS or not src.isdigit() or int(src) >= node:
                raise ValueError(f"bad edge {item!r} of node {node} in {text!r}")
            sources.append(int(src))
            edges.append((node, int(src), op))
        if sorted(sources) != list(range(node)):
            raise ValueError(f"node {node} of {text!r} needs one edge from each of nodes 0..{node - 1}")
    return edges


def check_spec(spec: Dict) -> None:
    """Raise ValueError naming the first thing wrong with a spec."""
    if spec.get("kind") != KIND:
        raise ValueError(f"spec kind must be {KIND!r}, got {spec.get('kind')!r}")
    if len(spec["input_size"]) != 2:
        raise ValueError(f"the NB-201 network takes 2-D images; input_size {spec['input_size']} is not (height, width)")
    for key in ("in_channels", "num_classes", "cells_per_stage", "channels"):
        if not isinstance(spec.get(key), int) or spec[key] < 1:
            raise ValueError(f"spec {key} must be a positive integer, got {spec.get(key)!r}")
    parse_cell(spec["cell"])


def relu_conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.ReLU(), nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out))


def edge_op(op: str, channels: int) -> nn.Module:
    """One edge's operation; ``none`` edges are never built (see :class:`Cell`)."""
    if op == "skip_connect":
        return nn.Identity()
    if op == "avg_pool_3x3":
        return _chain_net().PadExcludingAvgPool2d(3, stride=1, padding=1)
    return relu_conv_bn(channels, channels, 1 if op == "nor_conv_1x1" else 3)


def live_edges(edges: List[Tuple[int, int, str]]) -> List[Tuple[int, int, str]]:
    """The edges that carry a function of the cell input to its output, in computing order; none
    when the output is cut off from the input. An edge is dropped when it adds nothing: a ``none`` edge, one
    read from a node fed only by zeros, or one into a node whose value never reaches the output.
    An edge is built exactly when removing it would change what the cell computes (tested over all
    15,625 cells), so the parameters, FLOPs and latency a child reports are those of its function."""
    live = {0}  # nodes that carry a function of the input (not identically zero)
    forward = []
    for to, src, op in sorted(edges):
        if op != "none" and src in live:
            live.add(to)
            forward.append((to, src, op))
    read = {NODES - 1}  # nodes whose value reaches the output through the edges kept so far
    kept = []
    for to, src, op in reversed(forward):  # every edge out of a node comes before the edges into it
        if to in read:
            read.add(src)
            kept.append((to, src, op))
    return kept[::-1]


class Cell(nn.Module):
    """Four nodes, each the sum of its incoming edges; edges that add nothing are not built."""

    def __init__(self, edges: List[Tuple[int, int, str]], channels: int):
        super().__init__()
        kept = live_edges(edges)
        self.edges = [(to, src) for to, src, _ in kept]
        self.ops = nn.ModuleList(edge_op(op, channels) for _, _, op in kept)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.edges:  # the output is cut off from the input
            return torch.zeros_like(x)
        nodes: Dict[int, torch.Tensor] = {0: x}
        for (to, src), op in zip(self.edges, self.ops):  # sources before the nodes they feed
            y = op(nodes[src])
            nodes[to] = nodes[to] + y if to in nodes else y
        return nodes[NODES - 1]


class ResidualReduction(nn.Module):
    """Halves the resolution and changes the channels: two ReLU-conv-BN plus a pooled 1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.body = nn.Sequential(relu_conv_bn(c_in, c_out, 3, stride=2), relu_conv_bn(c_out, c_out, 3))
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, stride=2, ceil_mode=True),
                                      nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


class CellNet(nn.Module):
    """The network an ``nb201-cell`` architecture describes (the spec in the module docstring)."""

    def __init__(self, spec: Dict):
        super().__init__()
        check_spec(spec)
        self.spec = json.loads(json.dumps(spec))
        edges, c = parse_cell(spec["cell"]), int(spec["channels"])
        self.stem = nn.Sequential(nn.Conv2d(int(spec["in_channels"]), c, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c))
        blocks: List[nn.Module] = []
        for stage in range(3):
            width = c * 2 ** stage
            if stage:
                blocks.append(ResidualReduction(width // 2, width))
            blocks += [Cell(edges, width) for _ in range(int(spec["cells_per_stage"]))]
        self.blocks = nn.Sequential(*blocks)
        self.last = nn.Sequential(nn.BatchNorm2d(4 * c), nn.ReLU())
        self.classifier = nn.Linear(4 * c, int(spec["num_classes"]))
        if self.spec.get("quant"):  # trained or calibrated quantised: the same fake-quantised layers
            _chain_net().quant_layers().quantize_modules(self, self.spec["quant"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.last(self.blocks(self.stem(x)))
        return self.classifier(feat.flatten(2).mean(dim=2))


@functools.lru_cache(maxsize=None)
def _chain_net():
    """chain_net (its RawInput, pooling and quantised layers): the package's module inside nasforge, the copy beside
    this file in an export (read once: every average-pooling edge asks for it)."""
    try:
        from . import chain_net
    except ImportError:  # loaded as a file (an export's model.py): no package around it
        import importlib.util
        import os

        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "chain_net.py")
        module_spec = importlib.util.spec_from_file_location(f"{__name__}_chain_net", path)
        chain_net = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(chain_net)
    return chain_net


def load(directory: str, map_location: str = "cpu", raw_input: bool = True) -> nn.Module:
    """Load an exported model: ``spec.json`` and ``weights.pt`` in ``directory``; with
    ``raw_input`` and a ``preprocessing.json`` there, it takes the training data's raw arrays."""
    return _chain_net().load_network(CellNet, directory, map_location, raw_input)

"""The weight-sharing supernet of the ``chain-cnn`` space: every architecture is a path through it.

ENAS (Pham et al., 2018) trains one set of weights (omega) in which every child of the space is a
subgraph. Here every chain-cnn architecture runs on slices of the same tensors:

- **Convolutions**: per layer and per kernel shape one weight tensor of ``max(FILTERS)`` output
  channels (separate tensors per kernel, like ENAS's separate branches per operation). A choice of
  ``f`` filters uses the first ``f`` output channels; batch norm's scale, shift and running
  statistics are sliced the same way.
- **Input channels by origin**: a layer's input is a concatenation of earlier outputs, and every
  channel of it was made either by the network input or by some earlier convolution (pooling and
  identity pass channels through). Layer ``i``'s weights hold one block per origin (the network
  input, then ``max(FILTERS)`` input channels per earlier layer), so a channel meets the same
  weights whichever route and whichever neighbours it arrives with. This keeps the supernet linear
  in the number of layers, where one block per (possibly concatenated) source would double per
  layer. Each block is its own parameter, so the optimiser steps only the blocks a child used.
- **Head**: the first linear layer is indexed by origin the same way; with the flatten readout one
  tensor per reachable feature-map size (a stride of 2 halves it, rounding up), since a position
  means something else at every size. Head widths use the first ``w`` units of a 256-wide layer.

:meth:`ChainSuperNet.extract` copies the slices into a stand-alone :class:`ChainNet` that computes
the same function (tested), which is how an architecture leaves the supernet.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from itertools import product
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..spaces.chain_cnn import FILTERS, HEAD_WIDTHS, KERNELS, ChainCNNSpace
from ..spaces.chain_net import ChainNet, _gather, _pad_to, output_size

_CONV = {1: F.conv1d, 2: F.conv2d}
_MAXPOOL = {1: F.max_pool1d, 2: F.max_pool2d}
_AVGPOOL = {1: F.avg_pool1d, 2: F.avg_pool2d}


def _key(values: Sequence[int], prefix: str = "") -> str:
    return prefix + "x".join(str(int(v)) for v in values)


Segments = List[Tuple[int, int]]  # (origin, channels): 0 is the network input, k + 1 is conv layer k


@dataclass
class LayerPlan:
    op: str
    kernel: Tuple[int, ...]
    filters: int
    stride: int
    sources: List[int]
    inputs: Segments  # where the input's channels come from, in order


@dataclass
class Plan:
    """What one architecture needs from the supernet, derived once from its spec."""

    spec: Dict
    layers: List[LayerPlan]
    final: List[int]
    feature_size: List[int]
    features: Segments


def reachable_sizes(input_size: Sequence[int], num_layers: int) -> List[Tuple[int, ...]]:
    """Feature-map sizes a chain can end with: the input size halved (rounding up) 0..n times."""
    sizes, size = [], tuple(int(s) for s in input_size)
    for _ in range(num_layers + 1):
        if size not in sizes:
            sizes.append(size)
        size = tuple(output_size(s, 1, 2) for s in size)
    return sizes


def make_plan(spec: Dict) -> Plan:
    """Channel origins, readout inputs and feature size, following ChainNet's rules exactly."""
    dims, c_in = int(spec["dims"]), int(spec["in_channels"])
    size_in = [int(s) for s in spec["input_size"]]
    origins: List[Segments] = []
    sizes: List[List[int]] = []
    layers: List[LayerPlan] = []
    for i, layer in enumerate(spec["layers"]):
        sources = list(layer["inputs"])
        if sources:
            in_orig = [seg for j in sources for seg in origins[j]]
            s_in = [max(sizes[j][d] for j in sources) for d in range(dims)]
        else:
            in_orig, s_in = [(0, c_in)], size_in
        kernel = tuple(int(k) for k in layer["kernel"])
        stride, filters = int(layer["stride"]), int(layer["filters"])
        if layer["op"] == "conv":
            origins.append([(i + 1, filters)])
        else:
            origins.append(in_orig)
        if layer["op"] == "identity":
            sizes.append(list(s_in))
        else:
            sizes.append([output_size(s_in[d], kernel[d], stride) for d in range(dims)])
        layers.append(LayerPlan(layer["op"], kernel, filters, stride, sources, in_orig))
    n = len(layers)
    used = {j for lp in layers for j in lp.sources}
    final = [i for i in range(n) if i not in used or i == n - 1]
    if final:
        feat_orig = [seg for i in final for seg in origins[i]]
        feat_size = [max(sizes[i][d] for i in final) for d in range(dims)]
    else:
        feat_orig, feat_size = [(0, c_in)], size_in
    return Plan(spec, layers, final, feat_size, feat_orig)


def _blocks(out: int, widths: Sequence[int], tail: Tuple[int, ...], bound: float) -> nn.ParameterList:
    """One parameter ``out x width x tail`` per origin, uniform in [-bound, bound]."""
    return nn.ParameterList(nn.Parameter(torch.empty(out, w, *tail).uniform_(-bound, bound)) for w in widths)


def _select(blocks: nn.ParameterList, rows: int, segments: Segments) -> torch.Tensor:
    """The first ``rows`` outputs, with the input channels that ``segments`` name, concatenated."""
    parts = [blocks[origin][:rows, :channels] for origin, channels in segments]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


class SharedConv(nn.Module):
    """One kernel shape of one layer: conv weights, one block per origin, and its batch norm."""

    def __init__(self, max_filters: int, widths: Sequence[int], kernel: Tuple[int, ...]):
        super().__init__()
        fan_in = max_filters * math.prod(kernel)  # a typical input: one earlier layer at full width
        self.weight = _blocks(max_filters, widths, kernel, 1.0 / math.sqrt(fan_in))
        self.bn_weight = nn.Parameter(torch.ones(max_filters))
        self.bn_bias = nn.Parameter(torch.zeros(max_filters))
        self.register_buffer("running_mean", torch.zeros(max_filters))
        self.register_buffer("running_var", torch.ones(max_filters))


class SharedLinear(nn.Module):
    """A linear layer; as the head's first layer, one ``out x width x size`` block per origin."""

    def __init__(self, out_features: int, widths: Sequence[int], tail: Tuple[int, ...], typical_fan_in: int):
        super().__init__()
        bound = 1.0 / math.sqrt(typical_fan_in)
        self.weight = _blocks(out_features, widths, tail, bound)
        self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))


class ChainSuperNet(nn.Module):
    """All architectures of one chain-cnn space on one input shape, sharing weights."""

    def __init__(self, space: ChainCNNSpace, input_shape: Sequence[int], num_classes: int,
                 plan_cache: int = 4096):
        super().__init__()
        if not isinstance(space, ChainCNNSpace):
            raise ValueError(f"the weight-sharing supernet is built for the chain-cnn space, got {space.name!r}")
        if space.paper:
            raise ValueError("the weight-sharing supernet covers chain-cnn's own space, not paper=true "
                             "(separate stride height and width)")
        if space.mixed_precision:
            raise ValueError("the weight-sharing supernet shares full-precision weights; it does not search "
                             "bit widths (mixed_precision=true): use the train estimator")
        self.space = space
        self.input_shape = tuple(int(s) for s in input_shape)
        if len(self.input_shape) != space.dims + 1:
            raise ValueError(f"chain-cnn with dims={space.dims} needs input shape (channels, "
                             f"{space.dims} spatial sizes), got {self.input_shape}")
        self.num_classes = int(num_classes)
        self.dims = space.dims
        self.max_filters = max(FILTERS)
        self.max_width = max(HEAD_WIDTHS)
        c_in, n, mf = self.input_shape[0], space.num_layers, self.max_filters
        kernels = list(product(KERNELS, repeat=self.dims))
        widths = [c_in] + [mf] * n  # input channels per origin
        self.convs = nn.ModuleList(
            nn.ModuleDict({_key(k, "k"): SharedConv(mf, widths[: i + 1], k) for k in kernels}) for i in range(n))
        first: Dict[str, nn.Module] = {}
        for out, tag in ((self.max_width, "hidden"), (self.num_classes, "classes")):
            first[f"avg_{tag}"] = SharedLinear(out, widths, (), mf)
            for size in reachable_sizes(self.input_shape[1:], n):
                first[f"flat{_key(size)}_{tag}"] = SharedLinear(out, widths, size, mf * math.prod(size))
        self.first = nn.ModuleDict(first)
        self.second = SharedLinear(self.max_width, [self.max_width], (), self.max_width)
        self.last = SharedLinear(self.num_classes, [self.max_width], (), self.max_width)
        self.batch_stats_in_eval = True
        self._plans: "OrderedDict[Tuple[int, ...], Plan]" = OrderedDict()
        self._plan_cache = plan_cache

    # ---- architecture -> slices ---------------------------------------------------------------
    def plan(self, tokens: Sequence[int]) -> Plan:
        tokens = self.space.validate(tokens)
        plan = self._plans.get(tokens)
        if plan is None:
            spec = self.space.spec(tokens, self.input_shape, self.num_classes)
            plan = make_plan(spec)
            self._plans[tokens] = plan
            if len(self._plans) > self._plan_cache:
                self._plans.popitem(last=False)
        else:
            self._plans.move_to_end(tokens)
        return plan

    def conv_slices(self, i: int, lp: LayerPlan) -> Dict[str, torch.Tensor]:
        """Layer ``i``'s conv weight and batch-norm tensors for its choice (views where possible)."""
        conv = self.convs[i][_key(lp.kernel, "k")]
        f = lp.filters
        return {"weight": _select(conv.weight, f, lp.inputs), "bn_weight": conv.bn_weight[:f],
                "bn_bias": conv.bn_bias[:f], "running_mean": conv.running_mean[:f],
                "running_var": conv.running_var[:f]}

    def head_slices(self, plan: Plan) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        """(weight, bias) of each linear layer of the head, in order, shaped as nn.Linear's."""
        depth, width = int(plan.spec["head"]["depth"]), int(plan.spec["head"]["width"])
        readout = plan.spec["readout"]
        name = "avg" if readout == "avg" else f"flat{_key(plan.feature_size)}"
        first = self.first[f"{name}_{'hidden' if depth else 'classes'}"]
        rows = width if depth else self.num_classes
        w = _select(first.weight, rows, plan.features)
        layers = [(w.reshape(rows, -1), first.bias[:rows])]
        if depth >= 2:
            layers.append((self.second.weight[0][:width, :width], self.second.bias[:width]))
        if depth >= 1:
            layers.append((self.last.weight[0][:, :width], self.last.bias))
        return layers

    # ---- running an architecture ----------------------------------------------------------------
    def forward(self, x: torch.Tensor, tokens: Sequence[int]) -> torch.Tensor:
        plan = self.plan(tokens)
        dims = self.dims
        batch_stats = self.training or self.batch_stats_in_eval
        outputs: List[torch.Tensor] = []
        for i, lp in enumerate(plan.layers):
            inp = x if not lp.sources else _gather([outputs[j] for j in lp.sources], dims)
            padding = tuple(k // 2 for k in lp.kernel)
            if lp.op == "conv":
                s = self.conv_slices(i, lp)
                y = _CONV[dims](inp, s["weight"], None, lp.stride, padding)
                # Running statistics are updated only in training; evaluation with batch statistics
                # leaves them alone (a view of the shared buffer, so the update reaches it).
                track = self.training or not self.batch_stats_in_eval
                y = F.batch_norm(y, s["running_mean"] if track else None, s["running_var"] if track else None,
                                 s["bn_weight"], s["bn_bias"], batch_stats, 0.1, 1e-5)
                out = F.relu(y)
            elif lp.op == "maxpool":
                out = _MAXPOOL[dims](inp, lp.kernel, lp.stride, padding)
            elif lp.op == "avgpool":
                out = _AVGPOOL[dims](inp, lp.kernel, lp.stride, padding, count_include_pad=False)
            else:
                out = inp
            outputs.append(out)
        if plan.final:
            feat = _pad_to(_gather([outputs[i] for i in plan.final], dims), plan.feature_size)
        else:
            feat = x
        feat = feat.flatten(1) if plan.spec["readout"] == "flatten" else feat.flatten(2).mean(dim=2)
        head = self.head_slices(plan)
        for k, (w, b) in enumerate(head):
            feat = F.linear(feat, w, b)
            if k < len(head) - 1:
                feat = F.relu(feat)
        return feat

    # ---- leaving the supernet -------------------------------------------------------------------
    @torch.no_grad()
    def extract(self, tokens: Sequence[int]) -> ChainNet:
        """The stand-alone network of ``tokens`` with the supernet's weights copied in."""
        plan = self.plan(tokens)
        net = ChainNet(plan.spec)
        state = net.state_dict()
        for i, lp in enumerate(plan.layers):
            if lp.op != "conv":
                continue
            s = self.conv_slices(i, lp)
            state[f"layers.{i}.body.0.weight"] = s["weight"]
            for src, dst in (("bn_weight", "weight"), ("bn_bias", "bias"), ("running_mean", "running_mean"),
                             ("running_var", "running_var")):
                state[f"layers.{i}.body.1.{dst}"] = s[src]
        for k, (w, b) in enumerate(self.head_slices(plan)):
            state[f"head.{2 * k}.weight"] = w
            state[f"head.{2 * k}.bias"] = b
        net.load_state_dict({k: v.detach().clone().cpu() for k, v in state.items()})
        return net

    def extra_repr(self) -> str:
        return (f"layers={self.space.num_layers}, dims={self.dims}, input={self.input_shape}, "
                f"classes={self.num_classes}, parameters={sum(p.numel() for p in self.parameters()):,}")


def supernet_parameters(space: ChainCNNSpace, input_shape: Sequence[int], num_classes: int) -> int:
    """Parameter count of the supernet, computed without allocating it (to refuse huge ones early)."""
    c_in, n, mf, hw = int(input_shape[0]), space.num_layers, max(FILTERS), max(HEAD_WIDTHS)
    kernels = list(product(KERNELS, repeat=space.dims))
    kernel_elems = sum(math.prod(k) for k in kernels)
    convs = sum(mf * (c_in + i * mf) * kernel_elems + 2 * mf * len(kernels) for i in range(n))
    slots = c_in + n * mf
    sizes = reachable_sizes(input_shape[1:], n)
    spatial = 1 + sum(math.prod(s) for s in sizes)  # the avg readout, then one tensor per flatten size
    first = (hw + num_classes) * (slots * spatial + 1 + len(sizes))
    return convs + first + hw * hw + hw + num_classes * hw + num_classes


def random_tokens(space: ChainCNNSpace, generator: Optional[torch.Generator] = None) -> Tuple[int, ...]:
    """A uniform architecture drawn with a torch generator (the supernet's own warm-up sampler)."""
    return tuple(int(torch.randint(d.size, (1,), generator=generator)) for d in space.decisions)

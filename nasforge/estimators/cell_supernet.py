"""The single-path supernet of the ``nb201-cell`` space: every cell of the space is one path through it.

NAS-Bench-201 repeats one cell everywhere, so an architecture is six edge choices applied to every
cell of the skeleton. The supernet is that skeleton (stem, residual reductions, last batch norm,
classifier: :class:`~nasforge.spaces.cell_net.CellNet`'s own modules, shared by every path) with
each cell replaced by a :class:`SuperCell`: per cell position and per edge one weight set for each
operation that has weights (ReLU-conv 1x1-BN and ReLU-conv 3x3-BN, each with its own batch norm);
``none``, ``skip_connect`` and ``avg_pool_3x3`` have none. A path runs the chosen operation of every
edge; edges the stand-alone cell drops (``none``, fed only by zeros, or never read) are dropped here by the same
rule (:func:`~nasforge.spaces.cell_net.live_edges`), so :meth:`CellSuperNet.extract` gives a
:class:`CellNet` that computes exactly what the supernet computes on that path (tested).

This is the supernet of Guo et al.'s single-path one-shot method (2020): trained on one uniformly
sampled path per step, its batch-norm statistics recalibrated per path before evaluation
(:mod:`.single_path`).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import List, Sequence, Tuple

import torch
from torch import nn

from ..spaces.cell_net import NODES, Cell, CellNet, edge_op, live_edges, parse_cell
from ..spaces.nb201_cell import NB201CellSpace

WEIGHTED = ("nor_conv_1x1", "nor_conv_3x3")  # the operations with weights of their own
Path = List[Tuple[int, int, str]]  # the live edges (to, from, op); none when the output is cut off


def _edge(to: int, src: int) -> str:
    return f"e{to}{src}"


class SuperCell(nn.Module):
    """One cell position: every weighted operation of every edge; a path picks one per edge."""

    def __init__(self, channels: int):
        super().__init__()
        self.choices = nn.ModuleDict({
            _edge(to, src): nn.ModuleDict({op: edge_op(op, channels) for op in WEIGHTED})
            for to in range(1, NODES) for src in range(to)})
        self.free = nn.ModuleDict({op: edge_op(op, channels) for op in ("skip_connect", "avg_pool_3x3")})

    def op(self, to: int, src: int, op: str) -> nn.Module:
        return self.choices[_edge(to, src)][op] if op in WEIGHTED else self.free[op]

    def forward(self, x: torch.Tensor, path: Path) -> torch.Tensor:
        if not path:  # the output is cut off from the input
            return torch.zeros_like(x)
        nodes = {0: x}
        for to, src, op in path:  # the stand-alone Cell's order, so the sums agree to the bit
            y = self.op(to, src, op)(nodes[src])
            nodes[to] = nodes[to] + y if to in nodes else y
        return nodes[NODES - 1]


class CellSuperNet(nn.Module):
    """All cells of one ``nb201-cell`` space on one input shape, sharing weights."""

    def __init__(self, space: NB201CellSpace, input_shape: Sequence[int], num_classes: int):
        super().__init__()
        if not isinstance(space, NB201CellSpace):
            raise ValueError(f"the cell supernet is built for the nb201-cell space, got {space.name!r}")
        self.space = space
        self.input_shape = tuple(int(s) for s in input_shape)
        self.num_classes = int(num_classes)
        # The skeleton of any cell (all-none: its cells hold nothing), with every cell made a SuperCell.
        skeleton = space.build((0,) * len(space.decisions), self.input_shape, self.num_classes)
        width, blocks = space.channels, []
        for block in skeleton.blocks:
            if isinstance(block, Cell):
                blocks.append(SuperCell(width))
            else:
                width *= 2
                blocks.append(block)
        self.stem, self.last, self.classifier = skeleton.stem, skeleton.last, skeleton.classifier
        self.blocks = nn.ModuleList(blocks)
        self._paths: "OrderedDict[Tuple[int, ...], Path]" = OrderedDict()

    def path(self, tokens: Sequence[int]) -> Path:
        tokens = self.space.validate(tokens)
        if tokens not in self._paths:
            self._paths[tokens] = live_edges(parse_cell(self.space.arch_str(tokens)))
            if len(self._paths) > 4096:
                self._paths.popitem(last=False)
        return self._paths[tokens]

    def forward(self, x: torch.Tensor, tokens: Sequence[int]) -> torch.Tensor:
        path = self.path(tokens)
        h = self.stem(x)
        for block in self.blocks:
            h = block(h, path) if isinstance(block, SuperCell) else block(h)
        return self.classifier(self.last(h).flatten(2).mean(dim=2))

    @torch.no_grad()
    def extract(self, tokens: Sequence[int]) -> CellNet:
        """The stand-alone network of ``tokens`` with the supernet's weights and statistics copied in."""
        edges = self.path(tokens)
        net = self.space.build(tokens, self.input_shape, self.num_classes)
        for mine, theirs in ((net.stem, self.stem), (net.last, self.last), (net.classifier, self.classifier)):
            mine.load_state_dict(theirs.state_dict())
        for block, shared in zip(net.blocks, self.blocks):
            if not isinstance(shared, SuperCell):
                block.load_state_dict(shared.state_dict())
                continue
            for k, (to, src, op) in enumerate(edges):  # Cell.ops holds the live edges in this order
                block.ops[k].load_state_dict(shared.op(to, src, op).state_dict())
        return net.to("cpu")

"""The single-path supernet of the ``mobile-blocks`` space: SPOS's choice blocks (Guo et al., 2020).

Every block position (stage ``s``, block ``b``) holds one inverted residual block per choice of
(expand, kernel, squeeze-and-excitation): 18 choice blocks, each with its own weights and batch
norm, as the paper's choice blocks have. A stage with fewer blocks skips its later positions, so
depth is a choice like any other. The width multiplier changes every channel count, so each width
has its own stem, block positions and head (three supernets side by side, one path runs in one of
them). The input channels of a position are fixed by the skeleton (the previous stage's channels
for a stage's first block, the stage's own after it), so every choice block fits every path that
reaches it. :meth:`MobileSuperNet.extract` copies the path's modules into the stand-alone
:class:`~nasforge.spaces.mobile_net.MobileNet`, which then computes the same function (tested).
"""

from __future__ import annotations

from collections import OrderedDict
from itertools import product
from typing import Dict, List, Sequence, Tuple

import torch
from torch import nn

from ..spaces.mobile_blocks import WIDTHS, MobileBlocksSpace, scaled
from ..spaces.mobile_net import EXPANSIONS, KERNELS, InvertedResidual, MobileNet

Path = Tuple[str, List[Tuple[int, str]]]  # width key, then (position, choice key) per present block


def _choice(expand: int, kernel: int, se: bool) -> str:
    return f"e{expand}k{kernel}{'se' if se else ''}"


class MobileSuperNet(nn.Module):
    """All architectures of one ``mobile-blocks`` space on one input shape, sharing weights."""

    def __init__(self, space: MobileBlocksSpace, input_shape: Sequence[int], num_classes: int):
        super().__init__()
        if not isinstance(space, MobileBlocksSpace):
            raise ValueError(f"the mobile supernet is built for the mobile-blocks space, got {space.name!r}")
        self.space = space
        self.input_shape = tuple(int(s) for s in input_shape)
        self.num_classes = int(num_classes)
        self.widths = nn.ModuleDict({f"w{i}": self._width(w) for i, w in enumerate(WIDTHS)})
        self._paths: "OrderedDict[Tuple[int, ...], Path]" = OrderedDict()

    def _width(self, width: float) -> nn.ModuleDict:
        """Stem, every block position's choice blocks and the head of one width multiplier."""
        index = WIDTHS.index(width)
        tokens = tuple(index if d.name == "width" else 0 for d in self.space.decisions)
        skeleton = self.space.build(tokens, self.input_shape, self.num_classes)  # stem, head, classifier
        c_in, positions = int(skeleton.spec["stem"]["channels"]), []
        for channels, stride in self.space.stages:
            c_out = scaled(channels, width)
            for b in range(self.space.max_blocks):
                positions.append(nn.ModuleDict({
                    _choice(e, k, se): InvertedResidual(c_in, {"channels": c_out, "stride": stride if b == 0 else 1,
                                                               "expand": e, "kernel": k, "se": se})
                    for e, k, se in product(EXPANSIONS, KERNELS, (False, True))}))
                c_in = c_out
        return nn.ModuleDict({"stem": skeleton.stem, "positions": nn.ModuleList(positions),
                              "head": skeleton.head, "classifier": skeleton.classifier})

    def path(self, tokens: Sequence[int]) -> Path:
        tokens = self.space.validate(tokens)
        if tokens not in self._paths:
            values, steps = self.space.encode(tokens), []
            blocks = iter(self.space.blocks(tokens))
            for s in range(len(self.space.stages)):
                for b in range(values[f"S{s}.blocks"]):
                    block = next(blocks)
                    steps.append((s * self.space.max_blocks + b, _choice(block["expand"], block["kernel"], block["se"])))
            self._paths[tokens] = (f"w{WIDTHS.index(values['width'])}", steps)
            if len(self._paths) > 4096:
                self._paths.popitem(last=False)
        return self._paths[tokens]

    def forward(self, x: torch.Tensor, tokens: Sequence[int]) -> torch.Tensor:
        width, steps = self.path(tokens)
        net: Dict[str, nn.Module] = self.widths[width]
        h = net["stem"](x)
        for position, choice in steps:
            h = net["positions"][position][choice](h)
        return net["classifier"](net["head"](h).flatten(2).mean(dim=2))

    @torch.no_grad()
    def extract(self, tokens: Sequence[int]) -> MobileNet:
        """The stand-alone network of ``tokens`` with the supernet's weights and statistics copied in."""
        width, steps = self.path(tokens)
        shared = self.widths[width]
        net = self.space.build(tokens, self.input_shape, self.num_classes)
        for name in ("stem", "head", "classifier"):
            getattr(net, name).load_state_dict(shared[name].state_dict())
        for block, (position, choice) in zip(net.blocks, steps):
            block.load_state_dict(shared["positions"][position][choice].state_dict())
        return net

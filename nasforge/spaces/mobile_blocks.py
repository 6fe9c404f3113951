"""``mobile-blocks``: a MnasNet / MobileNetV2-style space of inverted residual blocks for 2-D images.

The skeleton is fixed by settings: a stem, then ``stages`` as ``[channels, stride]`` pairs (the
first block of a stage has the stage's stride and channels, the others stride 1), then the head
(:mod:`.mobile_net` has the blocks). Searched, in token order:

- ``width``: a multiplier (0.5, 0.75, 1.0) of the stem's and every stage's channels, rounded to a
  multiple of 4 and never below 90% of the product (MobileNetV2 rounds to 8; its default widths
  are larger). The head keeps ``head_channels``, as MobileNetV2 keeps 1280 below width 1.
- per stage ``S{s}.blocks``: 1..``max_blocks`` blocks. A stage is never skipped, so the
  skeleton's strides and channels always hold (MnasNet also searches 1 or more blocks per stage).
- per block (``per_block = true``, MnasNet searches per stage; that is ``per_block = false``)
  ``.expand`` (1, 3, 6), ``.kernel`` (3, 5, 7) and ``.se`` (squeeze-and-excitation off/on),
  named ``S{s}.B{b}.expand`` etc., or ``S{s}.expand`` etc. per stage.

``canonical`` zeroes the choices of blocks a stage does not have, so such twins share a hash
and build the same network (the spec reads only the present blocks). ``mutate`` changes one
choice that the network reads, so a mutation is never a twin.

Defaults are small, so that a child trains in seconds on a CPU: stem 16 channels stride 1,
stages ``[[16, 1], [24, 2], [32, 2], [64, 1]]``, up to 3 blocks each, head 128. MobileNetV2's own
skeleton (224-pixel ImageNet) is stem 32 stride 2, stages ``[[16, 1], [24, 2], [32, 2], [64, 2],
[96, 1], [160, 2], [320, 1]]`` with 1, 2, 3, 4, 3, 3, 1 blocks (``max_blocks = 4``) and head 1280.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .base import SPACES, Decision, InvalidArchitectureError, SearchSpace, Tokens
from .mobile_net import EXPANSIONS, KERNELS, KIND, MobileNet

WIDTHS = (0.5, 0.75, 1.0)
DEFAULT_STAGES = ((16, 1), (24, 2), (32, 2), (64, 1))
BLOCK_CHOICES = (("expand", EXPANSIONS), ("kernel", KERNELS), ("se", (False, True)))


def scaled(channels: int, width: float, divisor: int = 4) -> int:
    """``channels * width`` rounded to a multiple of ``divisor``, at least ``divisor`` and 90% of it."""
    value = channels * width
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _checked_stages(stages: Optional[List[List[int]]]) -> Tuple[Tuple[int, int], ...]:
    stages = DEFAULT_STAGES if stages is None else stages
    ok = isinstance(stages, (list, tuple)) and 1 <= len(stages) <= 10
    for stage in stages if ok else ():
        ok = ok and isinstance(stage, (list, tuple)) and len(stage) == 2 and \
            all(isinstance(v, int) and not isinstance(v, bool) for v in stage) and \
            1 <= stage[0] <= 2048 and stage[1] in (1, 2)
    if not ok:
        raise ValueError(f"mobile-blocks: stages must be 1 to 10 pairs [channels, stride] with channels "
                         f"in 1..2048 and stride 1 or 2, e.g. [[16, 1], [24, 2]]; got {stages!r}")
    return tuple((int(c), int(s)) for c, s in stages)


@SPACES.register("mobile-blocks")
class MobileBlocksSpace(SearchSpace):
    """Width, then per stage its number of blocks and each block's (or the stage's) expand, kernel, SE."""

    name = "mobile-blocks"
    dims = 2  # images only: the train estimator refuses other data before a search starts

    def __init__(self, stages: Optional[List[List[int]]] = None, per_block: bool = True, max_blocks: int = 3,
                 stem_channels: int = 16, stem_stride: int = 1, head_channels: int = 128):
        self.stages = _checked_stages(stages)
        if not isinstance(per_block, bool):
            raise ValueError(f"mobile-blocks: per_block must be true or false, got {per_block!r}")
        for key, value, top in (("max_blocks", max_blocks, 8), ("stem_channels", stem_channels, 2048),
                                ("stem_stride", stem_stride, 2), ("head_channels", head_channels, 8192)):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
                raise ValueError(f"mobile-blocks: {key} must be an integer in 1..{top}, got {value!r}")
        self.per_block, self.max_blocks = per_block, max_blocks
        self.stem_channels, self.stem_stride, self.head_channels = stem_channels, stem_stride, head_channels
        self._decisions = self._make_decisions()
        self._index = {d.name: i for i, d in enumerate(self._decisions)}

    def _make_decisions(self) -> List[Decision]:
        out = [Decision("width", WIDTHS)]
        for s in range(len(self.stages)):
            out.append(Decision(f"S{s}.blocks", tuple(range(1, self.max_blocks + 1)), layer=s))
            for prefix in self._choice_prefixes(s):
                out += [Decision(f"{prefix}.{key}", choices, layer=s) for key, choices in BLOCK_CHOICES]
        return out

    def _choice_prefixes(self, stage: int) -> List[str]:
        return [f"S{stage}.B{b}" for b in range(self.max_blocks)] if self.per_block else [f"S{stage}"]

    @property
    def decisions(self) -> List[Decision]:
        return self._decisions

    def config(self) -> Dict[str, Any]:
        return {"stages": [list(s) for s in self.stages], "per_block": self.per_block, "max_blocks": self.max_blocks,
                "stem_channels": self.stem_channels, "stem_stride": self.stem_stride,
                "head_channels": self.head_channels}

    def _absent(self, tokens: Tokens) -> List[int]:
        """Indices of the choices of blocks that their stage does not have (per-block mode only)."""
        if not self.per_block:
            return []
        out = []
        for s in range(len(self.stages)):
            count = tokens[self._index[f"S{s}.blocks"]] + 1
            for b in range(count, self.max_blocks):
                out += [self._index[f"S{s}.B{b}.{key}"] for key, _ in BLOCK_CHOICES]
        return out

    def canonical(self, tokens: Sequence[int]) -> Tokens:
        tokens = list(self.validate(tokens))
        for i in self._absent(tuple(tokens)):
            tokens[i] = 0
        return tuple(tokens)

    def mutate(self, tokens: Sequence[int], rng: np.random.Generator) -> Tokens:
        """Change one choice the network reads (never one of an absent block) to another value."""
        tokens = list(self.validate(tokens))
        absent = set(self._absent(tuple(tokens)))
        index = int(rng.choice([i for i in range(len(tokens)) if i not in absent]))
        size = self._decisions[index].size
        tokens[index] = (tokens[index] + int(rng.integers(1, size))) % size
        return tuple(tokens)

    def blocks(self, tokens: Sequence[int]) -> List[Dict[str, Any]]:
        """The present blocks in order, each ``{channels, stride, expand, kernel, se}``, widths applied."""
        values = self.encode(tokens)
        out = []
        for s, (channels, stride) in enumerate(self.stages):
            for b in range(values[f"S{s}.blocks"]):
                prefix = f"S{s}.B{b}" if self.per_block else f"S{s}"
                out.append({"channels": scaled(channels, values["width"]), "stride": stride if b == 0 else 1,
                            **{key: values[f"{prefix}.{key}"] for key, _ in BLOCK_CHOICES}})
        return out

    def describe(self, tokens: Sequence[int]) -> List[str]:
        values = self.encode(tokens)
        lines = [f"width x{values['width']}: stem {scaled(self.stem_channels, values['width'])} channels "
                 f"stride {self.stem_stride}"]
        for block in self.blocks(tokens):
            lines.append(f"block: {block['channels']} channels, stride {block['stride']}, expand {block['expand']}, "
                         f"kernel {block['kernel']}x{block['kernel']}" + (", SE" if block["se"] else ""))
        return lines + [f"head: 1x1 conv to {self.head_channels}, global average pooling, linear"]

    def summary(self, tokens: Sequence[int]) -> str:
        blocks = self.blocks(tokens)
        return f"w{self.encode(tokens)['width']} " + " ".join(
            f"e{b['expand']}k{b['kernel']}{'se' if b['se'] else ''}" + ("/2" if b["stride"] == 2 else "")
            for b in blocks)

    def spec(self, tokens: Sequence[int], input_shape: Tuple[int, ...], num_classes: int) -> Dict[str, Any]:
        """The plain-dict description that :class:`~.mobile_net.MobileNet` builds."""
        tokens = self.validate(tokens)
        if len(input_shape) != 3:
            raise InvalidArchitectureError(
                f"mobile-blocks builds networks for 2-D images of shape (channels, height, width); "
                f"these inputs have shape {tuple(input_shape)} (1-D signals need chain-cnn)")
        width = self.encode(tokens)["width"]
        return {"kind": KIND, "in_channels": int(input_shape[0]), "input_size": [int(s) for s in input_shape[1:]],
                "num_classes": int(num_classes),
                "stem": {"channels": scaled(self.stem_channels, width), "stride": self.stem_stride},
                "blocks": self.blocks(tokens), "head_channels": self.head_channels}

    def build(self, tokens: Sequence[int], input_shape: Tuple[int, ...], num_classes: int) -> MobileNet:
        return MobileNet(self.spec(tokens, input_shape, num_classes))

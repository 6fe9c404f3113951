"""``nb201-cell``: NAS-Bench-201's 15,625 cells as a trainable space for the user's 2-D images.

The decisions, their order, the operation names, ``canonical`` and ``arch_hash`` are those of
the tabular ``nb201-cifar10`` space (delegated to it, not copied), so a cell found on the table
trains here under the same tokens and hash, and a search on real data compares with the table
row for row. The network is NAS-Bench-201's skeleton (:mod:`.cell_net`) with ``cells_per_stage``
(the paper's N, 5 there) and ``channels`` (the stem's width C, 16 there) as settings; the
defaults (2 and 8) are smaller so that a child trains in seconds on a CPU.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

from ..tables.nb201 import NB201Space
from .base import SPACES, Decision, InvalidArchitectureError, SearchSpace, Tokens
from .cell_net import KIND, CellNet


@SPACES.register("nb201-cell")
class NB201CellSpace(SearchSpace):
    """One decision per cell edge ``edge_<to><-<from>``, five operations each, as the table's."""

    name = "nb201-cell"
    dims = 2  # images only: the train estimator refuses other data before a search starts

    def __init__(self, cells_per_stage: int = 2, channels: int = 8):
        for key, value, top in (("cells_per_stage", cells_per_stage, 20), ("channels", channels, 512)):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
                raise ValueError(f"nb201-cell: {key} must be an integer in 1..{top}, got {value!r}")
        self.cells_per_stage = cells_per_stage
        self.channels = channels
        self._table = NB201Space()  # decisions and hashing only: its table file is never read here

    @property
    def decisions(self) -> List[Decision]:
        return self._table.decisions

    def config(self) -> Dict[str, Any]:
        return {"cells_per_stage": self.cells_per_stage, "channels": self.channels}

    def canonical(self, tokens: Sequence[int]) -> Tokens:
        """The table's: the smallest tokens of the cells that compute the same function."""
        return self._table.canonical(tokens)

    def arch_hash(self, tokens: Sequence[int]) -> str:
        """The table's hash, whatever the skeleton's settings: the same cell, the same hash."""
        return self._table.arch_hash(tokens)

    def arch_str(self, tokens: Sequence[int]) -> str:
        return self._table.arch_str(tokens)

    def describe(self, tokens: Sequence[int]) -> List[str]:
        return self._table.describe(tokens) + [
            f"skeleton: stem {self.channels} channels; 3 stages of {self.cells_per_stage} cells "
            f"({self.channels}, {2 * self.channels}, {4 * self.channels} channels) with residual "
            "reductions between; global average pooling, linear classifier"]

    def summary(self, tokens: Sequence[int]) -> str:
        return self.arch_str(tokens)

    def spec(self, tokens: Sequence[int], input_shape: Tuple[int, ...], num_classes: int) -> Dict[str, Any]:
        """The plain-dict description that :class:`~.cell_net.CellNet` builds."""
        tokens = self.validate(tokens)
        if len(input_shape) != 3:
            raise InvalidArchitectureError(
                f"nb201-cell builds networks for 2-D images of shape (channels, height, width); "
                f"these inputs have shape {tuple(input_shape)} (1-D signals need chain-cnn)")
        return {"kind": KIND, "in_channels": int(input_shape[0]), "input_size": [int(s) for s in input_shape[1:]],
                "num_classes": int(num_classes), "cell": self.arch_str(tokens),
                "cells_per_stage": self.cells_per_stage, "channels": self.channels}

    def build(self, tokens: Sequence[int], input_shape: Tuple[int, ...], num_classes: int) -> CellNet:
        return CellNet(self.spec(tokens, input_shape, num_classes))

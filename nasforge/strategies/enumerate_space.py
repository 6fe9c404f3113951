"""``enumerate``: every architecture of a small space once, in a fixed order (for full tables).

Random search deduplicates only by retrying, which cannot guarantee that a small space is covered
exactly once. This strategy walks the token sequences in mixed-radix order (the last decision
changes fastest) and proposes only canonical ones, so twins that build the same network (see
``SearchSpace.canonical``) are proposed once. Its whole state is the position of the walk; when
the space is exhausted, asking again is an error (the budget was larger than the space).
"""

from __future__ import annotations

import math
from typing import Any, Dict, Iterator, Optional

from ..spaces.base import SearchSpace, Tokens
from .base import STRATEGIES, Proposal, Strategy


def space_size(space: SearchSpace) -> int:
    """Number of token sequences (not of distinct networks): the product of the choice counts."""
    return math.prod(d.size for d in space.decisions)


def tokens_at(space: SearchSpace, index: int) -> Tokens:
    """The ``index``-th token sequence in mixed-radix order (the last decision changes fastest)."""
    out = []
    for d in reversed(space.decisions):
        index, digit = divmod(index, d.size)
        out.append(digit)
    return tuple(reversed(out))


def canonical_architectures(space: SearchSpace, start: int = 0) -> Iterator[tuple]:
    """(position, tokens) of every canonical token sequence from ``start`` on."""
    for index in range(start, space_size(space)):
        tokens = tokens_at(space, index)
        if space.canonical(tokens) == tokens:
            yield index, tokens


def count_architectures(space: SearchSpace, limit: Optional[int] = None) -> int:
    """Distinct networks (canonical sequences); refuses spaces with more than ``limit`` sequences."""
    size = space_size(space)
    if limit is not None and size > limit:
        raise ValueError(f"{space.name} has {size:,} token sequences, more than the {limit:,} that may be "
                         "enumerated; take a sample instead")
    return sum(1 for _ in canonical_architectures(space))


@STRATEGIES.register("enumerate")
class EnumerateSpace(Strategy):
    name = "enumerate"

    def __init__(self):
        super().__init__()

    def setup(self, space, seed):
        super().setup(space, seed)
        self.position = 0

    def ask(self) -> Proposal:
        for index, tokens in canonical_architectures(self.space, self.position):
            self.position = index + 1
            return Proposal(tokens, {"position": index})
        raise ValueError(f"enumerate: every architecture of {self.space.name} has been proposed; "
                         "the budget is larger than the space")

    def tell(self, tokens: Tokens, reward: float, info: Dict[str, Any]) -> None:
        """Nothing to learn: the order is fixed."""

    def state_dict(self) -> Dict[str, Any]:
        return {**super().state_dict(), "position": self.position}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.position = int(state["position"])

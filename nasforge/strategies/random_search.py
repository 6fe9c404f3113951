"""Random search: uniform samples from the space, the baseline every strategy must beat."""

from __future__ import annotations

from typing import Any, Dict

from ..spaces.base import Tokens
from .base import STRATEGIES, Proposal, Strategy


@STRATEGIES.register("random")
class RandomSearch(Strategy):
    name = "random"

    def __init__(self, dedup: bool = True, max_retries: int = 100):
        super().__init__(dedup=dedup, max_retries=max_retries)
        self.dedup = bool(dedup)
        self.max_retries = int(max_retries)

    def setup(self, space, seed):
        super().setup(space, seed)
        self.seen: set = set()

    def ask(self) -> Proposal:
        tokens = self.space.sample(self.rng)
        if self.dedup:
            for _ in range(self.max_retries):
                if self.space.arch_hash(tokens) not in self.seen:
                    break
                tokens = self.space.sample(self.rng)
        self.seen.add(self.space.arch_hash(tokens))
        return Proposal(tokens)

    def tell(self, tokens: Tokens, reward: float, info: Dict[str, Any]) -> None:
        self.seen.add(self.space.arch_hash(tokens))

    def state_dict(self) -> Dict[str, Any]:
        return {**super().state_dict(), "seen": sorted(self.seen)}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.seen = set(state["seen"])

"""The ask/tell interface every search strategy implements.

The constructor only stores plain settings (so a trial can record how it was produced);
``setup`` binds a space and a seed; ``ask`` proposes; ``tell`` learns from a finished trial.
All learned state goes through ``state_dict`` / ``load_state_dict`` so a search can resume.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, Optional

import numpy as np

from .. import registry
from ..registry import Registry
from ..spaces.base import SearchSpace, Tokens


@dataclass
class Proposal:
    tokens: Tokens
    info: Dict[str, Any] = field(default_factory=dict)  # JSON values, stored with the trial


class Strategy(ABC):
    name = "strategy"
    #: How many times the strategy has changed its policy (a controller's gradient step); a
    #: strategy that learns in updates counts them. The store keeps the state saved after each
    #: change (what the dashboard's policy view replays); the states in between are replaced.
    updates: int = 0

    def __init__(self, **settings: Any):
        self._settings = dict(settings)
        self.space: Optional[SearchSpace] = None

    def settings(self) -> Dict[str, Any]:
        return dict(self._settings)

    def setup(self, space: SearchSpace, seed: int) -> None:
        self.space = space
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)

    @abstractmethod
    def ask(self) -> Proposal:
        ...

    @abstractmethod
    def tell(self, tokens: Tokens, reward: float, info: Dict[str, Any]) -> None:
        """``reward`` is already transformed; a failed trial arrives with the failure penalty."""

    def state_dict(self) -> Dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]


STRATEGIES: Registry[Strategy] = registry.STRATEGIES  # declared in registry.py, light enough for --help


def create_strategy(name: str, **settings: Any) -> Strategy:
    return STRATEGIES.create(name, **settings)


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run a strategy's own work (a controller over a batch of tens, a small predictor) on one torch
    thread. More threads only contend, with the workers training children on the same cores above
    all: a 100-trial REINFORCE search on a table took 12 to 31 s with torch's default 2 threads on a
    2-core machine running the test suite beside it, and 2.7 to 2.9 s with one."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)

"""Local search with first improvement and random restarts.

White et al. (*Local Search is State of the Art for NAS Benchmarks*, 2020) found this simple
hill climber hard to beat on tabular benchmarks: their neighbourhoods are small and good cells
sit next to other good cells. A run starts from the best of ``initial_samples`` random
architectures, evaluates the neighbours of the current centre (``space.neighbours``, one
decision changed) in random order and moves to the first one that is better. When every
neighbour has been asked without improvement the centre is a local optimum and the search
restarts with fresh random samples. No architecture is proposed twice (by ``arch_hash``), which
also skips neighbours that are isomorphic twins of ones already seen.

Asynchronous use is fine: while results are outstanding, ``ask`` keeps proposing the next
unasked neighbour of the current centre; a result that beats the centre moves it.

``initial_samples`` = 10 was chosen on NAS-Bench-201 and NAS-Bench-Graph with
``benchmarks/search/tune_strategies.py`` (of 1, 5, 10 and 20, 10 and 20 tied; 1 and 5 were worse on the
graph sets).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from ..spaces.base import Tokens
from .base import STRATEGIES, Proposal, Strategy


@STRATEGIES.register("local-search")
class LocalSearch(Strategy):
    name = "local-search"

    def __init__(self, initial_samples: int = 10, max_retries: int = 1000):
        super().__init__(initial_samples=initial_samples, max_retries=max_retries)
        if isinstance(initial_samples, bool) or not isinstance(initial_samples, int) or initial_samples < 1:
            raise ValueError(f"local-search: initial_samples must be a positive integer, got {initial_samples!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 1:
            raise ValueError(f"local-search: max_retries must be a positive integer, got {max_retries!r}")
        self.initial_samples = initial_samples
        self.max_retries = max_retries

    def setup(self, space, seed):
        super().setup(space, seed)
        self.seen: set = set()
        self.restart = 0  # which run (restart) the proposals belong to
        self.init_left = self.initial_samples
        self.center: Optional[Tuple[Tokens, float]] = None
        self.best_init: Optional[Tuple[Tokens, float]] = None  # best told random sample of this run
        self.queue: List[Tokens] = []  # unasked neighbours of the centre, in proposal order

    def _random_unseen(self) -> Tokens:
        tokens = self.space.sample(self.rng)
        for _ in range(self.max_retries):
            if self.space.arch_hash(tokens) not in self.seen:
                break
            tokens = self.space.sample(self.rng)
        return tokens  # only a seen one if the space is (nearly) exhausted

    def _move_to(self, tokens: Tokens, reward: float) -> None:
        self.center = (tuple(tokens), float(reward))
        neighbours = self.space.neighbours(tokens)
        order = self.rng.permutation(len(neighbours))
        self.queue = [neighbours[int(i)] for i in order]

    def _new_run(self) -> None:
        self.restart += 1
        self.init_left = self.initial_samples
        self.center = None
        self.best_init = None
        self.queue = []

    def ask(self) -> Proposal:
        if self.center is None and self.init_left == 0 and self.best_init is not None:
            self._move_to(*self.best_init)
        while self.center is not None and self.queue:
            tokens = self.queue.pop(0)
            if self.space.arch_hash(tokens) not in self.seen:
                return self._propose(tokens, "neighbour")
        if self.center is not None:  # every neighbour asked and none better: a local optimum
            self._new_run()
        if self.init_left > 0:
            self.init_left -= 1
        # Also reached when the random samples are asked but none has been told yet (async).
        return self._propose(self._random_unseen(), "random")

    def _propose(self, tokens: Tokens, kind: str) -> Proposal:
        self.seen.add(self.space.arch_hash(tokens))
        return Proposal(tokens, {"kind": kind, "restart": self.restart})

    def tell(self, tokens: Tokens, reward: float, info: Dict[str, Any]) -> None:
        tokens = tuple(int(t) for t in tokens)
        self.seen.add(self.space.arch_hash(tokens))
        if info.get("restart", self.restart) != self.restart:
            return  # a late result from an abandoned run
        if self.center is None:
            if self.best_init is None or reward > self.best_init[1]:
                self.best_init = (tokens, float(reward))
        elif reward > self.center[1]:
            self._move_to(tokens, reward)  # first improvement

    def state_dict(self) -> Dict[str, Any]:
        return {
            **super().state_dict(),
            "seen": sorted(self.seen),
            "restart": self.restart,
            "init_left": self.init_left,
            "center": None if self.center is None else [list(self.center[0]), self.center[1]],
            "best_init": None if self.best_init is None else [list(self.best_init[0]), self.best_init[1]],
            "queue": [list(t) for t in self.queue],
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.seen = set(state["seen"])
        self.restart = int(state["restart"])
        self.init_left = int(state["init_left"])
        self.center = None if state["center"] is None else (tuple(state["center"][0]), float(state["center"][1]))
        self.best_init = (None if state["best_init"] is None
                          else (tuple(state["best_init"][0]), float(state["best_init"][1])))
        self.queue = [tuple(t) for t in state["queue"]]

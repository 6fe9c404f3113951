"""Predictor-guided Bayesian optimisation after BANANAS (White et al., AAAI 2021).

An ensemble of small MLPs learns reward from an architecture's encoding (``space.path_encoding``
when the space offers one, else the one-hot of its canonical tokens, so isomorphic twins look
alike). The spread of the members' predictions stands in for a Gaussian process's uncertainty.
After ``initial_samples`` random architectures, every ``batch_size`` asks the ensemble is trained
from scratch on all results, candidates are made by mutating the best architectures found (plus
a few random ones), and the best ``batch_size`` candidates by the acquisition function, never
asked before, are proposed. Training once per batch keeps the overhead per trial small.

Acquisition ``"its"`` is independent Thompson sampling (one draw from N(mean, std) per
candidate, BANANAS' choice); ``"ucb"`` is mean + ``ucb_k`` * std.

Defaults were checked on NAS-Bench-201 and NAS-Bench-Graph with ``benchmarks/search/tune_strategies.py``:
100 training steps predict as well as 200 at half the cost; UCB and batches of 20 were no better.
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import numpy as np
import torch

from ..predictors.ensemble import Ensemble
from ..spaces.base import Tokens
from .base import STRATEGIES, Proposal, Strategy

ACQUISITIONS = ("its", "ucb")


def _check(name: str, value: Any, low: float, integer: bool) -> None:
    ok = not isinstance(value, bool) and isinstance(value, int if integer else (int, float)) and value >= low
    if not ok:
        kind = "an integer" if integer else "a number"
        raise ValueError(f"bananas: {name} must be {kind} >= {low}, got {value!r}")


@STRATEGIES.register("bananas")
class Bananas(Strategy):
    name = "bananas"

    def __init__(self, initial_samples: int = 10, batch_size: int = 10, ensemble_size: int = 5,
                 hidden_size: int = 32, hidden_layers: int = 2, train_steps: int = 100,
                 learning_rate: float = 0.01, num_candidates: int = 100, num_parents: int = 10,
                 random_fraction: float = 0.1, acquisition: str = "its", ucb_k: float = 1.0,
                 max_retries: int = 1000):
        super().__init__(initial_samples=initial_samples, batch_size=batch_size, ensemble_size=ensemble_size,
                         hidden_size=hidden_size, hidden_layers=hidden_layers, train_steps=train_steps,
                         learning_rate=learning_rate, num_candidates=num_candidates, num_parents=num_parents,
                         random_fraction=random_fraction, acquisition=acquisition, ucb_k=ucb_k,
                         max_retries=max_retries)
        for name, low in (("initial_samples", 2), ("batch_size", 1), ("ensemble_size", 2), ("hidden_size", 1),
                          ("hidden_layers", 1), ("train_steps", 1), ("num_candidates", 1),
                          ("num_parents", 1), ("max_retries", 1)):
            _check(name, locals()[name], low, integer=True)
        _check("learning_rate", learning_rate, 0, integer=False)
        _check("ucb_k", ucb_k, 0, integer=False)
        if learning_rate == 0:
            raise ValueError(f"bananas: learning_rate must be positive, got {learning_rate!r}")
        if isinstance(random_fraction, bool) or not isinstance(random_fraction, (int, float)) \
                or not 0 <= random_fraction <= 1:
            raise ValueError(f"bananas: random_fraction must be in [0, 1], got {random_fraction!r}")
        if acquisition not in ACQUISITIONS:
            raise ValueError(f"bananas: acquisition must be one of {ACQUISITIONS}, got {acquisition!r}")
        self.s = self.settings()

    def setup(self, space, seed):
        super().setup(space, seed)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.data: List[Tuple[Tokens, float]] = []
        self.queue: List[Tokens] = []
        self.seen: set = set()
        self.asked = 0
        self.fits = 0

    def encode(self, tokens: Tokens) -> np.ndarray:
        if self.space.path_encoding is not None:
            return np.asarray(self.space.path_encoding(tokens), dtype=np.float32)
        return self.space.one_hot(self.space.canonical(tokens))

    def _random_unseen(self) -> Tokens:
        tokens = self.space.sample(self.rng)
        for _ in range(self.s["max_retries"]):
            if self.space.arch_hash(tokens) not in self.seen:
                break
            tokens = self.space.sample(self.rng)
        return tokens

    def _candidates(self) -> List[Tokens]:
        """Mutations of the best results so far and some random architectures, all unseen."""
        s = self.s
        ranked = sorted(range(len(self.data)), key=lambda i: -self.data[i][1])
        parents = [self.data[i][0] for i in ranked[: s["num_parents"]]]
        hashes, result = set(), []
        n_random = int(round(s["num_candidates"] * s["random_fraction"]))
        for i in range(s["num_candidates"] * 3):  # a few spare draws for duplicates
            if len(result) >= s["num_candidates"]:
                break
            if len(result) < s["num_candidates"] - n_random:
                tokens = self.space.mutate(parents[i % len(parents)], self.rng)
            else:
                tokens = self.space.sample(self.rng)
            h = self.space.arch_hash(tokens)
            if h not in self.seen and h not in hashes:
                hashes.add(h)
                result.append(tokens)
        return result

    def _plan_batch(self) -> None:
        s = self.s
        candidates = self._candidates()
        if not candidates:
            self.queue = [self._random_unseen()]
            return
        x = torch.from_numpy(np.stack([self.encode(t) for t, _ in self.data]))
        rewards = np.array([r for _, r in self.data], dtype=np.float32)
        mean, std = float(rewards.mean()), float(rewards.std()) or 1.0
        y = torch.from_numpy((rewards - mean) / std)
        ensemble = Ensemble(s["ensemble_size"], x.shape[1], s["hidden_size"], s["hidden_layers"], self.generator)
        ensemble.fit(x, y, s["train_steps"], s["learning_rate"])
        self.fits += 1
        with torch.no_grad():
            preds = ensemble(torch.from_numpy(np.stack([self.encode(t) for t in candidates]))).numpy()
        mu, sigma = preds.mean(axis=0), preds.std(axis=0)
        if s["acquisition"] == "its":
            score = self.rng.normal(mu, sigma)
        else:
            score = mu + s["ucb_k"] * sigma
        order = np.argsort(-score, kind="stable")[: s["batch_size"]]
        self.queue = [candidates[int(i)] for i in order]

    def ask(self) -> Proposal:
        self.asked += 1
        if self.asked <= self.s["initial_samples"] or len(self.data) < 2:
            return self._propose(self._random_unseen(), "random")
        while self.queue:
            tokens = self.queue.pop(0)
            if self.space.arch_hash(tokens) not in self.seen:  # a result told since planning may match
                return self._propose(tokens, "predicted")
        self._plan_batch()
        return self._propose(self.queue.pop(0), "predicted")

    def _propose(self, tokens: Tokens, kind: str) -> Proposal:
        self.seen.add(self.space.arch_hash(tokens))
        return Proposal(tokens, {"kind": kind, "fits": self.fits})

    def tell(self, tokens: Tokens, reward: float, info: Dict[str, Any]) -> None:
        tokens = tuple(int(t) for t in tokens)
        self.seen.add(self.space.arch_hash(tokens))
        self.data.append((tokens, float(reward)))

    def state_dict(self) -> Dict[str, Any]:
        return {
            **super().state_dict(),
            "generator": self.generator.get_state(),
            "data": [[list(t), r] for t, r in self.data],
            "queue": [list(t) for t in self.queue],
            "seen": sorted(self.seen),
            "asked": self.asked,
            "fits": self.fits,
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.generator.set_state(state["generator"])
        self.data = [(tuple(t), float(r)) for t, r in state["data"]]
        self.queue = [tuple(t) for t in state["queue"]]
        self.seen = set(state["seen"])
        self.asked = int(state["asked"])
        self.fits = int(state["fits"])

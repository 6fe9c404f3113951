"""Regularized (aging) evolution, after Real et al., *Regularized Evolution for Image Classifier
Architecture Search* (AAAI 2019).

A population of the ``population_size`` most recently evaluated architectures. Each child is a
one-decision mutation of the best of ``sample_size`` members drawn at random (a tournament), and
the oldest member, not the worst, leaves when a child joins: good architectures must keep being
rediscovered, which protects against one lucky evaluation dominating. Until the population has
been filled, children are uniform random samples.

Asynchronous use is fine: ``ask`` only needs the current population, so several asks may be
outstanding before their results arrive. With ``dedup`` (the default; the paper has none) a
child whose ``arch_hash`` was already asked is mutated again, then replaced by a random unseen
architecture, so every query of a tabular benchmark or a costly training teaches something new.

Defaults (population 30, tournament 20) were chosen on NAS-Bench-201 and NAS-Bench-Graph with
``benchmarks/search/tune_strategies.py``: strong selection pressure (tournaments of half the population
or more) won at both 100 and 300 queries; the paper's 100 / 25 spends too long on random samples
for budgets of a few hundred.

Multi-objective mode (``objectives=["val_acc:max", "latency_ms:min"]``): the tournament winner
is decided by NSGA-II's crowded comparison (Deb et al., 2002) instead of the reward: the lowest
non-domination rank within the population, then the largest crowding distance, so parents
spread along the whole trade-off rather than crowd at one end. Each member's objective values
come from ``info["metrics"]`` when it is told (a name without ``:max`` / ``:min`` takes the
metric's registered direction). Following Deb's constraint handling, members with every value
and ``info["feasible"]`` true come first, then infeasible ones, then those without the metrics
(failed trials), the last two ordered by reward. Ageing is unchanged: the oldest member leaves.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..objectives.registry import DIRECTION_ALIASES, METRICS
from ..objectives.pareto import rank_and_crowding
from ..spaces.base import Tokens
from .base import STRATEGIES, Proposal, Strategy



def parse_objectives(objectives: Sequence[str]) -> Tuple[List[str], List[str]]:
    """``["val_acc:max", "latency_ms"]`` -> (metric names, directions); a bare name takes the
    registered direction of the metric."""
    if isinstance(objectives, str) or not isinstance(objectives, (list, tuple)) or not objectives:
        raise ValueError(f"evolution: objectives must be a non-empty list such as ['val_acc:max', "
                         f"'latency_ms:min'], got {objectives!r}")
    names: List[str] = []
    directions: List[str] = []
    for item in objectives:
        if not isinstance(item, str) or not item.strip():
            raise ValueError(f"evolution: objective {item!r} must be a string METRIC or METRIC:max|min")
        name, sep, direction = item.strip().partition(":")
        if sep:
            if direction not in DIRECTION_ALIASES:
                raise ValueError(f"evolution: objective {item!r}: direction must be max or min")
            direction = DIRECTION_ALIASES[direction]
        elif name in METRICS:
            direction = METRICS[name].direction
        else:
            raise ValueError(f"evolution: objective {item!r}: unknown metric; write {name}:max or {name}:min")
        if name in names:
            raise ValueError(f"evolution: objective {name!r} given twice")
        names.append(name)
        directions.append(direction)
    return names, directions


@STRATEGIES.register("evolution")
class RegularizedEvolution(Strategy):
    name = "evolution"

    def __init__(self, population_size: int = 30, sample_size: int = 20, dedup: bool = True,
                 max_retries: int = 50, objectives: Optional[Sequence[str]] = None):
        super().__init__(population_size=population_size, sample_size=sample_size, dedup=dedup,
                         max_retries=max_retries, objectives=None if objectives is None else list(objectives))
        self.objectives: Optional[List[str]] = None
        self.directions: List[str] = []
        if objectives is not None:
            self.objectives, self.directions = parse_objectives(objectives)
        if isinstance(population_size, bool) or not isinstance(population_size, int) or population_size < 2:
            raise ValueError(f"evolution: population_size must be an integer >= 2, got {population_size!r}")
        if isinstance(sample_size, bool) or not isinstance(sample_size, int) \
                or not 1 <= sample_size <= population_size:
            raise ValueError(
                f"evolution: sample_size must be an integer in 1..population_size ({population_size}), "
                f"got {sample_size!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 1:
            raise ValueError(f"evolution: max_retries must be a positive integer, got {max_retries!r}")
        self.population_size = population_size
        self.sample_size = sample_size
        self.dedup = bool(dedup)
        self.max_retries = max_retries

    def setup(self, space, seed):
        super().setup(space, seed)
        # oldest first: (tokens, reward, objective values or None, feasible)
        self.population: List[Tuple[Tokens, float, Optional[Tuple[float, ...]], bool]] = []
        self.asked = 0
        self.seen: set = set()

    def _unseen(self, make) -> Tokens:
        """``make()`` until it gives an architecture not asked before (or retries run out)."""
        tokens = make()
        if self.dedup:
            for _ in range(self.max_retries):
                if self.space.arch_hash(tokens) not in self.seen:
                    break
                tokens = make()
        return tokens

    def ask(self) -> Proposal:
        self.asked += 1
        if self.asked <= self.population_size or not self.population:
            tokens = self._unseen(lambda: self.space.sample(self.rng))
            info: Dict[str, Any] = {"origin": "random"}
        else:
            picks = self.rng.choice(len(self.population), size=min(self.sample_size, len(self.population)),
                                    replace=False)
            if self.objectives is None:
                parent = max((self.population[int(i)] for i in picks), key=lambda member: member[1])[0]
            else:
                keys = self._crowded_keys()
                parent = self.population[min((int(i) for i in picks), key=lambda i: keys[i])][0]
            tokens = self._unseen(lambda: self.space.mutate(parent, self.rng))
            if self.dedup and self.space.arch_hash(tokens) in self.seen:
                tokens = self._unseen(lambda: self.space.sample(self.rng))
            info = {"origin": "mutation", "parent": list(parent)}
        self.seen.add(self.space.arch_hash(tokens))
        return Proposal(tokens, info)

    def _crowded_keys(self) -> List[Tuple[float, ...]]:
        """Sort key of every member, smaller = better parent (see the module docstring)."""
        complete = [i for i, m in enumerate(self.population) if m[2] is not None and m[3]]
        keys: List[Tuple[float, ...]] = [(1.0 if m[2] is not None else 2.0, -m[1], 0.0) for m in self.population]
        if complete:
            ranks, crowding = rank_and_crowding([self.population[i][2] for i in complete], self.directions)
            for i, rank, crowd in zip(complete, ranks, crowding):
                keys[i] = (0.0, float(rank), -float(crowd))
        return keys

    def _vector(self, info: Dict[str, Any]) -> Optional[Tuple[float, ...]]:
        metrics = info.get("metrics") or {}
        try:
            values = tuple(float(metrics[name]) for name in self.objectives or ())
        except (KeyError, TypeError, ValueError):
            return None
        return values if all(math.isfinite(v) for v in values) else None

    def tell(self, tokens: Tokens, reward: float, info: Dict[str, Any]) -> None:
        self.seen.add(self.space.arch_hash(tokens))
        vector = self._vector(info) if self.objectives is not None else None
        self.population.append((tuple(int(t) for t in tokens), float(reward), vector,
                                bool(info.get("feasible", True))))
        if len(self.population) > self.population_size:
            self.population.pop(0)  # the oldest dies, whatever its reward

    def state_dict(self) -> Dict[str, Any]:
        return {
            **super().state_dict(),
            "population": [[list(t), r] if self.objectives is None else
                           [list(t), r, [] if v is None else list(v), f] for t, r, v, f in self.population],
            "asked": self.asked,
            "seen": sorted(self.seen),
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.population = [(tuple(m[0]), float(m[1]), tuple(m[2]) if len(m) > 2 and m[2] else None,
                            bool(m[3]) if len(m) > 3 else True) for m in state["population"]]
        self.asked = int(state["asked"])
        self.seen = set(state["seen"])

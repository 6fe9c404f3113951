"""Every strategy must actually search: beat a deliberately bad baseline where the answer is known.

Synthetic problem: six decisions of five choices (15,625 architectures, like NAS-Bench-201) and
reward = the fraction of decisions equal to a hidden target, so the best possible is 1. Every
strategy must beat one that keeps proposing the same random architecture, and all but random
search must beat random search. A realistic check on NAS-Bench-201 (tabular, val_acc) follows.
Seeds are fixed, so the outcomes are deterministic; the margins are wide.
"""

from __future__ import annotations

import statistics

import numpy as np
import pytest

import nasforge  # noqa: F401  (registers the benchmark spaces)
from nasforge.estimators.base import create_estimator
from nasforge.spaces import create_space
from nasforge.spaces.base import Decision, SearchSpace
from nasforge.strategies import STRATEGIES, create_strategy
from nasforge.strategies.base import Proposal, Strategy

SEEDS = (0, 1, 2, 3, 4)

# The controller strategies learn slowly at the paper's learning rate (0.0006, kept as the default
# for real searches); with a cheap reward a higher one shows that they learn at all.
SETTINGS = {
    "reinforce": {"learning_rate": 0.02, "entropy_weight": 0.003},  # the recommended benchmark settings
    # a smaller, less often refitted model: the same result here (0.9), 7 s instead of 52 s
    "predictor-filter": {"refit_every": 5, "predictor_settings": {"n_estimators": 50}},
}


class TargetSpace(SearchSpace):
    name = "target"

    @property
    def decisions(self):
        return [Decision(f"d{i}", tuple(range(5))) for i in range(6)]


class SameArchitecture(Strategy):
    """The bad baseline: one random architecture, proposed again and again."""

    def setup(self, space, seed):
        super().setup(space, seed)
        self.tokens = space.sample(self.rng)

    def ask(self):
        return Proposal(self.tokens)

    def tell(self, tokens, reward, info):
        pass


def best_found(strategy: Strategy, space, reward, budget: int, seed: int) -> float:
    strategy.setup(space, seed)
    best = -np.inf
    for _ in range(budget):
        proposal = strategy.ask()
        r = reward(proposal.tokens)
        strategy.tell(proposal.tokens, r, proposal.info)
        best = max(best, r)
    return best


def mean_best(make, budget: int) -> float:
    space = TargetSpace()
    results = []
    for seed in SEEDS:
        target = np.random.default_rng(100 + seed).integers(5, size=6)
        results.append(best_found(make(), space, lambda t: float(np.mean(np.array(t) == target)), budget, seed))
    return statistics.mean(results)


# enumerate walks the space in a fixed order, to tabulate it, not to search it
SEARCHERS = [n for n in STRATEGIES.names() if n != "enumerate"]


@pytest.mark.parametrize("name", SEARCHERS)
def test_beats_the_same_architecture_and_random_search(name):
    found = mean_best(lambda: create_strategy(name, **SETTINGS.get(name, {})), 100)
    assert found > mean_best(SameArchitecture, 100) + 0.3
    if name != "random":
        assert found > mean_best(lambda: create_strategy("random"), 100) + 0.15


def nb201_regret(name: str, settings, budget: int) -> float:
    space = create_space("nb201-cifar10")
    estimator = create_estimator("tabular")
    estimator.setup(space)
    top = space.best("val_acc")["val_acc"]
    return 100 * (top - statistics.mean(
        best_found(create_strategy(name, **settings), space,
                   lambda t: estimator.evaluate(t, 0)["val_acc"], budget, seed) for seed in SEEDS))


@pytest.mark.parametrize("name", ["evolution", "local-search", "bananas", "tpe", "reinforce-elite"])
def test_nb201_search_and_model_based_strategies_beat_random_at_100_queries(name):
    assert nb201_regret(name, {}, 100) < 0.5 * nb201_regret("random", {}, 100)


@pytest.mark.parametrize("name", ["reinforce", "ppo"])
def test_nb201_controllers_beat_random_at_300_queries(name):
    assert nb201_regret(name, SETTINGS.get(name, {}), 300) < 0.7 * nb201_regret("random", {}, 300)

"""Search strategies, chosen by name: ``create_strategy("reinforce")``."""

from . import bananas, evolution, local_search, ppo, random_search, reinforce, tpe  # noqa: F401  (registration)
from .base import STRATEGIES, Proposal, Strategy, create_strategy

__all__ = ["STRATEGIES", "Proposal", "Strategy", "create_strategy"]

"""Search strategies, chosen by name: ``create_strategy("reinforce")``."""

from . import (bananas, enumerate_space, evolution, local_search, ppo, predictor_filter,  # noqa: F401
               random_search, reinforce, tpe)  # registration
from .base import STRATEGIES, Proposal, Strategy, create_strategy

__all__ = ["STRATEGIES", "Proposal", "Strategy", "create_strategy"]

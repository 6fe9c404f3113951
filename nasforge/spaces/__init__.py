"""Search spaces, chosen by name: ``create_space("chain-cnn", num_layers=6)``."""

from . import chain_cnn  # noqa: F401  (registration)
from .base import SPACES, Decision, InvalidArchitectureError, SearchSpace, create_space

__all__ = ["SPACES", "Decision", "InvalidArchitectureError", "SearchSpace", "create_space"]

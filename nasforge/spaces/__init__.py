"""Search spaces, chosen by name: ``create_space("chain-cnn", num_layers=6)``. The registry imports
a space's module when its name is first asked for, so importing this package imports no torch."""

from .base import SPACES, Decision, InvalidArchitectureError, SearchSpace, create_space

__all__ = ["SPACES", "Decision", "InvalidArchitectureError", "SearchSpace", "create_space"]

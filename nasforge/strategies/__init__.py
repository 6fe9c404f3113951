"""Search strategies, chosen by name: ``create_strategy("reinforce")``.

Each built-in is imported on its first use (``registry.STRATEGIES`` declares where it lives), so
importing one strategy, or the controller, does not import them all: BANANAS' predictors alone
pull SciPy's statistics (about 1 s of CPU), which a search with REINFORCE or a report never uses."""

from .base import STRATEGIES, Proposal, Strategy, create_strategy

__all__ = ["STRATEGIES", "Proposal", "Strategy", "create_strategy"]

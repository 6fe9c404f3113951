"""What every estimator is: something that turns an architecture into measured metrics.

Training a child, looking it up in a table, scoring it with a proxy or a predictor all fit here.
An estimator never knows which strategy asked. Accuracies are fractions in [0, 1].
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Dict, FrozenSet, Optional

from .. import registry
from ..registry import Registry
from ..spaces.base import SearchSpace, Tokens


class TrialFailed(Exception):
    """An architecture that could not be evaluated (NaN loss, too large, ...): fails its trial only."""


class Estimator(ABC):
    name = "estimator"

    def __init__(self, **settings: Any):
        self._settings = dict(settings)
        self.context: Dict[str, Any] = {}  # what the search tells about the trial at hand (set per task)

    def settings(self) -> Dict[str, Any]:
        return dict(self._settings)

    def setup(self, space: SearchSpace, data: Any = None) -> None:
        """Bind the space (and the dataset, for estimators that use one); raise ValueError if
        this estimator cannot evaluate the space."""
        self.space = space
        self.data = data

    @abstractmethod
    def evaluate(self, tokens: Tokens, seed: int) -> Dict[str, Any]:
        """Metrics of one architecture; raise TrialFailed for a bad architecture."""

    def produces(self) -> Optional[FrozenSet[str]]:
        """The names of the metrics :meth:`evaluate` returns (after :meth:`setup`), so that a
        search refuses an objective it could never compute before any trial runs. None: not
        known in advance (an estimator that does not say is not checked)."""
        return None


ESTIMATORS: Registry[Estimator] = registry.ESTIMATORS  # declared in registry.py, light enough for --help


def create_estimator(name: str, **settings: Any) -> Estimator:
    return ESTIMATORS.create(name, **settings)

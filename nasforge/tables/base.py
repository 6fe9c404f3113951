"""The tabular contract: a space whose architectures are looked up, and the estimator that looks.

Here, below the tables themselves (``nb201.py``, ``nbgraph.py``, ``own_table.py`` subclass
:class:`TabularSpace`), so that they import it from a module that imports none of them.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, Dict, FrozenSet, Sequence

import numpy as np

from ..estimators.base import ESTIMATORS, Estimator, TrialFailed
from ..spaces.base import InvalidArchitectureError, SearchSpace, Tokens


class TabularSpace(SearchSpace):
    """A search space backed by a lookup table of measured metrics.

    ``lookup`` gives one architecture's metrics (accuracies as fractions), ``all_metrics`` the
    whole table as numpy arrays (for best achievable values and regrets), ``notes`` says what the
    numbers are, and ``seconds_per_query`` is the simulated cost of one lookup.
    ``lookup_extras`` names what ``lookup`` adds beyond the table's columns (the estimator declares
    them as metrics it produces).
    """

    notes: str = ""
    lookup_extras: FrozenSet[str] = frozenset()
    seconds_per_query: float = 1.0
    lookup_estimator = "tabular"
    lookup_settings = ("seconds_per_query",)

    @abstractmethod
    def lookup(self, tokens: Sequence[int]) -> Dict[str, float]:
        """Metrics of one architecture; InvalidArchitectureError if it is not in the space."""

    @abstractmethod
    def all_metrics(self) -> Dict[str, np.ndarray]:
        """Every row of the table: one array per metric, plus ``tokens`` (rows x decisions)."""

    def best(self, metric: str = "val_acc") -> Dict[str, Any]:
        """The row with the highest ``metric`` (first one on ties), with its tokens."""
        table = self.all_metrics()
        row = int(np.argmax(table[metric]))
        result = {k: v[row].item() for k, v in table.items() if k != "tokens"}
        result["tokens"] = tuple(int(t) for t in table["tokens"][row])
        return result


@ESTIMATORS.register("tabular")
class TabularEstimator(Estimator):
    """Looks architectures up in the space's table: exact, deterministic, instant.

    The seed is ignored (the tables hold one value per architecture). ``simulated_seconds`` is
    what the query would have cost: the space's ``seconds_per_query`` unless the setting
    ``seconds_per_query`` overrides it.
    """

    name = "tabular"

    def setup(self, space: SearchSpace, data: Any = None) -> None:
        """``data`` is ignored: the table holds every answer."""
        if not isinstance(space, TabularSpace):
            raise ValueError(
                f"the tabular estimator needs a benchmark space (nb201-cifar10, nbgraph-...), "
                f"got {getattr(space, 'name', type(space).__name__)!r}"
            )
        seconds = self._settings.get("seconds_per_query")
        if seconds is not None and not float(seconds) >= 0:
            raise ValueError(f"seconds_per_query must be non-negative, got {seconds}")
        super().setup(space)

    def produces(self) -> FrozenSet[str]:
        columns = set(self.space.all_metrics()) - {"tokens", "key"}
        return frozenset(columns | self.space.lookup_extras | {"simulated_seconds"})

    def evaluate(self, tokens: Tokens, seed: int) -> Dict[str, Any]:
        try:
            metrics = dict(self.space.lookup(tokens))
        except InvalidArchitectureError as error:
            raise TrialFailed(str(error)) from error
        seconds = self._settings.get("seconds_per_query")
        metrics["simulated_seconds"] = float(self.space.seconds_per_query if seconds is None else seconds)
        return metrics

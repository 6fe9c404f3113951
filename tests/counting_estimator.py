"""A plugin estimator for the protocol tests: it learns across trials (a counter, saved through the
checkpoint hooks), evaluates only in the search's process, and reports early stops under metric
names of its own, declared in ``fidelity_metrics``."""

from __future__ import annotations

from pathlib import Path

from nasforge.estimators.base import ESTIMATORS, Estimator, FidelityMetrics


@ESTIMATORS.register("counting")
class CountingEstimator(Estimator):
    name = "counting"
    in_process_only = True
    fidelity_metrics = FidelityMetrics(metric="score", history="score_history", promised="score_promised",
                                       pruned_at="stopped_at")

    def __init__(self, **settings):
        super().__init__(**settings)
        self.count = 0

    def evaluate(self, tokens, seed):
        self.count += 1
        metrics = {"score": 0.5, "count": self.count}
        if self.count % 2:  # every other child "stops early" and promises a lower score
            metrics.update({"stopped_at": 1, "score_promised": 0.1})
        return metrics

    def save(self, path: Path) -> None:
        Path(path).write_text(str(self.count))

    def load(self, path: Path) -> None:
        self.count = int(Path(path).read_text())

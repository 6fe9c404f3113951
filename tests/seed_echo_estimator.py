"""A plugin estimator for tests: ``faulty_estimator``'s plan of failures, plus the seed the worker
was handed reported as a metric, so a test can see which seed a trial really ran with."""

from __future__ import annotations

from faulty_estimator import FaultyEstimator

from nasforge.estimators.base import ESTIMATORS


@ESTIMATORS.register("faulty-seed-echo")
class SeedEchoEstimator(FaultyEstimator):
    name = "faulty-seed-echo"

    def evaluate(self, tokens, seed):
        return {**super().evaluate(tokens, seed), "seed_used": int(seed)}

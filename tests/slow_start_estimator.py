"""A plugin estimator for tests: the ``faulty`` estimator (tests/faulty_estimator.py) whose build
takes ``start_seconds``, as a worker's first import of torch and load of the data do."""

from __future__ import annotations

import time

from faulty_estimator import FaultyEstimator
from nasforge.estimators.base import ESTIMATORS


@ESTIMATORS.register("slow-start-faulty")
class SlowStartFaultyEstimator(FaultyEstimator):
    name = "slow-start-faulty"

    def __init__(self, start_seconds=0.0, **settings):
        super().__init__(**settings)
        time.sleep(float(start_seconds))  # in the build, which every worker pays before its first trial

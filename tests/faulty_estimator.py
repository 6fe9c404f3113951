"""A plugin estimator for tests: the k-th evaluation (counted across every worker and restart,
in a file) behaves as ``plan[k]`` says: ok, crash, hang, memory, raise or nan."""

from __future__ import annotations

import fcntl
import os
import signal
import time

import numpy as np

from nasforge.estimators.base import ESTIMATORS, Estimator


def next_index(path: str) -> int:
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        k = len(f.read())
        f.write(".")
        return k


@ESTIMATORS.register("faulty")
class FaultyEstimator(Estimator):
    name = "faulty"

    def __init__(self, plan=(), counter="", seconds=0.0):
        super().__init__(plan=list(plan), counter=counter, seconds=seconds)
        self.plan, self.counter, self.seconds = list(plan), counter, float(seconds)

    def evaluate(self, tokens, seed):
        k = next_index(self.counter)
        behaviour = self.plan[k] if k < len(self.plan) else "ok"
        time.sleep(self.seconds)
        if behaviour == "crash":
            os.kill(os.getpid(), signal.SIGKILL)
        if behaviour == "hang":
            time.sleep(3600)
        if behaviour == "memory":
            hog = [np.ones(100 * 2 ** 20, dtype=np.uint8) for _ in range(30)]  # 3 GiB, touched
            time.sleep(3600)
            return {"val_acc": float(len(hog))}
        if behaviour == "raise":
            raise RuntimeError("this child raises on purpose")
        if behaviour == "nan":
            return {"val_acc": float("nan")}
        return {"val_acc": 0.5 + 0.01 * (sum(tokens) % 10), "evaluation": k}

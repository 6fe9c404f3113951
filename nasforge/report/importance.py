"""Decision importance: how much each decision explains the objective, from scikit-learn's random
forest (a kept library, not a hand-written model). fANOVA, through Optuna, took 25 s for 1,000
trials here: too slow for a report or a live page.

Importing scikit-learn costs about 1.5 s of CPU (it pulls SciPy's statistics and pandas), as much
as torch, which only the policy view needs. ``InBackground`` lets the report pay the two at once:
a second process imports scikit-learn and fits the forest while this one reads the store and
imports torch."""

from __future__ import annotations

import sys
from typing import Any, Callable, Dict, Sequence


def importance(space, rows, min_trials: int = 8) -> Dict[str, Any]:
    """The forest on the completed trials' tokens; impurity-based importances, normalised to sum
    to 1, largest first."""
    return importance_of([d.name for d in space.decisions], _usable(rows), min_trials)


def _usable(rows) -> list:
    return [{"objective": r["objective"], "tokens": r["tokens"]} for r in rows
            if r["state"] == "COMPLETE" and r["objective"] is not None]


def importance_of(names: Sequence[str], usable: Sequence[Dict[str, Any]], min_trials: int = 8) -> Dict[str, Any]:
    import numpy as np
    from sklearn.ensemble import RandomForestRegressor

    if len(usable) < min_trials:
        return {"reason": f"needs at least {min_trials} completed trials ({len(usable)} so far)"}
    y = np.asarray([r["objective"] for r in usable], dtype=float)
    if np.ptp(y) == 0:
        return {"reason": "every completed trial has the same objective: nothing to explain"}
    x = np.asarray([r["tokens"] for r in usable], dtype=float)
    forest = RandomForestRegressor(n_estimators=48, min_samples_leaf=2, random_state=0, n_jobs=1).fit(x, y)
    values = forest.feature_importances_  # a property that averages every tree's: read it once
    order = np.argsort(-values)
    return {"method": "random forest (scikit-learn), mean decrease in impurity",
            "trials": len(usable), "decisions": [names[i] for i in order],
            "values": [float(values[i]) for i in order]}


def _warm() -> None:
    import sklearn.ensemble  # noqa: F401 - paid while the parent imports torch


class InBackground:
    """``importance`` in a forked process that starts importing scikit-learn at once: ``start``
    hands it the trials and returns what gives the answer, so the caller works meanwhile. Forked
    before this process imports torch (no threads are copied), and only where fork is the
    platform's way (Linux); elsewhere the work is done in this process. ``close`` when done."""

    def __init__(self):
        self.pool = None
        if sys.platform.startswith("linux") and "torch" not in sys.modules:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
            self.pool.submit(_warm)

    def start(self, space, rows) -> Callable[[], Dict[str, Any]]:
        if self.pool is not None:
            try:
                return self.pool.submit(importance_of, [d.name for d in space.decisions], _usable(rows)).result
            except RuntimeError:  # the second process is gone (BrokenProcessPool): do it here
                self.pool = None
        return in_process(space, rows)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)


def in_process(space, rows) -> Callable[[], Dict[str, Any]]:
    """The same interface as ``InBackground.start``, computed when asked, here."""
    return lambda: importance(space, rows)

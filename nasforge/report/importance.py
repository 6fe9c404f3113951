"""Decision importance: how much each decision explains the objective, from scikit-learn's random
forest (a kept library, not a hand-written model). fANOVA, through Optuna, took 25 s for 1,000
trials here: too slow for a report or a live page.

Importing scikit-learn costs about 1.5 s of CPU (it pulls SciPy's statistics and pandas): the report
fits the forest in a second process (``background.py``)."""

from __future__ import annotations

from typing import Any, Callable, Dict, Sequence


def importance(space, rows, min_trials: int = 8) -> Dict[str, Any]:
    """The forest on the completed trials' tokens; impurity-based importances, normalised to sum
    to 1, largest first."""
    return importance_of([d.name for d in space.decisions], usable_rows(rows), min_trials)


def usable_rows(rows) -> list:
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


def in_process(space, rows) -> Callable[[], Dict[str, Any]]:
    """What ``background.InBackground.importance`` gives, computed when asked, here."""
    return lambda: importance(space, rows)

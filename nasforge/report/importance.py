"""Decision importance: how much each decision explains the objective, from scikit-learn's random
forest (a kept library, not a hand-written model). fANOVA, through Optuna, took 25 s for 1,000
trials here: too slow for a report or a live page."""

from __future__ import annotations

from typing import Any, Dict


def importance(space, rows, min_trials: int = 8) -> Dict[str, Any]:
    """The forest on the completed trials' tokens; impurity-based importances, normalised to sum
    to 1, largest first."""
    import numpy as np
    from sklearn.ensemble import RandomForestRegressor

    usable = [r for r in rows if r["state"] == "COMPLETE" and r["objective"] is not None]
    if len(usable) < min_trials:
        return {"reason": f"needs at least {min_trials} completed trials ({len(usable)} so far)"}
    y = np.asarray([r["objective"] for r in usable], dtype=float)
    if np.ptp(y) == 0:
        return {"reason": "every completed trial has the same objective: nothing to explain"}
    x = np.asarray([r["tokens"] for r in usable], dtype=float)
    forest = RandomForestRegressor(n_estimators=48, min_samples_leaf=2, random_state=0, n_jobs=1).fit(x, y)
    values = forest.feature_importances_  # a property that averages every tree's: read it once
    names = [d.name for d in space.decisions]
    order = np.argsort(-values)
    return {"method": "random forest (scikit-learn), mean decrease in impurity",
            "trials": len(usable), "decisions": [names[i] for i in order],
            "values": [float(values[i]) for i in order]}

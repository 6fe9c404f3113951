"""What the dashboard and the HTML report show, computed from an experiment's store alone.

Everything here only reads: the store is opened read-only (a search writing it is never waited
for nor locked), and nothing is written next to it. The result is plain JSON-able data; the page
(``page.js``) draws it with plotly. The parts that cost more than reading the trials (Pareto fronts
with hypervolume, the controller's policy over updates, decision importance: ``pareto_view``,
``learning`` and ``importance``) are computed only when asked (``heavy``), so that the live
dashboard can refresh them less often and cache them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .values import as_number, direction_of


class NothingToShow(ValueError):
    """An experiment whose store holds no search yet (bad input for ``report``, a wait for a dashboard)."""


def open_readonly(experiment: Path):
    """The experiment's store, read-only; a clear error when there is none."""
    from ..store import Store, StoreError, store_path

    path = store_path(experiment)
    if not Path(experiment).exists():
        raise StoreError(f"no experiment folder {experiment}")
    if not path.exists():
        raise NothingToShow(f"{experiment} holds no store yet ({path.name}): no search has started there")
    return Store(path, create=False, readonly=True)


def fingerprint(store) -> Tuple:
    """Changes whenever a trial is added or finished, a state saved or an evaluation stored: a
    cheap question a polling dashboard asks instead of re-reading everything."""
    row = store.conn.execute(
        "SELECT (SELECT COUNT(*) FROM trials), (SELECT MAX(id) FROM trials), "
        "(SELECT MAX(COALESCE(finished, 0)) FROM trials), (SELECT MAX(id) FROM strategy_states), "
        "(SELECT COUNT(*) FROM evaluations), (SELECT value FROM meta WHERE key = 'config')").fetchone()
    return tuple(row[:5]) + (hash(row[5]),)


# ---- settings, trials, progress, workers --------------------------------------------------


def _settings(config: Dict[str, Any]) -> Dict[str, Any]:
    reward = config.get("reward", {})
    metric = reward.get("metric", "val_acc") if not reward.get("weights") else "objective"
    try:
        from ..objectives.rewards import Scorer

        direction = Scorer.from_config(reward).direction
    except (TypeError, ValueError, KeyError):  # settings of an older nasforge: the metric's own direction
        direction = direction_of(metric) or "maximize"
    constraints = reward.get("constraints") or []
    return {"space": config["space"]["name"], "strategy": config["strategy"]["name"],
            "dataset": config.get("dataset"), "budget": config.get("budget"), "seed": config.get("seed"),
            "metric": metric, "direction": direction,
            "constraints": [constraints] if isinstance(constraints, str) else list(constraints),
            "strategy_settings": {k: v for k, v in config["strategy"].items() if k != "name"}}


def trial_rows(trials, space, start: float, now: float) -> Tuple[List[Dict[str, Any]], List[str]]:
    """One row per trial (numeric metrics only, its drawing key ``arch``, its own summary) and the
    metric names seen. Summaries go by tokens, not by hash: twins under the hash (isomorphic cells,
    one update rule written two ways) each show what they were written as."""
    rows, names, summaries = [], [], {}
    seen = set()
    for t in trials:
        metrics = {}
        for name, value in t.metrics.items():
            v = as_number(value)
            if v is not None:
                metrics[name] = v
                if name not in seen:
                    seen.add(name)
                    names.append(name)
        written = tuple(t.tokens)
        if written not in summaries:
            try:
                summaries[written] = space.summary(t.tokens)
            except Exception as exc:  # noqa: BLE001 - a stored architecture the space now refuses
                summaries[written] = f"(cannot be read: {exc})"
        end = t.finished if t.finished is not None else (now if t.state == "RUNNING" else None)
        rows.append({
            "id": t.id, "number": t.number, "attempt": t.attempt, "state": t.state,
            "objective": as_number(t.objective), "reward": as_number(t.reward), "feasible": bool(t.feasible),
            "start": None if t.started is None else round(t.started - start, 3),
            "end": None if end is None else round(end - start, 3),
            "duration": None if t.duration is None else round(t.duration, 3),
            "worker": t.worker or ("driver" if t.state != "RUNNING" else "running"),
            "error": t.error, "metrics": metrics, "arch": t.arch_hash, "summary": summaries[written],
            "tokens": list(t.tokens),
        })
    return rows, names


def best_so_far(rows: Sequence[Dict[str, Any]], direction: str) -> List[Optional[float]]:
    """The best feasible completed objective after each trial, in trial order (None before one)."""
    out, best = [], None
    better = (lambda a, b: a > b) if direction == "maximize" else (lambda a, b: a < b)
    for r in rows:
        v = r["objective"]
        if r["state"] == "COMPLETE" and r["feasible"] and v is not None and (best is None or better(v, best)):
            best = v
        out.append(best)
    return out


def final_results(store, experiment: Path, rows: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Retrain and final-selection records (scalars only) and the export folder's files."""
    number_of = {r["id"]: r["number"] for r in rows}
    evaluations = []
    for e in store.evaluations():
        scalars = {k: v for k, v in e["metrics"].items() if as_number(v) is not None}
        texts = {k: v for k, v in e["metrics"].items() if isinstance(v, str) and len(v) < 200}
        evaluations.append({"kind": e["kind"], "trial": number_of.get(e["trial_id"]), "metrics": scalars,
                            "notes": texts, "created": e["created"]})
    export_dir = Path(experiment) / "export"
    files = []
    if export_dir.is_dir():
        for p in sorted(export_dir.rglob("*")):
            if p.is_file():
                files.append({"path": str(p.relative_to(experiment)), "bytes": p.stat().st_size})
    return {"evaluations": evaluations, "export": files}


def experiment_data(experiment: Path, heavy: bool = True, drawings: bool = True,
                    cache: Optional[Dict[str, Any]] = None, store=None, background=None) -> Dict[str, Any]:
    """Everything the views show for one experiment. ``heavy``: also the Pareto fronts, the policy
    or population view and the decision importance (what a live page refreshes less often).
    ``cache`` (a dict the caller keeps) saves reading the settings and building the space again,
    re-computing the policy of a stored controller state already seen and re-drawing architectures;
    ``store``: an open read-only store to use (and leave open) instead of opening one;
    ``background``: where decision importance and the learning view are computed
    (``background.InBackground``; default here, when it is shown)."""
    import sqlite3

    from ..store import StoreError

    experiment = Path(experiment)
    try:
        if store is not None:
            return _experiment_data(experiment, store, heavy, drawings, cache, background)
        with open_readonly(experiment) as opened:
            return _experiment_data(experiment, opened, heavy, drawings, cache, background)
    except sqlite3.DatabaseError as exc:  # read outside the store's own methods (kept states)
        raise StoreError(f"{experiment}: its store cannot be read ({exc}); if it is damaged, restore it from a "
                         "backup or salvage it with `sqlite3 trials.sqlite .recover`") from None


def _settings_and_space(store, cache: Optional[Dict[str, Any]]):
    """The stored config (complete, migrated) and the space it names; cached while the stored
    config text stays the same."""
    from ..stored_config import read_config
    from ..spaces.base import space_of_section

    raw = store.get_meta("config")
    known = (cache or {}).get("config")
    if known is not None and known[0] == raw:
        return known[1], known[2]
    config = read_config(store)
    if config is None:
        return None, None
    space = space_of_section(config["space"])
    if cache is not None:
        cache["config"] = (raw, config, space)
    return config, space


def _experiment_data(experiment: Path, store, heavy: bool, drawings: bool,
                     cache: Optional[Dict[str, Any]], background=None) -> Dict[str, Any]:
    config, space = _settings_and_space(store, cache)
    if config is None:
        raise NothingToShow(f"{experiment}: the search has created its store but not yet written its "
                            "settings; try again in a moment")
    trials = store.trials()
    now = time.time()
    start = min((t.started for t in trials if t.started is not None), default=now)
    rows, names = trial_rows(trials, space, start, now)
    settings = _settings(config)
    from ..build import no_network

    settings["no_retrain"] = no_network(config["space"]["name"], space)  # what the Final view says instead
    data: Dict[str, Any] = {
        "name": experiment.name or str(experiment), "path": str(experiment), "settings": settings,
        "metric_names": names, "trials": rows, "decisions": [d.name for d in space.decisions], "generated": now, "started": start,
        "counts": {s: sum(1 for r in rows if r["state"] == s) for s in
                   ("COMPLETE", "FAILED", "PRUNED", "RUNNING", "WAITING")},
        "last_change": max([t.finished or t.started or 0 for t in trials], default=None),
        "best_so_far": best_so_far(rows, settings["direction"]),
        "final": final_results(store, experiment, rows),
    }
    if drawings:
        drawn = architecture_drawings(space, rows, {} if cache is None else cache.setdefault("drawings", {}))
        data["drawings"] = {h: d["svg"] for h, d in drawn.items()}
        data["descriptions"] = {h: d["lines"] for h, d in drawn.items()}
    if heavy:
        from .importance import in_process
        from .learning import learning_view
        from .pareto_view import pareto_views

        if background is not None:  # started first: each runs in a process of its own meanwhile
            importance_later = background.importance(space, rows)
            learning_later = background.learning(experiment, store, config, space, rows)
        else:
            importance_later = in_process(space, rows)
            learning_later = lambda: learning_view(store, config, space, rows, cache)  # noqa: E731
        data["pareto"] = pareto_views(rows, names, settings["metric"], settings["direction"])
        data["learning"] = _or_reason(learning_later)
        data["importance"] = _or_reason(importance_later)
    return data


def _or_reason(view, *args) -> Optional[Dict[str, Any]]:
    """One view that cannot be computed (a damaged stored state, a strategy from a plugin that is
    not installed here) says why in its place; the other views still show."""
    try:
        return view(*args)
    except Exception as exc:  # noqa: BLE001 - shown to the user in the view, not raised
        return {"kind": "error", "reason": f"cannot be shown: {type(exc).__name__}: {exc}"}


def architecture_drawings(space, rows: Sequence[Dict[str, Any]], drawn: Dict[str, Any]) -> Dict[str, Any]:
    from .archdraw import draw

    out = {}
    for r in rows:
        h = r["arch"]
        if h not in drawn:
            try:
                drawn[h] = {"svg": draw(space, r["tokens"]), "lines": space.describe(r["tokens"])}
            except Exception as exc:  # noqa: BLE001 - one unreadable architecture must not hide the rest
                drawn[h] = {"svg": "", "lines": [f"cannot be drawn: {exc}"]}
        out[h] = drawn[h]
    return out

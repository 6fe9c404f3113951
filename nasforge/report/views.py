"""What the dashboard and the HTML report show, computed from an experiment's store alone.

Everything here only reads: the store is opened read-only (a search writing it is never waited
for nor locked), and nothing is written next to it. The result is plain JSON-able data; the page
(``page.js``) draws it with plotly. The parts that cost more than reading the trials (Pareto fronts
with hypervolume, the controller's policy over updates, decision importance) are computed only
when asked (``heavy``), so that the live dashboard can refresh them less often and cache them.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

POLICY_SAMPLES = 200  # architectures drawn from each stored policy to estimate its choice frequencies
MAX_POLICY_STATES = 24  # at most this many stored policies are evaluated (evenly spaced, always the last)
MAX_PARETO_METRICS = 6
HV_POINTS = 40  # hypervolume is computed at most this many times along the search


class NothingToShow(ValueError):
    """An experiment whose store holds no search yet (bad input for ``report``, a wait for a dashboard)."""


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def open_readonly(experiment: Path):
    """The experiment's store, read-only; a clear error when there is none."""
    from ..search import store_path
    from ..store import Store, StoreError

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


# ---- settings, trials, progress, workers; Pareto fronts --------------------------------------------------


def _settings(config: Dict[str, Any]) -> Dict[str, Any]:
    reward = config.get("reward", {})
    metric = reward.get("metric", "val_acc") if not reward.get("weights") else "objective"
    try:
        from ..objectives.rewards import Scorer

        direction = Scorer.from_config(reward).direction
    except (TypeError, ValueError, KeyError):  # settings of an older nasforge: the metric's own direction
        direction = _direction_of(metric) or "maximize"
    constraints = reward.get("constraints") or []
    return {"space": config["space"]["name"], "strategy": config["strategy"]["name"],
            "dataset": config.get("dataset"), "budget": config.get("budget"), "seed": config.get("seed"),
            "metric": metric, "direction": direction,
            "constraints": [constraints] if isinstance(constraints, str) else list(constraints),
            "strategy_settings": {k: v for k, v in config["strategy"].items() if k != "name"}}


def _direction_of(metric: str) -> Optional[str]:
    from ..objectives.registry import METRICS

    info = METRICS.get(metric)
    return info.direction if info is not None else None


def _trial_rows(trials, space, start: float, now: float) -> Tuple[List[Dict[str, Any]], List[str], Dict[str, str]]:
    """One row per trial (numeric metrics only), the metric names seen, and a drawing key per trial."""
    rows, names, summaries = [], [], {}
    seen = set()
    for t in trials:
        metrics = {}
        for name, value in t.metrics.items():
            v = _number(value)
            if v is not None:
                metrics[name] = v
                if name not in seen:
                    seen.add(name)
                    names.append(name)
        if t.arch_hash not in summaries:
            try:
                summaries[t.arch_hash] = space.summary(t.tokens)
            except Exception as exc:  # noqa: BLE001 - a stored architecture the space now refuses
                summaries[t.arch_hash] = f"(cannot be read: {exc})"
        end = t.finished if t.finished is not None else (now if t.state == "RUNNING" else None)
        rows.append({
            "id": t.id, "number": t.number, "attempt": t.attempt, "state": t.state,
            "objective": _number(t.objective), "reward": _number(t.reward), "feasible": bool(t.feasible),
            "start": None if t.started is None else round(t.started - start, 3),
            "end": None if end is None else round(end - start, 3),
            "duration": None if t.duration is None else round(t.duration, 3),
            "worker": t.worker or ("driver" if t.state != "RUNNING" else "running"),
            "error": t.error, "metrics": metrics, "arch": t.arch_hash, "summary": summaries[t.arch_hash],
            "tokens": list(t.tokens),
        })
    return rows, names, summaries


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


def pareto_views(rows: Sequence[Dict[str, Any]], names: Sequence[str], metric: str,
                 direction: str) -> Dict[str, Any]:
    """For each pair of metrics with a known direction: the front's trials and the hypervolume of the
    trials finished so far, at up to ``HV_POINTS`` points along the search (reference point: the
    worst value of each metric over the whole search, pushed 10% of its range further)."""
    import numpy as np

    from ..objectives.pareto import hypervolume, pareto_front, reference_point

    usable = [r for r in rows if r["state"] == "COMPLETE" and r["feasible"]]
    directions: Dict[str, str] = {}
    for name in [metric, *names]:
        d = direction if name == metric else _direction_of(name)
        present = sum(1 for r in usable if _value(r, name, metric) is not None)
        if d is not None and present >= 2 and name not in directions:
            directions[name] = d
    chosen = list(directions)[:MAX_PARETO_METRICS]
    pairs = {}
    for a in range(len(chosen)):
        for b in range(a + 1, len(chosen)):
            x, y = chosen[a], chosen[b]
            points, ids = [], []
            for r in usable:
                vx, vy = _value(r, x, metric), _value(r, y, metric)
                if vx is not None and vy is not None:
                    points.append((vx, vy))
                    ids.append(r["number"])
            if len(points) < 2:
                continue
            dirs = [directions[x], directions[y]]
            arr = np.asarray(points)
            front = [ids[i] for i in pareto_front(arr, dirs)]
            ref = reference_point(arr, dirs)
            steps = sorted({int(round(k)) for k in np.linspace(1, len(arr), min(HV_POINTS, len(arr)))})
            hv = [[ids[k - 1], float(hypervolume(arr[:k], ref, dirs))] for k in steps]
            pairs[f"{x}|{y}"] = {"front": front, "hv": hv, "reference": [float(v) for v in ref]}
    return {"metrics": chosen, "directions": directions, "pairs": pairs}


def _value(row: Dict[str, Any], name: str, metric: str) -> Optional[float]:
    v = row["metrics"].get(name)
    if v is None and name in (metric, "objective"):
        v = row["objective"]
    return v


def final_results(store, experiment: Path, rows: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Retrain and final-selection records (scalars only) and the export folder's files."""
    number_of = {r["id"]: r["number"] for r in rows}
    evaluations = []
    for e in store.evaluations():
        scalars = {k: v for k, v in e["metrics"].items() if _number(v) is not None}
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
                    cache: Optional[Dict[str, Any]] = None, store=None) -> Dict[str, Any]:
    """Everything the views show for one experiment. ``heavy``: also the Pareto fronts, the policy
    or population view and the decision importance (what a live page refreshes less often).
    ``cache`` (a dict the caller keeps) saves reading the settings and building the space again,
    re-computing the policy of a stored controller state already seen and re-drawing architectures;
    ``store``: an open read-only store to use (and leave open) instead of opening one."""
    import sqlite3

    from ..store import StoreError

    experiment = Path(experiment)
    try:
        if store is not None:
            return _experiment_data(experiment, store, heavy, drawings, cache)
        with open_readonly(experiment) as opened:
            return _experiment_data(experiment, opened, heavy, drawings, cache)
    except sqlite3.DatabaseError as exc:  # read outside the store's own methods (kept states)
        raise StoreError(f"{experiment}: its store cannot be read ({exc}); if it is damaged, restore it from a "
                         "backup or salvage it with `sqlite3 trials.sqlite .recover`") from None


def _settings_and_space(store, cache: Optional[Dict[str, Any]]):
    """The stored config (complete, migrated) and the space it names; cached while the stored
    config text stays the same."""
    from ..search import read_config
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
                     cache: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    config, space = _settings_and_space(store, cache)
    if config is None:
        raise NothingToShow(f"{experiment}: the search has created its store but not yet written its "
                            "settings; try again in a moment")
    trials = store.trials()
    now = time.time()
    start = min((t.started for t in trials if t.started is not None), default=now)
    rows, names, _ = _trial_rows(trials, space, start, now)
    settings = _settings(config)
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
        data["pareto"] = pareto_views(rows, names, settings["metric"], settings["direction"])
        data["learning"] = _or_reason(learning_view, store, config, space, rows, cache)
        data["importance"] = _or_reason(importance, space, rows)
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


# ---- the learning strategy: a controller's policy, or an evolving population -------------------------


def _stored_states(store, limit: int) -> List[Tuple[int, Optional[int], Dict[str, Any]]]:
    """The controller states the store keeps (one per update, and the newest), oldest first, at most
    ``limit`` of them evenly spaced (the last always), as (state id, trial id, state)."""
    import hashlib

    from ..store import StoreError, load_state

    rows = store.conn.execute(
        "SELECT id, trial_id FROM strategy_states WHERE keep = 1 OR id = (SELECT MAX(id) FROM strategy_states) "
        "ORDER BY id").fetchall()
    if len(rows) > limit:
        step = (len(rows) - 1) / (limit - 1)
        rows = [rows[round(k * step)] for k in range(limit)]
    out = []
    for state_id, trial_id in rows:
        data = store.conn.execute("SELECT state FROM strategy_states WHERE id = ?", (state_id,)).fetchone()
        if data is None:  # dropped by the writer since we listed it (it was the newest, not kept)
            continue
        state = load_state(bytes(data[0]))
        for key, digest in store.conn.execute("SELECT key, hash FROM state_blobs WHERE state_id = ?", (state_id,)):
            blob = store.conn.execute("SELECT data FROM blobs WHERE hash = ?", (digest,)).fetchone()
            if blob is None or hashlib.sha1(bytes(blob[0])).hexdigest() != digest:
                raise StoreError(f"{store.path}: the strategy state of trial id {trial_id} refers to a missing or "
                                 "damaged part")
            state[key] = bytes(blob[0])
        out.append((state_id, trial_id, state))
    return out


def _strategy(config: Dict[str, Any], space, setup: bool = True):
    from ..strategies import create_strategy

    settings = {k: v for k, v in config["strategy"].items() if k != "name"}
    strategy = create_strategy(config["strategy"]["name"], **settings)
    if setup:
        strategy.setup(space, config.get("seed", 0))
    return strategy


def policy_of(controller, space, samples: int = POLICY_SAMPLES) -> Dict[str, Any]:
    """Per decision, how often the policy picks each choice (estimated from ``samples`` draws with a
    fixed generator, so the numbers do not flicker between refreshes), and the policy's entropy (the
    mean over the draws of the controller's own per-draw entropy, in nats)."""
    import torch

    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        tokens, _, entropies = controller.run(generator=generator, batch=samples)
    tokens = tokens.numpy()
    freqs = []
    for k, d in enumerate(space.decisions):
        counts = [int((tokens[:, k] == c).sum()) for c in range(len(d.choices))]
        freqs.append([c / samples for c in counts])
    return {"probabilities": freqs, "entropy": float(entropies.mean())}


CONTROLLER_SETTINGS = ("hidden_size", "num_layers", "init_range")


def learning_view(store, config: Dict[str, Any], space, rows, cache: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The controller's policy over updates for controller strategies (REINFORCE, PPO), the
    population's age and diversity for regularized evolution, None for the others."""
    name = config["strategy"]["name"]
    if name == "evolution":
        return population_view(config, space, rows)
    settings = _strategy(config, space, setup=False).settings()
    if not all(k in settings for k in CONTROLLER_SETTINGS):
        return None
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small batches: more threads only contend, with a search above all
    try:
        return _policy_view(store, config, settings, space, rows, cache)
    finally:
        torch.set_num_threads(threads)


def _controller_weights(state: Dict[str, Any]) -> Dict[str, Any]:
    """The controller's weights in a stored state (``reinforce.policy_state``'s ``policy`` bytes,
    or the ``controller`` entry of states saved before those)."""
    import io

    import torch

    if isinstance(state.get("policy"), (bytes, bytearray)):
        return torch.load(io.BytesIO(state["policy"]), weights_only=True)["controller"]
    return state["controller"]


def _policy_view(store, config, settings, space, rows, cache) -> Dict[str, Any]:
    """The controller is rebuilt from the strategy's settings and each stored state's weights only
    (no optimiser: building one imports much of torch for nothing here)."""
    from ..strategies.controller import Controller, allowed_next_of

    controller = Controller(space.decisions, settings["hidden_size"], settings["num_layers"], settings["init_range"],
                            allowed_next_of(space))
    seen = (cache if cache is not None else {}).setdefault(("policy", config["strategy"]["name"]), {})
    number_of = {r["id"]: r["number"] for r in rows}
    updates = []
    for state_id, trial_id, state in _stored_states(store, MAX_POLICY_STATES):
        key = (state_id, state.get("updates"))
        if key not in seen:
            controller.load_state_dict(_controller_weights(state))
            seen[key] = {"update": int(state.get("updates", 0)), "trial": number_of.get(trial_id),
                         "baseline": _number(state.get("baseline")), **policy_of(controller, space)}
        updates.append(seen[key])
    deduped: Dict[int, Dict[str, Any]] = {}
    for u in updates:  # the newest state repeats the last update's policy between updates
        deduped.setdefault(u["update"], u)
    return {"kind": "policy", "decisions": [{"name": d.name, "choices": [str(c) for c in d.choices]}
                                            for d in space.decisions],
            "updates": list(deduped.values()), "samples": POLICY_SAMPLES,
            "batch_size": settings.get("batch_size")}


def population_view(config: Dict[str, Any], space, rows) -> Dict[str, Any]:
    """Regularized evolution keeps the ``population_size`` most recently told architectures; this
    replays that from the trials in the order they finished: after each trial, the population's
    mean age (trials since a member was told), the age of its best member, and its diversity (mean
    pairwise share of decisions on which two members differ; distinct architectures)."""
    import numpy as np

    size = int(_strategy(config, space, setup=False).settings()["population_size"])
    told = sorted((r for r in rows if r["state"] != "RUNNING" and r["end"] is not None), key=lambda r: r["end"])
    population: List[Tuple[int, Dict[str, Any]]] = []
    series = []
    for k, r in enumerate(told):
        population.append((k, r))
        if len(population) > size:
            population.pop(0)
        ages = [k - born for born, _ in population]
        scored = [(m["reward"], k - born) for born, m in population if m["reward"] is not None]
        tokens = np.asarray([m["tokens"] for _, m in population])
        if len(tokens) > 1:
            diff = (tokens[:, None, :] != tokens[None, :, :]).mean(axis=2)
            diversity = float(diff.sum() / (len(tokens) * (len(tokens) - 1)))
        else:
            diversity = 0.0
        series.append({"trial": r["number"], "mean_age": float(np.mean(ages)),
                       "best_age": max(scored)[1] if scored else None, "diversity": diversity,
                       "distinct": len({m["arch"] for _, m in population})})
    return {"kind": "population", "population_size": size, "series": series}


# ---- decision importance ---------------------------------------------------------------------------


def importance(space, rows, min_trials: int = 8) -> Dict[str, Any]:
    """How much each decision explains the objective: scikit-learn's random forest on the
    completed trials' tokens, impurity-based importances normalised to sum to 1. (fANOVA, through
    Optuna, took 25 s for 1,000 trials here, too slow for a report or a live page.)"""
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
    names = [d.name for d in space.decisions]
    order = np.argsort(-forest.feature_importances_)
    return {"method": "random forest (scikit-learn), mean decrease in impurity",
            "trials": len(usable), "decisions": [names[i] for i in order],
            "values": [float(forest.feature_importances_[i]) for i in order]}

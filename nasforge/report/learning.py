"""The learning strategy's view: a controller's policy over its stored states (REINFORCE, PPO), or
regularized evolution's population replayed from the trials.

The policy needs torch (the controller is a torch module); nothing else in the report does, so
it is imported here only."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

POLICY_SAMPLES = 200  # architectures drawn from each stored policy to estimate its choice frequencies
MAX_POLICY_STATES = 24  # at most this many stored policies are evaluated (evenly spaced, always the last)
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
    from ..strategies.base import one_torch_thread

    with one_torch_thread():  # small batches: more threads only contend, with a search above all
        return _policy_view(store, config, settings, space, rows, cache)


def _strategy(config: Dict[str, Any], space, setup: bool = True):
    from ..strategies import create_strategy

    settings = {k: v for k, v in config["strategy"].items() if k != "name"}
    strategy = create_strategy(config["strategy"]["name"], **settings)
    if setup:
        strategy.setup(space, config.get("seed", 0))
    return strategy


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
    from .values import as_number
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
                         "baseline": as_number(state.get("baseline")), **policy_of(controller, space)}
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

"""Final selection: which of a search's best children becomes *the* architecture.

A search ranks its children after a short training (8 epochs by default), but the architecture it
returns is then trained for much longer, with label smoothing. The two orders need not agree: the
short training favours networks that learn fast, the long one networks that generalise. So before
the final training, the search's top ``k`` children are trained with the final recipe on the
search's own training split and scored on its validation split (never the test split), and the
best of them is the one retrained and exported (the protocol NASNet used to pick its final cells).

Every score is stored in the experiment (``evaluations`` of kind ``rerank``, with the recipe and
seed), so an interrupted selection resumes and a second ``nasforge retrain`` reuses it; the
winner is stored too (kind ``final-choice``), which is what ``nasforge export`` and ``best`` read.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from .data.datasets import Dataset
from .estimators.base import TrialFailed
from .estimators.device import resolve_device
from .estimators.train import TrainRecipe, predict, search_split, train_network
from .objectives.rewards import Scorer
from .spaces.base import SearchSpace
from .store import Store, TrialRecord

KIND = "rerank"  # one candidate's score
CHOICE = "final-choice"  # which candidate won, among which


def uses_validation_accuracy(scorer: Scorer, metrics: Dict[str, Any]) -> bool:
    """Whether the objective changes with ``val_acc`` (if it does not, re-ranking cannot change
    the order and is skipped)."""
    try:
        low = scorer.evaluate({**metrics, "val_acc": 0.0}).value
        high = scorer.evaluate({**metrics, "val_acc": 1.0}).value
    except (KeyError, ValueError):
        return False
    return low != high


def validation_score(space: SearchSpace, tokens, data: Dataset, training: Dict[str, Any], recipe: TrainRecipe,
                     seed: int, device: str = "auto") -> Dict[str, Any]:
    """Train ``tokens`` from scratch with ``recipe`` on the search's training split and score it on
    the search's validation split (the split ``training``'s val_fraction and split_seed define)."""
    (x, y), (xv, yv) = search_split(data, training)
    dev = resolve_device(device)
    torch.manual_seed(seed)
    model = space.build(tuple(tokens), data.input_shape, data.num_classes)
    start = time.perf_counter()
    train_network(model, x, y, recipe, seed, dev)
    accuracy = float((predict(model, torch.as_tensor(xv, device=dev)).argmax(1) == yv).mean())
    return {"val_acc": accuracy, "train_seconds": time.perf_counter() - start}


def _key(recipe: TrainRecipe, seed: int) -> str:
    return json.dumps({"recipe": asdict(recipe), "seed": seed}, sort_keys=True)


def rerank(store: Store, space: SearchSpace, data: Dataset, recipe: TrainRecipe, k: int, seed: int = 0,
           device: str = "auto", log: Callable[[str], None] = lambda message: None
           ) -> List[Tuple[TrialRecord, Dict[str, Any]]]:
    """Score the search's top ``k`` (by its objective) with ``recipe``; return them with their
    scores, the chosen one first. Scores already stored for the same recipe and seed are reused.
    Returns an empty list when there is nothing to choose (fewer than two candidates, or an
    objective that does not depend on validation accuracy)."""
    config = store.config()
    scorer = Scorer.from_config(config["reward"])
    candidates = store.best(k, scorer.direction)
    if len(candidates) < 2:
        return []
    if not uses_validation_accuracy(scorer, candidates[0].metrics):
        log("the objective does not depend on validation accuracy: nothing to re-rank")
        return []
    key = _key(recipe, seed)
    stored = {e["trial_id"]: e["metrics"] for e in store.evaluations(KIND) if e["metrics"].get("key") == key}
    ids = [t.id for t in candidates]
    for place, trial in enumerate(candidates, 1):
        if trial.id in stored:
            continue
        log(f"re-ranking {place}/{len(candidates)}: trial {trial.number}, {recipe.epochs} epochs on the training "
            f"split, scored on the validation split ...")
        try:
            score = validation_score(space, trial.tokens, data, config["training"], recipe, seed, device)
            evaluation = scorer.evaluate({**trial.metrics, "val_acc": score["val_acc"]})
            result = {**score, "objective": evaluation.value, "feasible": evaluation.feasible}
        except (TrialFailed, RuntimeError, ValueError, MemoryError) as exc:  # one bad candidate never ends the selection
            result = {"error": f"{type(exc).__name__}: {exc}", "objective": None, "feasible": False}
        result.update(key=key, seed=seed, epochs=recipe.epochs, candidates=ids, search_objective=trial.objective)
        store.add_evaluation(trial.id, KIND, result)
        stored[trial.id] = result
    ranking = _ordered([(t, stored[t.id]) for t in candidates], scorer.direction)
    winner, result = ranking[0]
    if result.get("objective") is None or not result.get("feasible", True):
        log("no candidate could be re-ranked: keeping the search's best")
        return []
    store.add_evaluation(winner.id, CHOICE, {"key": key, "candidates": ids, "val_acc": result["val_acc"]})
    return ranking


def _ordered(scored: List[Tuple[TrialRecord, Dict[str, Any]]], direction: str
             ) -> List[Tuple[TrialRecord, Dict[str, Any]]]:
    """Best re-ranked objective first; ties keep the search's order; failed or infeasible last."""
    sign = 1.0 if direction == "maximize" else -1.0
    ok = [s[1].get("objective") is not None and s[1].get("feasible", True) for s in scored]
    usable = [s for s, good in zip(scored, ok) if good]
    rest = [s for s, good in zip(scored, ok) if not good]
    return sorted(usable, key=lambda s: -sign * s[1]["objective"]) + rest  # sorted() is stable


def final_choice(store: Store, direction: str = "maximize") -> Optional[TrialRecord]:
    """The architecture to retrain and export: the winner of the latest re-ranking while its
    candidates are still the search's top children, otherwise the search's best."""
    best = store.best(1, direction)
    choices = store.evaluations(CHOICE)
    if not best or not choices:
        return best[0] if best else None
    ids = choices[-1]["metrics"]["candidates"]
    top = store.best(len(ids), direction)
    if [t.id for t in top] != ids:
        return best[0]  # the search went on after the re-ranking: its candidates are stale
    return next(t for t in top if t.id == choices[-1]["trial_id"])

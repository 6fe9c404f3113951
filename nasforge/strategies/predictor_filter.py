"""``predictor-filter``: any strategy proposes many candidates, only the predicted best is evaluated.

After ``warmup`` evaluated trials (passed through from the inner strategy unchanged), every ask
fits a predictor (``nasforge.predictors``) on the encodings and rewards of all trials told so
far, asks the inner strategy for ``num_candidates`` architectures, and proposes the one with the
highest predicted reward that has not been proposed before. The inner strategy hears about every
architecture it proposed: the evaluated one with its measured reward, the others at once with
their *predicted* reward (so strategies that count their asks and tells, like the RL
controllers' batches, stay consistent, and learn from the predictor as from a surrogate).

The predictor itself is not saved: it is refitted, deterministically, on the same trials after a
restore, so ``state_dict`` holds only plain values.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..predictors import create_predictor
from ..predictors.encodings import KINDS, encode_many
from ..spaces.base import Tokens
from .base import STRATEGIES, Proposal, Strategy, create_strategy


def _positive_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"predictor-filter: {name} must be an integer >= {low}, got {value!r}")


@STRATEGIES.register("predictor-filter")
class PredictorFilter(Strategy):
    name = "predictor-filter"

    def __init__(self, inner: str = "random", inner_settings: Optional[Dict[str, Any]] = None,
                 predictor: str = "gbt", predictor_settings: Optional[Dict[str, Any]] = None,
                 encoding: str = "auto", warmup: int = 10, num_candidates: int = 100, refit_every: int = 1):
        inner_settings = dict(inner_settings or {})
        predictor_settings = dict(predictor_settings or {})
        super().__init__(inner=inner, inner_settings=inner_settings, predictor=predictor,
                         predictor_settings=predictor_settings, encoding=encoding, warmup=warmup,
                         num_candidates=num_candidates, refit_every=refit_every)
        _positive_int("warmup", warmup, 2)
        _positive_int("num_candidates", num_candidates, 1)
        _positive_int("refit_every", refit_every, 1)
        if encoding not in KINDS:
            raise ValueError(f"predictor-filter: encoding must be one of {KINDS}, got {encoding!r}")
        if inner == self.name:
            raise ValueError("predictor-filter: the inner strategy cannot be predictor-filter itself")
        try:
            create_strategy(inner, **inner_settings)
            create_predictor(predictor, **predictor_settings)
        except (ValueError, TypeError) as error:
            raise ValueError(f"predictor-filter: {error}") from None
        self.s = self.settings()

    def setup(self, space, seed):
        super().setup(space, seed)
        self.inner = create_strategy(self.s["inner"], **self.s["inner_settings"])
        self.inner.setup(space, seed)
        self.data: List[Tuple[Tokens, float]] = []
        self.seen: set = set()
        self.asked = 0
        self.fitted_on = 0  # how many of ``data`` the current predictor was fitted on
        self.fit_seed = self.seed  # kept in the state: a restored search refits the same model
        self.model = None

    # ---- the predictor ----------------------------------------------------------------------------
    def _encode(self, tokens_list) -> np.ndarray:
        return encode_many(self.space, tokens_list, self.s["encoding"])

    def _fit(self, rows: int) -> None:
        settings = {"seed": self.fit_seed, **self.s["predictor_settings"]}
        model = create_predictor(self.s["predictor"], **settings)
        x = self._encode([t for t, _ in self.data[:rows]])
        model.fit(x, np.array([r for _, r in self.data[:rows]]))
        self.model, self.fitted_on = model, rows

    def _current_model(self):
        if self.model is None and self.fitted_on:  # restored: refit on the same trials
            self._fit(self.fitted_on)
        if self.model is None or len(self.data) - self.fitted_on >= self.s["refit_every"]:
            self._fit(len(self.data))
        return self.model

    # ---- ask / tell -------------------------------------------------------------------------------
    def ask(self) -> Proposal:
        self.asked += 1
        if len(self.data) < self.s["warmup"]:
            proposal = self.inner.ask()
            self.seen.add(self.space.arch_hash(proposal.tokens))
            return Proposal(tuple(proposal.tokens), {"kind": "warmup", "inner": proposal.info})
        model = self._current_model()
        candidates = [self.inner.ask() for _ in range(self.s["num_candidates"])]
        predicted = model.predict(self._encode([c.tokens for c in candidates]))
        hashes = [self.space.arch_hash(c.tokens) for c in candidates]
        fresh = [i for i, h in enumerate(hashes) if h not in self.seen]
        pool = fresh or list(range(len(candidates)))
        best = max(pool, key=lambda i: (predicted[i], -i))
        for i, c in enumerate(candidates):
            if i != best:
                self.inner.tell(c.tokens, float(predicted[i]), c.info)
        chosen = candidates[best]
        self.seen.add(hashes[best])
        return Proposal(tuple(chosen.tokens), {
            "kind": "predicted", "predicted_reward": float(predicted[best]),
            "fresh_candidates": len(fresh), "fitted_on": self.fitted_on, "inner": chosen.info,
        })

    def tell(self, tokens: Tokens, reward: float, info: Dict[str, Any]) -> None:
        tokens = tuple(int(t) for t in tokens)
        self.inner.tell(tokens, reward, (info or {}).get("inner", {}))
        self.seen.add(self.space.arch_hash(tokens))
        self.data.append((tokens, float(reward)))

    def state_dict(self) -> Dict[str, Any]:
        return {
            **super().state_dict(),
            "inner": self.inner.state_dict(),
            "data": [[list(t), r] for t, r in self.data],
            "seen": sorted(self.seen),
            "asked": self.asked,
            "fitted_on": self.fitted_on,
            "fit_seed": self.fit_seed,
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.inner.load_state_dict(state["inner"])
        self.data = [(tuple(int(x) for x in t), float(r)) for t, r in state["data"]]
        self.seen = set(state["seen"])
        self.asked = int(state["asked"])
        self.fitted_on = int(state["fitted_on"])
        self.fit_seed = int(state["fit_seed"])
        self.model = None

"""REINFORCE made sample-efficient for budgets of a few hundred children (issue 16).

The controller and its policy-gradient core are ``reinforce``'s; three changes, each a setting:

- **No duplicate evaluation** (``pool``): the controller samples up to ``pool`` architectures per
  batch, and the first ``batch_size`` not evaluated before (and distinct) become the children.
  A converged policy otherwise spends most of a small budget re-training what it knows. A pool
  with too few new architectures (a policy that has collapsed) is topped up with repeats, which
  are evaluated and counted like any child.
- **Risk-seeking policy gradient** (``risk_quantile`` = epsilon; Petersen et al., *Deep Symbolic
  Regression*, ICLR 2021): only children at or above the batch's (1 - epsilon)-quantile of reward
  are learnt from, with advantage ``R - R_epsilon``: the search is judged by its best child, not
  its mean one. Advantages are divided by the batch's reward deviation (``normalize``), so one
  learning rate fits a reward of any scale.
- **Priority-queue training** (``queue_size`` K, ``queue_weight`` lambda, ``queue_steps``;
  Abolafia et al., 2018): the K best architectures seen are kept, and every update also maximises
  their mean log-likelihood, weighted by lambda, in the same Adam step, followed by
  ``queue_steps`` steps on that term alone. This term is maximum likelihood, not policy gradient;
  the policy-gradient term is what learns from every batch's rewards.

An optional fourth, **predictor-ranked proposals** (``predictor``; the issue's "controller proposes
many, a cheap predictor chooses"): once ``predictor_warmup`` children are told, a predictor
(``nasforge.predictors``) is fitted on every child told so far and the batch is the ``batch_size``
new architectures of the whole pool that it ranks highest, instead of the first new ones. The
controller still proposes every candidate and still learns only from measured rewards.

An optional fifth, **population seeding by mutation** (``mutate``; after Mundhenk et al.,
*Symbolic Regression via Neural-Guided Genetic Programming Population Seeding*, NeurIPS 2021, where
a genetic search refines the controller's samples and the best of both train it): that fraction
of each batch (its first children) is new architectures one decision from a parent, the rest the
controller's samples. ``parents`` says where a parent comes from: the queue of the K best
(``queue``), or regularized evolution's tournament over the last children (``recent``). Every
child, mutated or sampled, is learnt from by the same risk-seeking policy gradient (as Mundhenk et
al. train on the genetic search's samples, without an importance correction) and enters the queue,
so the controller learns where the mutations found reward.

With ``pool = batch_size``, ``risk_quantile = 1``, ``queue_size = 0`` and ``normalize`` off the update
is ``reinforce``'s (the paper's, without the moving-average baseline: the batch mean stands in).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from ..predictors import create_predictor
from ..predictors.encodings import KINDS, encode_many
from ..spaces.base import Tokens
from .base import STRATEGIES, Proposal
from .reinforce import Reinforce


def risk_seeking_advantages(rewards: torch.Tensor, quantile: float, normalize: bool) -> torch.Tensor:
    """``R - R_eps`` for children at or above the batch's (1 - quantile)-quantile, 0 for the rest;
    ``quantile`` 1 gives ``R - mean(R)``. Divided by the rewards' deviation when ``normalize``."""
    if quantile >= 1.0:
        threshold = rewards.mean()
    else:
        threshold = torch.quantile(rewards, 1.0 - quantile, interpolation="lower")
    advantages = torch.clamp(rewards - threshold, min=0.0) if quantile < 1.0 else rewards - threshold
    if normalize:
        advantages = advantages / (rewards.std(correction=0) + 1e-8)
    return advantages


class EliteQueue:
    """The ``size`` best distinct architectures told so far (by hash), with their rewards."""

    def __init__(self, size: int):
        self.size = size
        self.items: Dict[str, Tuple[float, Tokens]] = {}

    def offer(self, key: str, tokens: Tokens, reward: float) -> None:
        if self.size == 0 or key in self.items:
            return
        self.items[key] = (float(reward), tuple(tokens))
        if len(self.items) > self.size:
            del self.items[min(self.items, key=lambda k: (self.items[k][0], k))]

    def tokens(self) -> List[Tokens]:
        return [t for _, t in sorted(self.items.values(), reverse=True)]

    def state(self) -> List[list]:
        return [[k, r, list(t)] for k, (r, t) in sorted(self.items.items())]

    def load(self, state: List[list]) -> None:
        self.items = {k: (float(r), tuple(int(v) for v in t)) for k, r, t in state}


#: Where ``mutate`` draws its parents; ``recent`` is regularized evolution's tournament with
#: nasforge's evolution defaults (population 30, sample 20).
PARENTS = ("queue", "recent")
RECENT, TOURNAMENT = 30, 20


@STRATEGIES.register("reinforce-elite")
class ReinforceElite(Reinforce):
    name = "reinforce-elite"

    def __init__(self, hidden_size: int = 35, num_layers: int = 2, init_range: float = 0.08,
                 learning_rate: float = 0.02, batch_size: int = 4, baseline_decay: float = 0.95,
                 entropy_weight: float = 0.03, pool: int = 256, risk_quantile: float = 0.25,
                 normalize: bool = True, queue_size: int = 10, queue_weight: float = 1.0,
                 queue_steps: int = 0, predictor: str = "none",
                 predictor_settings: Optional[Dict[str, Any]] = None, predictor_warmup: int = 8,
                 encoding: str = "onehot", explore: float = 0.0, mutate: float = 0.0,
                 parents: str = "queue"):
        try:
            super().__init__(hidden_size=hidden_size, num_layers=num_layers, init_range=init_range,
                             learning_rate=learning_rate, batch_size=batch_size, baseline_decay=baseline_decay,
                             entropy_weight=entropy_weight)
        except ValueError as error:  # the checks are reinforce's; the message names this strategy
            raise ValueError(str(error).replace("reinforce:", "reinforce-elite:", 1)) from None
        if isinstance(pool, bool) or not isinstance(pool, int) or pool < batch_size:
            raise ValueError(f"reinforce-elite: pool must be an integer >= batch_size, got {pool!r}")
        if not 0.0 < risk_quantile <= 1.0:
            raise ValueError(f"reinforce-elite: risk_quantile must be in (0, 1], got {risk_quantile!r}")
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 0:
            raise ValueError(f"reinforce-elite: queue_size must be a non-negative integer, got {queue_size!r}")
        if not queue_weight >= 0:
            raise ValueError(f"reinforce-elite: queue_weight must be non-negative, got {queue_weight!r}")
        if isinstance(queue_steps, bool) or not isinstance(queue_steps, int) or queue_steps < 0:
            raise ValueError(f"reinforce-elite: queue_steps must be a non-negative integer, got {queue_steps!r}")
        predictor_settings = dict(predictor_settings or {})
        if predictor != "none":
            try:
                create_predictor(predictor, **predictor_settings)
            except (ValueError, TypeError) as error:
                raise ValueError(f"reinforce-elite: {error}") from None
        if (isinstance(predictor_warmup, bool) or not isinstance(predictor_warmup, int)
                or predictor_warmup < 2):
            raise ValueError(f"reinforce-elite: predictor_warmup must be an integer >= 2, got {predictor_warmup!r}")
        if isinstance(explore, bool) or not isinstance(explore, (int, float)) or not explore >= 0:
            raise ValueError(f"reinforce-elite: explore must be a non-negative number, got {explore!r}")
        if isinstance(mutate, bool) or not isinstance(mutate, (int, float)) or not 0.0 <= mutate < 1.0:
            raise ValueError(f"reinforce-elite: mutate must be a fraction in [0, 1), got {mutate!r}")
        if mutate and not queue_size:
            raise ValueError("reinforce-elite: mutate draws its parents from the queue of the best, "
                             "so it needs queue_size >= 1")
        if parents not in PARENTS:
            raise ValueError(f"reinforce-elite: parents must be one of {', '.join(PARENTS)}, got {parents!r}")
        if encoding not in KINDS:
            raise ValueError(f"reinforce-elite: encoding must be one of {KINDS}, got {encoding!r}")
        self._settings.update(pool=pool, risk_quantile=risk_quantile, normalize=normalize,
                              queue_size=queue_size, queue_weight=queue_weight, queue_steps=queue_steps,
                              predictor=predictor, predictor_settings=predictor_settings,
                              predictor_warmup=predictor_warmup, encoding=encoding, explore=explore,
                              mutate=mutate, parents=parents)
        self._settings.pop("dedup", None)
        self._settings.pop("max_resamples", None)
        self.pool, self.risk_quantile, self.normalize = pool, float(risk_quantile), bool(normalize)
        self.queue_weight = float(queue_weight)

    def setup(self, space, seed):
        super().setup(space, seed)
        self.elite = EliteQueue(self._settings["queue_size"])
        self.seen: set = set()  # every architecture asked, by hash
        self._elite_log_probs = None  # the queue's log-probabilities from the update's scoring pass
        self.told: List[Tuple[Tokens, float]] = []  # every child's measured reward, if a predictor ranks
        self.recent: List[Tuple[Tokens, float]] = []  # the last RECENT children, if mutants' parents are drawn there

    def ask(self) -> Proposal:
        proposal = self._sample()
        self.seen.add(self._key(proposal.tokens))
        return proposal

    def _sample(self) -> Proposal:
        if not self.queue:
            self.queue = self._new_batch()
        tokens, log_prob, entropy = self.queue.pop(0)
        return Proposal(tokens, {"log_prob": log_prob, "entropy": entropy, "policy_version": self.updates})

    def _new_batch(self) -> List[Tuple[Tokens, float, float]]:
        s = self._settings
        mutants = self._mutants(round(self.batch_size * s["mutate"])) if self.elite.items else []
        if s["predictor"] != "none" and len(self.told) >= s["predictor_warmup"]:
            sampled = self._ranked_batch(self.batch_size - len(mutants), mutants)
        else:
            sampled = self._first_new_batch(self.batch_size - len(mutants), mutants)
        return mutants + sampled  # new ones first, where the pool ran out of them

    def _mutants(self, count: int) -> List[Tuple[Tokens, float, float]]:
        """Up to ``count`` new architectures, each drawn uniformly from the new neighbours (one
        decision away) of the first parent :meth:`_parents` offers that has any, with the
        controller's log-probability and entropy of each. Fewer only when no parent has a new
        neighbour left."""
        out, keys = [], set()
        for _ in range(count):
            for parent in self._parents():
                fresh = [(key, n) for n in self.space.neighbours(parent)
                         if (key := self._key(n)) not in self.seen and key not in keys]
                if fresh:
                    key, child = fresh[int(self.rng.integers(len(fresh)))]
                    keys.add(key)
                    out.append(tuple(int(v) for v in child))
                    break
            else:
                break  # every member's neighbours have been evaluated
        if not out:
            return []
        with torch.no_grad():
            log_probs, entropies = self.controller.score(out)
        return [(t, float(lp), float(h)) for t, lp, h in zip(out, log_probs.tolist(), entropies.tolist())]

    def _draw(self, batch: int, keys: set, chosen: list, spare: list, limit: int) -> int:
        """Sample ``batch`` architectures; new ones (neither evaluated nor in ``keys``) go to
        ``chosen`` until it holds ``limit``, the rest to ``spare``. Returns how many were drawn."""
        with torch.no_grad():  # most samples are dropped: the update re-scores the children kept
            tokens, log_probs, entropies = self.controller.run(generator=self.generator, batch=batch)
        for t, lp, h in zip(tokens.tolist(), log_probs.tolist(), entropies.tolist()):
            row = tuple(int(v) for v in t)
            key = self._key(row)
            fresh = key not in self.seen and key not in keys and len(chosen) < limit
            (chosen if fresh else spare).append((row, lp, h))
            keys.add(key)
        return len(tokens)

    def _parents(self) -> List[Tokens]:
        """Candidate parents, in the order they are tried: the queue of the best in random order
        (``parents = "queue"``), or regularized evolution's tournament (``"recent"``: the best of
        TOURNAMENT children drawn from the last RECENT told first, then the rest of the queue)."""
        queue = self.elite.tokens()
        order = [queue[i] for i in self.rng.permutation(len(queue))]
        if self._settings["parents"] == "recent" and self.recent:
            picks = self.rng.choice(len(self.recent), size=min(TOURNAMENT, len(self.recent)), replace=False)
            order.insert(0, max((self.recent[int(i)] for i in picks), key=lambda c: c[1])[0])
        return order

    def _ranked_batch(self, size: int, taken: list) -> List[Tuple[Tokens, float, float]]:
        """The ``size`` new architectures (not in ``taken`` either) of one pool of ``pool`` samples
        that a predictor, fitted on every child told so far, ranks highest (ties: the earlier sample)."""
        s = self._settings
        candidates: List[Tuple[Tokens, float, float]] = []
        spare: List[Tuple[Tokens, float, float]] = []
        self._draw(self.pool, {self._key(t) for t, _, _ in taken}, candidates, spare, self.pool)
        if len(candidates) > size:
            model = create_predictor(s["predictor"], **{"seed": self.seed, **s["predictor_settings"]})
            model.fit(encode_many(self.space, [t for t, _ in self.told], s["encoding"]),
                      np.array([r for _, r in self.told]))
            mean, std = model.predict_with_std(encode_many(self.space, [c[0] for c in candidates], s["encoding"]))
            predicted = mean if std is None else mean + s["explore"] * std
            order = sorted(range(len(candidates)), key=lambda i: (-predicted[i], i))
            candidates = [candidates[i] for i in order]
        chosen = candidates[:size]
        return chosen + spare[:size - len(chosen)]

    def _first_new_batch(self, size: int, taken: list) -> List[Tuple[Tokens, float, float]]:
        """The first ``size`` new architectures (not in ``taken`` either) among up to ``pool`` samples, drawn in chunks
        (the first new ones of i.i.d. samples do not depend on how many are drawn at once, and a
        young policy rarely needs more than one chunk); repeats only when the pool runs out."""
        chosen: List[Tuple[Tokens, float, float]] = []
        spare: List[Tuple[Tokens, float, float]] = []
        keys = {self._key(t) for t, _, _ in taken}
        drawn, chunk = 0, min(self.pool, max(32, 8 * self.batch_size))
        while len(chosen) < size and drawn < self.pool:
            drawn += self._draw(min(chunk, self.pool - drawn), keys, chosen, spare, size)
        return chosen + spare[:size - len(chosen)]

    def tell(self, tokens: Tokens, reward: float, info: Dict[str, Any]) -> None:
        self.elite.offer(self._key(tokens), tuple(tokens), reward)
        self.seen.add(self._key(tokens))
        if self._settings["predictor"] != "none":
            self.told.append((tuple(int(v) for v in tokens), float(reward)))
        if self._settings["parents"] == "recent":
            self.recent = (self.recent + [(tuple(int(v) for v in tokens), float(reward))])[-RECENT:]
        super().tell(tokens, reward, info)

    def advantages(self, rewards: torch.Tensor, baseline: float) -> torch.Tensor:
        """Risk-seeking: only the batch's top ``risk_quantile`` (see the module docstring)."""
        return risk_seeking_advantages(rewards, self.risk_quantile, self.normalize)

    def batch_log_probs(self, tokens: List[Tokens]) -> Tuple[torch.Tensor, torch.Tensor]:
        """The batch and the queue's architectures scored in one controller pass (the update needs
        both; one pass of 14 rows costs about what one of 4 does), the queue's part kept for
        :meth:`auxiliary_loss`."""
        elite = self.elite.tokens() if self.queue_weight and self.elite.items else []
        self._elite_log_probs = None
        if not elite or all(t in self.kept for t in tokens):
            return super().batch_log_probs(tokens)
        log_probs, entropies = self.controller.score(list(tokens) + elite)
        n = len(tokens)
        self._elite_log_probs = log_probs[n:]
        return log_probs[:n], entropies[:n]

    def auxiliary_loss(self) -> torch.Tensor:
        """Priority-queue training: minus the weighted mean log-likelihood of the best K so far
        (scored with the batch in the update's pass, or here for the queue-only steps)."""
        if self.queue_weight == 0 or not self.elite.items:
            return torch.zeros(())
        scored, self._elite_log_probs = self._elite_log_probs, None
        if scored is None:
            scored = self.controller.score(self.elite.tokens())[0]
        return -self.queue_weight * scored.mean()

    def update(self, batch, origin=None) -> float:
        """The policy-gradient step (with the queue's term), then ``queue_steps`` steps on the queue alone."""
        loss = super().update(batch, origin)
        for _ in range(self._settings["queue_steps"]):
            self.optimizer.zero_grad()
            self.auxiliary_loss().backward()
            self.optimizer.step()
        return loss

    def state_dict(self) -> Dict[str, Any]:
        return {**super().state_dict(), "elite": self.elite.state(), "seen": sorted(self.seen),
                "told": [[list(t), r] for t, r in self.told], "recent": [[list(t), r] for t, r in self.recent]}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.elite.load(state["elite"])
        self.seen = set(state["seen"])
        self.told = [(tuple(int(v) for v in t), float(r)) for t, r in state.get("told", [])]
        self.recent = [(tuple(int(v) for v in t), float(r)) for t, r in state.get("recent", [])]

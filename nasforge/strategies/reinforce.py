"""REINFORCE with the LSTM controller, as in Zoph & Le (2017).

The gradient of a batch of ``m`` children is ``-(1/m) sum_k (R_k - b) grad log pi(a_k)`` minus an
entropy bonus, where ``b`` is an exponential moving average of earlier rewards: of the transformed
rewards the strategy is told (with the default cube transform, of cubed accuracies), where the
paper's baseline averages the accuracies themselves (a deviation). Log-probabilities
are recomputed at update time from the stored tokens. With one worker the controller does not
change between sampling and the update of a batch, so this is the exact on-policy gradient.

With several workers results arrive out of order, and a batch can hold children sampled before
the last update (the paper's asynchronous replicas have the same staleness). Such a child is
weighted by ``pi(a) / pi_old(a)``, with ``pi_old`` the probability stored when it was sampled, so
the batch still estimates the gradient of the current policy's expected reward; the ratio is
truncated at ``MAX_IMPORTANCE`` to bound the variance of very stale children.

Sampling keeps its autograd graph until the next update. A log-probability depends only on the
policy and the tokens, so when every child of a batch was drawn by the current policy in this
process, the update differentiates the graphs built while sampling instead of re-scoring the
tokens, which saves about a third of the controller's work per child. After a resume, or when a
child's tokens were sampled by an older policy, the batch is re-scored.

With ``dedup`` (off by default; the paper has none) a sample whose reward is already known, because
the same architecture was told before, is learnt from at once with that reward and replaced by
the next sample, so evaluations (trainings, tabular queries) go to new architectures only; after
``max_resamples`` known samples in a row the repeat is proposed anyway. Reusing a reward is exact
for a deterministic evaluation and ignores training noise otherwise.
"""

from __future__ import annotations

import io
from typing import Any, Dict, List, Optional, Tuple

import torch

from ..spaces.base import InvalidArchitectureError, Tokens
from .base import STRATEGIES, Proposal, Strategy
from .controller import Controller, allowed_next_of


MAX_IMPORTANCE = 10.0


def reinforce_loss(log_probs: torch.Tensor, entropies: torch.Tensor, rewards: torch.Tensor,
                   baseline: float, entropy_weight: float,
                   weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Surrogate whose gradient is the REINFORCE estimate (with entropy bonus) of a batch;
    ``weights`` are importance ratios for children sampled from an older policy."""
    advantages = rewards - baseline
    if weights is not None:
        advantages = advantages * weights
    return -(advantages * log_probs).mean() - entropy_weight * entropies.mean()


def importance_weights(log_probs: torch.Tensor, old_log_probs: List[Optional[float]],
                       stale: List[bool]) -> torch.Tensor:
    """pi(a) / pi_old(a) for stale children (truncated), exactly 1 for the others."""
    out = torch.ones(len(stale))
    for k, (old, is_stale) in enumerate(zip(old_log_probs, stale)):
        if is_stale and old is not None:
            out[k] = min(float(torch.exp(log_probs[k].detach() - old)), MAX_IMPORTANCE)
    return out


def moving_average(baseline: Optional[float], rewards: List[float], decay: float) -> Optional[float]:
    """The exponential moving average baseline after ``rewards``, in order (the first one starts it)."""
    for r in rewards:
        baseline = r if baseline is None else decay * baseline + (1 - decay) * r
    return baseline


def _serialised_policy(strategy: Any) -> Tuple[bytes, bytes]:
    """The controller and the optimiser as bytes, serialised once per update: they change only when
    the policy is updated, while the state is saved twice per trial. Two parts, so that a reader of
    the policy (the report's policy view) loads the controller's weights without Adam's moments,
    which are twice as many tensors."""
    cached = getattr(strategy, "_policy_bytes", None)
    if cached is None or cached[0] != strategy.updates:
        parts = []
        for content in ({"controller": strategy.controller.state_dict()}, strategy.optimizer.state_dict()):
            buf = io.BytesIO()
            torch.save(content, buf)
            parts.append(buf.getvalue())
        strategy._policy_bytes = (strategy.updates, tuple(parts))
    return strategy._policy_bytes[1]


def policy_state(strategy: Any) -> Dict[str, Any]:
    """The parts every controller-based strategy saves, copied so later updates leave them alone."""
    controller, optimizer = _serialised_policy(strategy)
    return {
        "policy": controller,
        "policy_optimizer": optimizer,
        "generator": strategy.generator.get_state().clone(),
        "baseline": strategy.baseline,
        "queue": [[list(t), lp, h] for t, lp, h in strategy.queue],
        "updates": strategy.updates,
    }


def load_policy_state(strategy: Any, state: Dict[str, Any]) -> None:
    """Inverse of :func:`policy_state`; also reads the states saved before: the controller and the
    optimiser in one ``policy`` part, and before that both inline."""
    if "policy" in state:
        policy = torch.load(io.BytesIO(state["policy"]), weights_only=True)
        if "policy_optimizer" in state:
            policy["optimizer"] = torch.load(io.BytesIO(state["policy_optimizer"]), weights_only=True)
    else:
        policy = {"controller": state["controller"], "optimizer": state["optimizer"]}
    strategy.controller.load_state_dict(policy["controller"])
    strategy.optimizer.load_state_dict(policy["optimizer"])
    strategy.generator.set_state(state["generator"])
    strategy.baseline = state["baseline"]
    strategy.queue = [(tuple(t), float(lp), float(h)) for t, lp, h in state["queue"]]
    strategy.updates = int(state["updates"])
    strategy._policy_bytes = (strategy.updates, (state["policy"], state["policy_optimizer"])) \
        if "policy_optimizer" in state else None


@STRATEGIES.register("reinforce")
class Reinforce(Strategy):
    name = "reinforce"

    def __init__(self, hidden_size: int = 35, num_layers: int = 2, init_range: float = 0.08,
                 learning_rate: float = 0.0006, batch_size: int = 8, baseline_decay: float = 0.95,
                 entropy_weight: float = 1e-4, dedup: bool = False, max_resamples: int = 100):
        super().__init__(hidden_size=hidden_size, num_layers=num_layers, init_range=init_range,
                         learning_rate=learning_rate, batch_size=batch_size,
                         baseline_decay=baseline_decay, entropy_weight=entropy_weight, dedup=dedup,
                         max_resamples=max_resamples)
        if batch_size < 1:
            raise ValueError(f"reinforce: batch_size must be at least 1, got {batch_size}")
        if not 0.0 <= baseline_decay < 1.0:
            raise ValueError(f"reinforce: baseline_decay must be in [0, 1), got {baseline_decay}")
        if learning_rate <= 0:
            raise ValueError(f"reinforce: learning_rate must be positive, got {learning_rate}")
        self.batch_size = int(batch_size)
        self.baseline_decay = float(baseline_decay)
        self.entropy_weight = float(entropy_weight)
        self.learning_rate = float(learning_rate)
        if isinstance(max_resamples, bool) or not isinstance(max_resamples, int) or max_resamples < 0:
            raise ValueError(f"reinforce: max_resamples must be a non-negative integer, got {max_resamples!r}")
        self.dedup = bool(dedup)
        self.max_resamples = max_resamples

    def setup(self, space, seed):
        super().setup(space, seed)
        s = self._settings
        torch.manual_seed(self.seed)  # parameter initialisation only
        self.controller = Controller(space.decisions, s["hidden_size"], s["num_layers"], s["init_range"],
                                     allowed_next_of(space))
        # foreach: one kernel per step over the many small tensors; the same numbers as the
        # per-tensor loop (checked bit for bit), a fifth of the ask+tell overhead less
        self.optimizer = torch.optim.Adam(self.controller.parameters(), lr=self.learning_rate, foreach=True)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.baseline: Optional[float] = None
        self.buffer: List[Tuple[Tokens, float]] = []
        self.buffer_origin: List[Tuple[Optional[float], int]] = []  # (log-prob at sampling, policy version)
        self.queue: List[Tuple[Tokens, float, float]] = []
        self.updates = 0
        # graphs of the current policy's samples, by tokens; never saved, dropped at every update
        self.kept: Dict[Tokens, Tuple[torch.Tensor, torch.Tensor]] = {}
        self.known: Dict[str, float] = {}  # dedup: reward of every architecture told, by arch_hash

    def ask(self) -> Proposal:
        """The next sample; with ``dedup``, samples whose reward is already known are learnt from
        at once (they cost no evaluation) and replaced, up to ``max_resamples`` times."""
        proposal = self._sample()
        for _ in range(self.max_resamples if self.dedup else 0):
            reward = self.known.get(self._key(proposal.tokens))
            if reward is None:
                break
            self.tell(proposal.tokens, reward, proposal.info)
            proposal = self._sample()
        return proposal

    def _key(self, tokens: Tokens) -> str:
        """``arch_hash``, or the raw tokens for an invalid architecture (its penalty is known too)."""
        try:
            return self.space.arch_hash(tokens)
        except InvalidArchitectureError:
            return "invalid:" + ",".join(map(str, tokens))

    def _sample(self) -> Proposal:
        # The policy is fixed until m results arrive, so the next m children are drawn in one
        # batched pass; the queue is dropped when the policy changes.
        if not self.queue:
            tokens, log_probs, entropies = self.controller.run(generator=self.generator, batch=self.batch_size)
            self.queue = [(tuple(int(v) for v in t), float(lp), float(h))
                          for t, lp, h in zip(tokens.tolist(), log_probs.detach(), entropies.detach())]
            for k, (t, _, _) in enumerate(self.queue):
                self.kept[t] = (log_probs[k], entropies[k])
        tokens, log_prob, entropy = self.queue.pop(0)
        return Proposal(tokens, {"log_prob": log_prob, "entropy": entropy, "policy_version": self.updates})

    def tell(self, tokens: Tokens, reward: float, info: Dict[str, Any]) -> None:
        self.buffer.append((tuple(tokens), float(reward)))
        if self.dedup:
            self.known.setdefault(self._key(tokens), float(reward))
        self.buffer_origin.append((info.get("log_prob"), int(info.get("policy_version", self.updates))))
        if len(self.buffer) >= self.batch_size:
            self.update(self.buffer, self.buffer_origin)
            self.buffer, self.buffer_origin = [], []
            self.queue = []
            self.kept = {}

    def batch_log_probs(self, tokens: List[Tokens]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities and entropies of a batch, with gradient: the graphs built while
        sampling when the current policy drew every child here, else the tokens re-scored."""
        if all(t in self.kept for t in tokens):
            return (torch.stack([self.kept[t][0] for t in tokens]),
                    torch.stack([self.kept[t][1] for t in tokens]))
        return self.controller.score(tokens)

    def advantages(self, rewards: torch.Tensor, baseline: float) -> torch.Tensor:
        """R - b, the paper's advantage; a subclass may shape it (benchmarks/hardware/reinforce_variants.py)."""
        return rewards - baseline

    def auxiliary_loss(self) -> torch.Tensor:
        """A term added to the policy-gradient loss in the same step (none here; reinforce_elite.py
        adds priority-queue training)."""
        return torch.zeros(())

    def update(self, batch: List[Tuple[Tokens, float]],
               origin: Optional[List[Tuple[Optional[float], int]]] = None) -> float:
        rewards = torch.tensor([r for _, r in batch], dtype=torch.float32)
        baseline = float(rewards.mean()) if self.baseline is None else self.baseline
        log_probs, entropies = self.batch_log_probs([t for t, _ in batch])
        weights = None
        if origin is not None and any(version != self.updates for _, version in origin):
            weights = importance_weights(log_probs, [lp for lp, _ in origin],
                                         [version != self.updates for _, version in origin])
        # the advantages are given whole, so the loss subtracts a zero baseline (exactly a no-op)
        loss = reinforce_loss(log_probs, entropies, self.advantages(rewards, baseline), 0.0,
                              self.entropy_weight, weights) + self.auxiliary_loss()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.baseline = moving_average(self.baseline, rewards.tolist(), self.baseline_decay)
        self.updates += 1
        return float(loss.detach())

    def state_dict(self) -> Dict[str, Any]:
        """A snapshot: copies, so that later updates do not change a state already handed out."""
        return {
            **super().state_dict(),
            **policy_state(self),
            "buffer": [list(t) for t, _ in self.buffer],
            "buffer_rewards": [r for _, r in self.buffer],
            "buffer_origin": [list(o) for o in self.buffer_origin],
            "known": sorted(self.known.items()),
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        super().load_state_dict(state)
        load_policy_state(self, state)
        self.buffer = [(tuple(t), r) for t, r in zip(state["buffer"], state["buffer_rewards"])]
        origin = state.get("buffer_origin") or [[None, self.updates]] * len(self.buffer)
        self.buffer_origin = [(lp, int(v)) for lp, v in origin]
        self.kept = {}
        self.known = {h: float(r) for h, r in state.get("known", [])}

"""Proximal policy optimisation with the LSTM controller, as NASNet (Zoph et al. 2018) and MnasNet
(Tan et al. 2019) trained their controllers.

The controller is reinforce's (``controller.py``), generic over any space's decisions. After
``batch_size`` results, ``epochs`` passes of Adam minimise the clipped surrogate

    -mean(min(rho * A, clip(rho, 1 - eps, 1 + eps) * A)) - w * H,   rho = pi(a) / pi_old(a)

where ``pi_old`` is the probability at sampling time (stored in ``Proposal.info["log_prob"]``, so
a result that arrives late, or after a resume, is weighted correctly) and ``H`` the entropy. The
clipping lets several epochs reuse one batch of costly evaluations without the policy running
away from the data that justified the step. ``A`` is the reward standardised within the batch
(``normalize_advantages``, the default), which makes the step size independent of the metric's
scale, or else the reward minus a moving-average baseline.

Defaults (learning rate 0.005, entropy weight 0.1 against unit-scale advantages) were chosen on
NAS-Bench-201 and NAS-Bench-Graph with ``benchmarks/search/tune_strategies.py``: a smaller entropy bonus
lets the policy collapse onto one architecture within ~150 queries and repeat it.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import torch

from ..spaces.base import InvalidArchitectureError, Tokens
from .base import STRATEGIES, Proposal, Strategy
from .controller import Controller, allowed_next_of
from .reinforce import load_policy_state, moving_average, policy_state


def ppo_loss(log_probs: torch.Tensor, old_log_probs: torch.Tensor, advantages: torch.Tensor,
             entropies: torch.Tensor, clip: float, entropy_weight: float) -> torch.Tensor:
    """The clipped surrogate objective (negated, to minimise) with an entropy bonus."""
    ratio = torch.exp(log_probs - old_log_probs)
    clipped = torch.clamp(ratio, 1.0 - clip, 1.0 + clip)
    surrogate = torch.minimum(ratio * advantages, clipped * advantages)
    return -surrogate.mean() - entropy_weight * entropies.mean()


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive(name: str, value: Any, integer: bool = False) -> None:
    if not (isinstance(value, int) if integer else _number(value)) or isinstance(value, bool) or not value > 0:
        raise ValueError(f"ppo: {name} must be a positive {'integer' if integer else 'number'}, got {value!r}")


@STRATEGIES.register("ppo")
class PPO(Strategy):
    name = "ppo"

    def __init__(self, hidden_size: int = 35, num_layers: int = 2, init_range: float = 0.08,
                 learning_rate: float = 0.005, batch_size: int = 8, epochs: int = 4,
                 clip: float = 0.2, baseline_decay: float = 0.95, normalize_advantages: bool = True,
                 entropy_weight: float = 0.1, max_resamples: int = 100):
        super().__init__(hidden_size=hidden_size, num_layers=num_layers, init_range=init_range,
                         learning_rate=learning_rate, batch_size=batch_size, epochs=epochs, clip=clip,
                         baseline_decay=baseline_decay, normalize_advantages=normalize_advantages,
                         entropy_weight=entropy_weight, max_resamples=max_resamples)
        for name in ("hidden_size", "num_layers", "batch_size", "epochs", "max_resamples"):
            _positive(name, locals()[name], integer=True)
        for name in ("init_range", "learning_rate", "clip"):
            _positive(name, locals()[name])
        if not clip < 1:
            raise ValueError(f"ppo: clip must be in (0, 1), got {clip!r}")
        if not _number(baseline_decay) or not 0.0 <= baseline_decay < 1.0:
            raise ValueError(f"ppo: baseline_decay must be in [0, 1), got {baseline_decay!r}")
        if not _number(entropy_weight) or not entropy_weight >= 0:
            raise ValueError(f"ppo: entropy_weight must be non-negative, got {entropy_weight!r}")
        self.batch_size = batch_size
        self.epochs = epochs
        self.clip = float(clip)
        self.baseline_decay = float(baseline_decay)
        self.normalize_advantages = bool(normalize_advantages)
        self.entropy_weight = float(entropy_weight)
        self.max_resamples = max_resamples

    def setup(self, space, seed):
        super().setup(space, seed)
        s = self._settings
        init = torch.Generator().manual_seed(self.seed)
        self.controller = Controller(space.decisions, s["hidden_size"], s["num_layers"], s["init_range"],
                                     allowed_next_of(space))
        with torch.no_grad():  # re-initialise from our own generator: no global RNG
            for p in self.controller.parameters():
                p.copy_(torch.rand(p.shape, generator=init) * 2 * s["init_range"] - s["init_range"])
        self.optimizer = torch.optim.Adam(self.controller.parameters(), lr=s["learning_rate"], foreach=True)
        self.generator = torch.Generator().manual_seed(self.seed + 1)
        self.baseline: Optional[float] = None
        self.buffer: List[Tuple[Tokens, float, float]] = []  # (tokens, reward, old log-prob)
        self.queue: List[Tuple[Tokens, float, float]] = []  # sampled, not yet asked
        self.updates = 0

    def _valid(self, tokens: Tokens) -> bool:
        try:
            self.space.validate(tokens)
            return True
        except InvalidArchitectureError:
            return False

    def ask(self) -> Proposal:
        # A batch is sampled in one pass; spaces that forbid some token sequences (e.g. NAS-Bench-
        # Graph's all-skip network) get invalid samples dropped and the batch topped up.
        for _ in range(self.max_resamples):
            if self.queue:
                break
            with torch.no_grad():
                tokens, log_probs, entropies = self.controller.run(generator=self.generator, batch=self.batch_size)
            self.queue = [(tuple(int(v) for v in t), float(lp), float(h))
                          for t, lp, h in zip(tokens.tolist(), log_probs, entropies) if self._valid(tuple(t))]
        if not self.queue:
            raise RuntimeError("ppo: the controller keeps sampling architectures the space rejects")
        tokens, log_prob, entropy = self.queue.pop(0)
        return Proposal(tokens, {"log_prob": log_prob, "entropy": entropy, "policy_version": self.updates})

    def tell(self, tokens: Tokens, reward: float, info: Dict[str, Any]) -> None:
        tokens = tuple(int(t) for t in tokens)
        old = info.get("log_prob")
        if old is None:  # not proposed by this strategy: treat it as on-policy now
            with torch.no_grad():
                old = float(self.controller.score([tokens])[0][0])
        self.buffer.append((tokens, float(reward), float(old)))
        if len(self.buffer) >= self.batch_size:
            self.update(self.buffer)
            self.buffer = []
            self.queue = []

    def update(self, batch: List[Tuple[Tokens, float, float]]) -> float:
        tokens = [t for t, _, _ in batch]
        rewards = torch.tensor([r for _, r, _ in batch], dtype=torch.float32)
        old_log_probs = torch.tensor([lp for _, _, lp in batch], dtype=torch.float32)
        if self.normalize_advantages:  # batch-standardised: scale-free, so one lr fits any metric
            advantages = (rewards - rewards.mean()) / (rewards.std(correction=0) + 1e-8)
        else:
            advantages = rewards - (float(rewards.mean()) if self.baseline is None else self.baseline)
        loss = torch.tensor(0.0)
        for _ in range(self.epochs):
            log_probs, entropies = self.controller.score(tokens)
            loss = ppo_loss(log_probs, old_log_probs, advantages, entropies, self.clip, self.entropy_weight)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
        self.baseline = moving_average(self.baseline, rewards.tolist(), self.baseline_decay)
        self.updates += 1
        return float(loss.detach())

    def state_dict(self) -> Dict[str, Any]:
        return {
            **super().state_dict(),
            **policy_state(self),  # copies: the live tensors change with the next update
            "buffer": [[list(t), r, lp] for t, r, lp in self.buffer],
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        super().load_state_dict(state)
        load_policy_state(self, state)
        self.buffer = [(tuple(t), float(r), float(lp)) for t, r, lp in state["buffer"]]

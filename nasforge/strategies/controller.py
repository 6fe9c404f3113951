"""The Zoph & Le (2017) controller: an LSTM that emits an architecture one decision at a time.

Every categorical decision has its own softmax head and its own embedding; the embedding of the
chosen value is the next step's input. Spaces with skip-connection decisions (``Decision.source``)
get one anchor step per layer: its hidden state ``h_i`` is the layer's anchor, and

    P(layer j feeds layer i) = sigmoid(v^T tanh(W_prev h_j + W_curr h_i))

decides each connection. The input after an anchor step is the mean of the chosen layers' anchors
(a learned vector when none is chosen).

The same code samples (batched, with or without gradient) and scores given tokens (teacher
forcing, batched, with gradient), so re-scoring gives exactly the probabilities sampled from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..spaces.base import Decision


@dataclass(frozen=True)
class _Step:
    kind: str  # "choice" or "anchor"
    layer: Optional[int]
    indices: Tuple[int, ...]  # decision indices answered at this step


def plan_steps(decisions: Sequence[Decision]) -> List[_Step]:
    """Group decisions into controller steps; anchor steps open each layer of a skip-aware space."""
    has_anchors = any(d.source is not None for d in decisions)
    steps: List[_Step] = []
    anchored = set()
    i, n = 0, len(decisions)
    while i < n:
        d = decisions[i]
        if has_anchors and d.layer is not None and d.layer not in anchored:
            anchored.add(d.layer)
            group = []
            while i < n and decisions[i].source is not None and decisions[i].layer == d.layer:
                if decisions[i].source not in anchored or decisions[i].source == d.layer:
                    raise ValueError(
                        f"decision {decisions[i].name!r}: source layer {decisions[i].source} "
                        "must be an earlier layer"
                    )
                group.append(i)
                i += 1
            steps.append(_Step("anchor", d.layer, tuple(group)))
            continue
        if d.source is not None:
            raise ValueError(
                f"decision {d.name!r}: skip decisions must come first in their layer's group"
            )
        steps.append(_Step("choice", d.layer, (i,)))
        i += 1
    return steps


class Controller(nn.Module):
    def __init__(self, decisions: Sequence[Decision], hidden_size: int = 35, num_layers: int = 2,
                 init_range: float = 0.08):
        super().__init__()
        self.decisions = list(decisions)
        self.steps = plan_steps(self.decisions)
        self.hidden_size = hidden_size
        self.cells = nn.ModuleList(
            [nn.LSTMCell(hidden_size, hidden_size) for _ in range(num_layers)]
        )
        self.start = nn.Parameter(torch.zeros(1, hidden_size))
        self.heads = nn.ModuleDict()
        self.embeddings = nn.ModuleDict()
        for step in self.steps:
            if step.kind == "choice":
                d = self.decisions[step.indices[0]]
                key = str(step.indices[0])
                self.heads[key] = nn.Linear(hidden_size, d.size)
                self.embeddings[key] = nn.Embedding(d.size, hidden_size)
        self.has_anchors = any(s.kind == "anchor" for s in self.steps)
        if self.has_anchors:
            self.w_prev = nn.Linear(hidden_size, hidden_size, bias=False)
            self.w_curr = nn.Linear(hidden_size, hidden_size, bias=False)
            self.v = nn.Linear(hidden_size, 1, bias=False)
            self.no_input = nn.Parameter(torch.zeros(1, hidden_size))
        for p in self.parameters():
            nn.init.uniform_(p, -init_range, init_range)

    def _cell(self, x: torch.Tensor, state: List[Tuple[torch.Tensor, torch.Tensor]]):
        new_state = []
        for cell, (h, c) in zip(self.cells, state):
            h, c = cell(x, (h, c))
            new_state.append((h, c))
            x = h
        return x, new_state

    def run(self, tokens: Optional[torch.Tensor] = None, generator: Optional[torch.Generator] = None,
            batch: int = 1) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample (``tokens`` None) or score given ``tokens`` of shape (batch, decisions).

        Returns tokens (batch, decisions), log-probabilities (batch,) and entropies (batch,).
        """
        sampling = tokens is None
        if not sampling:
            batch = tokens.shape[0]
        n = len(self.decisions)
        out = torch.zeros(batch, n, dtype=torch.long) if sampling else tokens.long()
        zeros = torch.zeros(batch, self.hidden_size)
        state = [(zeros, zeros) for _ in self.cells]
        x = self.start.expand(batch, -1)
        log_prob = torch.zeros(batch)
        entropy = torch.zeros(batch)
        anchors: dict = {}
        for step in self.steps:
            h, state = self._cell(x, state)
            if step.kind == "choice":
                index = step.indices[0]
                key = str(index)
                logits = self.heads[key](h)
                logp = torch.log_softmax(logits, dim=-1)
                if sampling:  # ``choice`` stays its own tensor: ``out`` changes in place later
                    choice = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(1)
                    out[:, index] = choice
                else:
                    choice = out[:, index]
                log_prob = log_prob + logp.gather(1, choice[:, None]).squeeze(1)
                entropy = entropy - (logp.exp() * logp).sum(dim=1)
                x = self.embeddings[key](choice)
            else:
                anchors[step.layer] = h
                if not step.indices:
                    x = self.no_input.expand(batch, -1)
                    continue
                sources = [self.decisions[i].source for i in step.indices]
                prev = torch.stack([anchors[j] for j in sources], dim=1)  # (batch, k, hidden)
                score = self.v(torch.tanh(self.w_prev(prev) + self.w_curr(h)[:, None, :])).squeeze(2)
                p = torch.sigmoid(score)
                cols = list(step.indices)
                if sampling:
                    out[:, cols] = torch.bernoulli(p.detach(), generator=generator).long()
                bits = out[:, cols].to(p.dtype)
                log_p1 = torch.nn.functional.logsigmoid(score)
                log_p0 = torch.nn.functional.logsigmoid(-score)
                log_prob = log_prob + (bits * log_p1 + (1 - bits) * log_p0).sum(dim=1)
                entropy = entropy - (p * log_p1 + (1 - p) * log_p0).sum(dim=1)
                count = bits.sum(dim=1, keepdim=True)
                mean_anchor = (bits[:, :, None] * prev).sum(dim=1) / count.clamp(min=1)
                x = torch.where(count > 0, mean_anchor, self.no_input.expand(batch, -1))
        return out, log_prob, entropy

    @torch.no_grad()
    def sample(self, generator: Optional[torch.Generator] = None) -> Tuple[Tuple[int, ...], float, float]:
        tokens, log_prob, entropy = self.run(generator=generator, batch=1)
        return tuple(int(t) for t in tokens[0]), float(log_prob[0]), float(entropy[0])

    def score(self, tokens: Sequence[Sequence[int]]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities and entropies of given architectures, with gradient."""
        _, log_prob, entropy = self.run(tokens=torch.as_tensor(list(map(list, tokens)), dtype=torch.long))
        return log_prob, entropy

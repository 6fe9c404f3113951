"""The Zoph & Le (2017) controller: an LSTM that emits an architecture one decision at a time.

Every categorical decision has its own softmax head and its own embedding; the embedding of the
chosen value is the next step's input. Spaces with skip-connection decisions (``Decision.source``)
get one anchor step per layer: its hidden state ``h_i`` is the layer's anchor, and

    P(layer j feeds layer i) = sigmoid(v^T tanh(W_prev h_j + W_curr h_i))

decides each connection. The input after an anchor step is the mean of the chosen layers' anchors
(a learned vector when none is chosen).

Deviations from the paper, nasforge's own choices where it says nothing: the first step's input
is a learned start vector, and the input after an anchor step (the mean of the chosen anchors, or
the learned vector) is not stated in the paper either (docs/architecture.md, "Where nasforge
differs from the paper").

The same code samples (batched, with or without gradient) and scores given tokens (teacher
forcing, batched, with gradient), so re-scoring gives exactly the probabilities sampled from.

A space that cannot evaluate every combination of in-range tokens (NAS-Bench-Graph has no
all-skip network; a table made from a sample holds only its rows) may define
``allowed_next(prefix)``: the values the decision after ``prefix`` may take so that the tokens can
still end in an architecture the space evaluates, or None for any (a space that restricts nothing
may set the attribute itself to None: the controller then runs unmasked). The controller samples
from its distribution renormalised over those values (a forced choice costs log 1 = 0), so it
never spends a query on an architecture the space would refuse, and scoring applies the same
masks, so re-scored probabilities stay the sampled ones. Tokens the mask excludes (told from
outside, not sampled) are scored by the unmasked policy from the decision where they leave it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
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


AllowedNext = Callable[[Tuple[int, ...]], Optional[Sequence[int]]]


def allowed_next_of(space) -> Optional[AllowedNext]:
    """The space's ``allowed_next`` hook, or None where it can evaluate every token sequence."""
    return space.allowed_next


class Controller(nn.Module):
    def __init__(self, decisions: Sequence[Decision], hidden_size: int = 35, num_layers: int = 2,
                 init_range: float = 0.08, allowed_next: Optional[AllowedNext] = None):
        super().__init__()
        self.decisions = list(decisions)
        self.allowed_next = allowed_next
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

    def _mask(self, out: torch.Tensor, index: int, sampling: bool) -> Optional[torch.Tensor]:
        """(batch, choices) bool: what decision ``index`` may take after each row's prefix; None
        when every row may take anything (then the unmasked code runs, bit for bit as before)."""
        size = self.decisions[index].size
        given = out[:, index].tolist() if not sampling else None
        mask = None
        rows_of: dict = {}
        for r, prefix in enumerate(out[:, :index].tolist()):
            rows_of.setdefault(tuple(prefix), []).append(r)
        for prefix, rows in rows_of.items():  # one call per distinct prefix
            values = self.allowed_next(prefix)
            if values is None:
                continue
            allowed = np.zeros(size, dtype=bool)
            allowed[list(values)] = True
            if not allowed.any():
                raise ValueError(f"the space allows no value of {self.decisions[index].name!r} after {list(prefix)}")
            if allowed.all():
                continue
            if given is not None:  # tokens from outside the mask: scored unmasked (see the module docstring)
                rows = [r for r in rows if allowed[given[r]]]
            if rows:
                if mask is None:
                    mask = np.ones((out.shape[0], size), dtype=bool)
                mask[rows] = allowed
        return None if mask is None else torch.from_numpy(mask)

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
                mask = None if self.allowed_next is None else self._mask(out, index, sampling)
                if mask is not None:  # renormalise over the allowed values
                    logits = logits.masked_fill(~mask, -math.inf)
                logp = torch.log_softmax(logits, dim=-1)
                if sampling:  # ``choice`` stays its own tensor: ``out`` changes in place later
                    choice = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(1)
                    out[:, index] = choice
                else:
                    choice = out[:, index]
                log_prob = log_prob + logp.gather(1, choice[:, None]).squeeze(1)
                if mask is None:
                    entropy = entropy - (logp.exp() * logp).sum(dim=1)
                else:  # excluded values add 0 (not 0 * -inf, which is NaN)
                    entropy = entropy - (logp.exp() * logp.masked_fill(~mask, 0.0)).sum(dim=1)
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
                free = None  # (batch, k): 1 where a bit was drawn, 0 where the space forced it
                if self.allowed_next is not None:
                    free = self._anchor_bits(out, cols, p, sampling, generator)
                elif sampling:
                    out[:, cols] = torch.bernoulli(p.detach(), generator=generator).long()
                bits = out[:, cols].to(p.dtype)
                log_p1 = torch.nn.functional.logsigmoid(score)
                log_p0 = torch.nn.functional.logsigmoid(-score)
                chosen = bits * log_p1 + (1 - bits) * log_p0
                spread = p * log_p1 + (1 - p) * log_p0
                if free is not None:
                    chosen, spread = chosen * free, spread * free
                log_prob = log_prob + chosen.sum(dim=1)
                entropy = entropy - spread.sum(dim=1)
                count = bits.sum(dim=1, keepdim=True)
                mean_anchor = (bits[:, :, None] * prev).sum(dim=1) / count.clamp(min=1)
                x = torch.where(count > 0, mean_anchor, self.no_input.expand(batch, -1))
        return out, log_prob, entropy

    def _anchor_bits(self, out: torch.Tensor, cols: List[int], p: torch.Tensor, sampling: bool,
                      generator: Optional[torch.Generator]) -> torch.Tensor:
        """Skip bits within what the space allows: drawn together as without a mask (the draws are
        independent, so the random stream stays the same), then visited in order, and a bit with
        one allowed value after the bits before it is set to it (probability 1). Returns which
        bits were free."""
        if sampling:
            out[:, cols] = torch.bernoulli(p.detach(), generator=generator).long()
        free = torch.ones_like(p)
        for j, col in enumerate(cols):
            mask = self._mask(out, col, sampling)
            if mask is None:
                continue
            forced = mask.sum(dim=1) == 1
            if sampling:
                out[:, col] = torch.where(forced, mask[:, 1].long(), out[:, col])
            free[:, j] = (~forced).to(p.dtype)
        return free

    @torch.no_grad()
    def sample(self, generator: Optional[torch.Generator] = None) -> Tuple[Tuple[int, ...], float, float]:
        tokens, log_prob, entropy = self.run(generator=generator, batch=1)
        return tuple(int(t) for t in tokens[0]), float(log_prob[0]), float(entropy[0])

    def score(self, tokens: Sequence[Sequence[int]]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities and entropies of given architectures, with gradient."""
        _, log_prob, entropy = self.run(tokens=torch.as_tensor(list(map(list, tokens)), dtype=torch.long))
        return log_prob, entropy

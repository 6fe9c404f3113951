"""Small MLPs trained together as one batched model: BANANAS' predictor network.

Shared by the ``bananas`` strategy and the ``mlp-ensemble`` predictor so that both agree; it lives
here, below the strategies, so that strategies import predictors and never the other way round.
"""

from __future__ import annotations

import math
from typing import List, Tuple

import torch


class Ensemble:
    """``members`` MLPs trained together as batched matrix products (full batch, Adam, MSE).

    All weights live in one flat tensor, updated by a few lines of Adam: for networks this small,
    ``torch.optim``'s per-step bookkeeping would cost more than the arithmetic.
    """

    def __init__(self, members: int, inputs: int, hidden: int, layers: int, generator: torch.Generator):
        sizes = [inputs] + [hidden] * layers + [1]
        self.shapes, chunks = [], []
        for fan_in, fan_out in zip(sizes, sizes[1:]):
            bound = 1.0 / math.sqrt(fan_in)  # torch.nn.Linear's default range
            for shape in ((members, fan_in, fan_out), (members, 1, fan_out)):
                self.shapes.append(shape)
                chunks.append(((torch.rand(shape, generator=generator) * 2 - 1) * bound).flatten())
        self.flat = torch.cat(chunks).requires_grad_()

    def _params(self) -> List[torch.Tensor]:
        out, start = [], 0
        for shape in self.shapes:
            size = math.prod(shape)
            out.append(self.flat[start:start + size].view(shape))
            start += size
        return out

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(n, inputs) -> (members, n) predictions."""
        params = self._params()
        h = x.expand(params[0].shape[0], -1, -1)
        for i in range(0, len(params), 2):
            h = torch.baddbmm(params[i + 1], h, params[i])
            if i + 2 < len(params):
                h = torch.relu(h)
        return h.squeeze(2)

    def fit(self, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float,
            betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        m = torch.zeros_like(self.flat)
        v = torch.zeros_like(self.flat)
        for t in range(1, steps + 1):
            loss = ((self(x) - y) ** 2).mean()
            (grad,) = torch.autograd.grad(loss, self.flat)
            with torch.no_grad():
                m.mul_(betas[0]).add_(grad, alpha=1 - betas[0])
                v.mul_(betas[1]).addcmul_(grad, grad, value=1 - betas[1])
                step = lr * math.sqrt(1 - betas[1] ** t) / (1 - betas[0] ** t)
                self.flat.addcdiv_(m, v.sqrt().add_(eps), value=-step)

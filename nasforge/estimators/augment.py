"""Training-time augmentation: random circular shifts along the spatial axes, and mixup.

A shifted example keeps its label when the class does not depend on where the pattern sits.
MNIST-1D is built that way (each signal is a digit template translated circularly before noise,
shear and subsampling). Off by default (``shift = 0``): on MNIST-1D's validation split it helped
the final retrain without label smoothing but not with it (docs/benchmarks.md). Shifts wrap
around, so no value is invented at the border; on images with an empty border (MNIST, digits) a
small wrap-around shift is a translation.

Mixup (Zhang et al., 2018) trains on convex combinations of pairs of examples, with the loss
mixed in the same proportion; it is off by default (``mixup = 0``).
"""

from __future__ import annotations

from typing import Tuple

import numpy as np
import torch


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Roll each example of ``x`` (batch, channels, *spatial) by its own offset in
    [-max_shift, max_shift] along every spatial axis; the same offset for all its channels."""
    if max_shift <= 0:
        return x
    n, dims = x.shape[0], x.dim() - 2
    if dims < 1:
        raise ValueError(f"cannot shift inputs of shape {tuple(x.shape)}: no spatial axis")
    offsets = torch.randint(-max_shift, max_shift + 1, (n, dims), generator=generator).to(x.device)
    out = x
    for axis in range(dims):
        size = x.shape[2 + axis]
        positions = torch.arange(size, device=x.device)
        # out[..., p, ...] = x[..., (p - offset) mod size, ...]
        index = (positions[None, :] - offsets[:, axis : axis + 1]) % size  # (n, size)
        view = [n] + [1] * dims
        view[1 + axis] = size  # index varies along this axis only
        index = index.view(*view).unsqueeze(1).expand_as(out)
        out = torch.gather(out, 2 + axis, index)
    return out


def mixup(x: torch.Tensor, alpha: float, generator: torch.Generator,
          rng: np.random.Generator) -> Tuple[torch.Tensor, torch.Tensor, float]:
    """Mix each example with a random partner: returns ``lam * x + (1 - lam) * x[partner]``, the
    partner indices and ``lam ~ Beta(alpha, alpha)``; the loss is mixed with the same ``lam``."""
    partner = torch.randperm(x.shape[0], generator=generator).to(x.device)
    lam = float(rng.beta(alpha, alpha))
    return lam * x + (1 - lam) * x[partner], partner, lam

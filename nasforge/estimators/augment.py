"""Training-time augmentation: random circular shifts along the spatial axes, and mixup.

A shifted example keeps its label when the class does not depend on where the pattern sits.
MNIST-1D is built that way (each signal is a digit template translated circularly before noise,
shear and subsampling). Off by default (``shift = 0``): on MNIST-1D's validation split it helped
the final retrain without label smoothing but not with it (docs/benchmarks.md). Shifts wrap
around, so no value is invented at the border; on images with an empty border (MNIST, digits) a
small wrap-around shift is a translation.

Mixup (Zhang et al., 2018) trains on convex combinations of pairs of examples, with the loss
mixed in the same proportion; it is off by default (``mixup = 0``).

For images, the two augmentations of the ResNet / NAS-Bench-201 CIFAR recipe: a random crop of
the image's own size from the image zero-padded by ``crop_padding`` pixels on every side, and a
horizontal flip of half the images (``flip``). Both are off by default and refused on 1-D data
(a signal has no horizontal axis, and a crop would invent zeros where a shift wraps).
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


def check_image_settings(crop_padding: int, flip: bool, dims: int = 2) -> None:
    """Raise ValueError for a bad setting, or for either one turned on with data of ``dims`` != 2 axes."""
    if isinstance(crop_padding, bool) or not isinstance(crop_padding, int) or crop_padding < 0:
        raise ValueError(f"crop_padding must be a non-negative whole number of pixels, got {crop_padding!r}")
    if not isinstance(flip, bool):
        raise ValueError(f"flip must be true or false, got {flip!r}")
    if dims != 2 and (crop_padding or flip):
        raise ValueError(f"training.crop_padding and training.flip augment images (2-D data); this data is {dims}-D "
                         "(for signals use training.shift)")


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Each image of ``x`` (batch, channels, height, width) zero-padded by ``padding`` on every side,
    then cropped back to its size at its own offset (top, left) drawn from [0, 2 * padding]."""
    if padding <= 0:
        return x
    check_image_settings(padding, False, x.dim() - 2)
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator).to(x.device)
    rows = (offsets[:, :1] + torch.arange(h, device=x.device))[:, None, :, None].expand(n, x.shape[1], h, w + 2 * padding)
    picked = torch.gather(padded, 2, rows)
    cols = (offsets[:, 1:] + torch.arange(w, device=x.device))[:, None, None, :].expand(n, x.shape[1], h, w)
    return torch.gather(picked, 3, cols)


def random_flip(x: torch.Tensor, on: bool, generator: torch.Generator) -> torch.Tensor:
    """Each image of ``x`` (batch, channels, height, width) mirrored left-right with probability 1/2."""
    if not on:
        return x
    check_image_settings(0, True, x.dim() - 2)
    flipped = torch.rand(x.shape[0], generator=generator).to(x.device) < 0.5
    return torch.where(flipped[:, None, None, None], x.flip(3), x)

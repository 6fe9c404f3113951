"""Fake quantisation: the forward pass sees weights (or activations) rounded to a few levels, the
backward pass lets the gradient through as if nothing were rounded (the straight-through
estimator, Bengio et al. 2013; BinaryConnect, Courbariaux et al. 2015).

Weights are quantised per output channel (dimension 0), symmetrically:

* 1 bit: ``sign(w) * mean(|w|)`` of the channel (XNOR-Net's scaled binarisation, Rastegari et al.
  2016); ``sign(0)`` is taken as +1, so every weight is one of two levels.
* 2, 4, 8 bits: ``round(w / s)`` clipped to ``[-(2^(b-1) - 1), 2^(b-1) - 1]``, times ``s =
  max(|w|) / (2^(b-1) - 1)`` of the channel: 3, 15 and 255 levels, zero among them.
* 32 bits: unchanged (off).

Activations are quantised per tensor, unsigned when they are non-negative (after a ReLU) and
symmetric otherwise, with the range of the tensor at hand (a calibrated range can be passed).
Only torch is imported, so an exported network can carry this file verbatim.
"""

from __future__ import annotations

from typing import Optional

import torch

WEIGHT_BITS = (1, 2, 4, 8, 32)
ACTIVATION_BITS = (4, 8, 32)
_EPS = 1e-12


def check_bits(bits: int, allowed=WEIGHT_BITS, what: str = "weight") -> int:
    """``bits`` as an int, or ValueError naming the allowed widths."""
    if isinstance(bits, bool) or not isinstance(bits, int) or bits not in allowed:
        raise ValueError(f"{what} bits must be one of {', '.join(map(str, allowed))}, got {bits!r}")
    return bits


def _channel_view(w: torch.Tensor) -> torch.Tensor:
    """``w`` as (channels, everything else): per-channel statistics over dimension 0."""
    return w.reshape(w.shape[0], -1) if w.dim() > 1 else w.reshape(1, -1)


def _per_channel(stat: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return stat.reshape(-1, *([1] * (w.dim() - 1))) if w.dim() > 1 else stat.reshape(())


def weight_levels(w: torch.Tensor, bits: int) -> torch.Tensor:
    """The quantised values of ``w`` (no gradient path): what the forward pass uses."""
    check_bits(bits)
    if bits == 32:
        return w
    flat = _channel_view(w)
    if bits == 1:
        scale = _per_channel(flat.abs().mean(dim=1), w)
        return torch.where(w >= 0, scale, -scale)
    top = 2 ** (bits - 1) - 1
    scale = _per_channel(flat.abs().amax(dim=1).clamp_min(_EPS) / top, w)
    return torch.clamp(torch.round(w / scale), -top, top) * scale


def quantize_weight(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Forward: :func:`weight_levels`; backward: the identity (straight-through)."""
    if bits == 32:
        return w
    return w + (weight_levels(w, bits) - w).detach()


def quantize_activation(x: torch.Tensor, bits: int, max_abs: Optional[float] = None) -> torch.Tensor:
    """Fake-quantised activations, straight-through; ``max_abs`` is a calibrated range (else the
    tensor's own)."""
    check_bits(bits, ACTIVATION_BITS, "activation")
    if bits == 32:
        return x
    unsigned = bool((x.detach() >= 0).all())
    top = 2 ** bits - 1 if unsigned else 2 ** (bits - 1) - 1
    bound = torch.as_tensor(max_abs, dtype=x.dtype, device=x.device) if max_abs is not None \
        else x.detach().abs().amax()
    scale = bound.clamp_min(_EPS) / top
    low = 0 if unsigned else -top
    q = torch.clamp(torch.round(x / scale), low, top) * scale
    return x + (q - x).detach()

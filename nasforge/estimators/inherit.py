"""Children that start from trained weights instead of from scratch (``training.init_weights``).

HAQ searches the bit widths of a network that is already trained and scores each precision after a
short fine-tuning; a child trained from scratch for every candidate costs several times more. The
weights file is a state dict (``torch.save(model.state_dict())``, or an export's ``weights.pt``) of
a network whose layers have the names of the child's: the same architecture, in full precision or
quantised. Names are compared without torch's parametrisation path, so a fake-quantised layer's
latent weight (``conv.parametrizations.weight.original``) takes the file's ``conv.weight``. Every
tensor of the file must find its place in the child; entries the file lacks (an activation
quantiser's range) keep their fresh values.

A child's validation score is only a fair estimate if the weights were trained on the search's
training split alone: weights that have seen the validation split make every child look better.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict

import torch
from torch import nn

from .base import TrialFailed

_PARAMETRISED = ".parametrizations."


def plain_name(name: str) -> str:
    """A state-dict key as the layer has it without parametrisations:
    ``a.parametrizations.weight.original`` becomes ``a.weight``."""
    if _PARAMETRISED not in name or not name.endswith(".original"):
        return name
    owner, rest = name.split(_PARAMETRISED, 1)
    return f"{owner}.{rest[: -len('.original')]}"


def read_weights(path: str) -> Dict[str, torch.Tensor]:
    """The tensors of a state-dict file, by plain name; ValueError names what is wrong with it."""
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"training.init_weights: no file at {path}")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a file that is not a state dict
        raise ValueError(f"training.init_weights: {path} is not a torch state dict ({exc.__class__.__name__})") from None
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ValueError(f"training.init_weights: {path} holds no state dict of named tensors")
    return {plain_name(k): v for k, v in state.items()}


def inherit(model: nn.Module, weights: Dict[str, torch.Tensor]) -> int:
    """Copy every tensor of ``weights`` into the entry of ``model`` with its plain name; return how
    many. Every tensor of the file must find its place, name and shape: a file of another network
    fails the trial at once, instead of lending a few layers that happen to fit. Entries the child
    alone has (an activation quantiser's range) keep their fresh values."""
    own = {plain_name(name): name for name in model.state_dict()}
    shapes = {name: value.shape for name, value in model.state_dict().items()}
    misfits = [name for name, tensor in weights.items()
               if name not in own or shapes[own[name]] != tensor.shape]
    if misfits:
        first = misfits[0]
        why = ("no such entry" if first not in own
               else f"shape {tuple(weights[first].shape)} against the child's {tuple(shapes[own[first]])}")
        raise TrialFailed(f"training.init_weights: {len(misfits)} of the file's {len(weights)} tensors have no "
                          f"place in this child ({first}: {why}); the file must be of this child's network")
    model.load_state_dict({own[name]: tensor for name, tensor in weights.items()}, strict=False)
    return len(weights)

"""Which torch device a child trains on: the ``training.device`` setting, checked once where a
search or a retrain starts, so that a device this machine lacks is refused by name."""

from __future__ import annotations

from typing import Any

import torch

from ..config import ConfigError


def resolve_device(device: Any) -> torch.device:
    """The torch device of the ``training.device`` setting, checked where the driver builds the
    estimator: a device this machine lacks would otherwise fail every trial, one by one, while the
    search itself ended "successfully"."""
    valid = "auto (CUDA when present, else the CPU), cpu, cuda or cuda:N"
    if not isinstance(device, str):
        raise ConfigError(f"training.device must be one of {valid}; got {device!r}")
    name = device.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        index = name[5:]
        if index and not index.isdigit():
            raise ConfigError(f"training.device {device!r}: a CUDA device is cuda or cuda:N (N = 0, 1, ...)")
        if not torch.cuda.is_available():
            raise ConfigError(f"training.device {device!r}: cuda requested but torch.cuda.is_available() is False "
                              "(no CUDA device, or a CPU-only torch); use --device cpu or auto")
        if index and int(index) >= torch.cuda.device_count():
            raise ConfigError(f"training.device {device!r}: this machine has {torch.cuda.device_count()} CUDA "
                              f"device(s), cuda:0 to cuda:{torch.cuda.device_count() - 1}")
        return torch.device(name)
    if name == "mps":
        raise ConfigError(f"training.device 'mps': Apple GPUs are not supported by nasforge; use {valid}")
    raise ConfigError(f"training.device {device!r} is not a device nasforge can train on; use {valid}")

"""Saving and loading a trained chain network as spec + weights (the retrain output)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Tuple

import torch

from ..spaces.chain_net import ChainNet


def save_model(model: ChainNet, directory: Path, metadata: Dict[str, Any]) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "spec.json").write_text(json.dumps(model.spec, indent=1))
    tmp = directory / f"weights.pt.{os.getpid()}.tmp"
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, directory / "weights.pt")
    (directory / "metrics.json").write_text(json.dumps(metadata, indent=1))


def load_model_dir(directory: Path) -> Tuple[ChainNet, Dict[str, Any]]:
    directory = Path(directory)
    for name in ("spec.json", "weights.pt"):
        if not (directory / name).exists():
            raise FileNotFoundError(f"{directory} lacks {name}; retrain the architecture again")
    model = ChainNet(json.loads((directory / "spec.json").read_text()))
    model.load_state_dict(torch.load(directory / "weights.pt", map_location="cpu", weights_only=True))
    model.eval()
    meta_path = directory / "metrics.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    return model, meta

"""Saving and loading a trained network as spec + weights (the retrain output): any network of the
protocol in :mod:`nasforge.spaces.networks` (a ``.spec`` whose kind has a registered module).

The training data's preprocessing record is saved beside them (``preprocessing.json``): an
export made later must replay exactly the steps this model was trained behind, and the data
file may have changed or moved by then.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch

from ..spaces.networks import NetworkProtocolError, build_network, unsavable

PREPROCESSING = "preprocessing.json"


def save_model(model: torch.nn.Module, directory: Path, metadata: Dict[str, Any],
               preprocessing: Optional[Dict[str, Any]] = None) -> None:
    """Write spec, weights, metrics and (when given) the data's preprocessing record; a record
    left by an earlier save there is removed when none is given, so it never describes other data."""
    why = unsavable(model)
    if why:  # before any file: a folder with weights but no spec would be a model nothing loads
        raise NetworkProtocolError(f"cannot save the network: {why}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "spec.json").write_text(json.dumps(model.spec, indent=1))
    tmp = directory / f"weights.pt.{os.getpid()}.tmp"
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, directory / "weights.pt")
    prep_path = directory / PREPROCESSING
    if preprocessing is not None:
        prep_path.write_text(json.dumps(preprocessing, indent=1))
    elif prep_path.exists():
        prep_path.unlink()
    (directory / "metrics.json").write_text(json.dumps(metadata, indent=1))


def load_model_dir(directory: Path) -> Tuple[torch.nn.Module, Dict[str, Any]]:
    """The retrained network (of the module registered for its spec's kind) and its metrics;
    NetworkProtocolError when no module is registered for it."""
    directory = Path(directory)
    for name in ("spec.json", "weights.pt"):
        if not (directory / name).exists():
            raise FileNotFoundError(f"{directory} lacks {name}; retrain the architecture again")
    model = build_network(json.loads((directory / "spec.json").read_text()))
    model.load_state_dict(torch.load(directory / "weights.pt", map_location="cpu", weights_only=True))
    model.eval()
    meta_path = directory / "metrics.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    return model, meta


def load_preprocessing(directory: Path) -> Optional[Dict[str, Any]]:
    """The preprocessing record saved with a retrained model; None for a model saved without one
    (retrained before records were kept: its export must get the record from the data)."""
    path = Path(directory) / PREPROCESSING
    return json.loads(path.read_text()) if path.exists() else None

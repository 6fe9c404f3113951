"""Which torch-only network module builds a spec: one place for saving, loading and exporting.

A spec names its kind (``"kind": "nb201-cell"``); chain-cnn's specs, older than kinds, carry
none. An export copies the module's file as ``model.py`` together with the files it reads
beside it (the cell network takes its raw-input wrapper from ``chain_net.py``).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from types import ModuleType
from typing import Dict

from torch import nn

from . import cell_net, chain_net


def network_module(spec: Dict) -> ModuleType:
    """The module whose network builds ``spec``."""
    return cell_net if spec.get("kind") == cell_net.KIND else chain_net


def build_network(spec: Dict) -> nn.Module:
    """The untrained network of ``spec``, whichever space wrote it."""
    module = network_module(spec)
    return module.CellNet(spec) if module is cell_net else module.ChainNet(spec)


def _source(module: ModuleType) -> Path:
    return Path(inspect.getsourcefile(module) or module.__file__)


def export_sources(spec: Dict) -> Dict[str, Path]:
    """File name in the export -> source file: ``model.py`` and what it loads beside it."""
    module = network_module(spec)
    files = {"model.py": _source(module)}
    if module is not chain_net:
        files["chain_net.py"] = _source(chain_net)
    return files

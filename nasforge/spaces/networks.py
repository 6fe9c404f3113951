"""Which torch-only network module builds a spec: one place for saving, loading and exporting.

A spec names its kind (``"kind": "nb201-cell"``, ``"mobile-blocks"``); chain-cnn's specs, older
than kinds, carry none. An export copies the module's file as ``model.py`` together with the
files it reads beside it (the cell and mobile networks take their raw-input wrapper from
``chain_net.py``).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from types import ModuleType
from typing import Dict

from torch import nn

from . import cell_net, chain_net, mobile_net

#: kind -> (module, its network class); a spec without a kind is chain-cnn's
_BY_KIND = {cell_net.KIND: (cell_net, cell_net.CellNet), mobile_net.KIND: (mobile_net, mobile_net.MobileNet)}


def network_module(spec: Dict) -> ModuleType:
    """The module whose network builds ``spec``."""
    return _BY_KIND.get(spec.get("kind"), (chain_net,))[0]


def build_network(spec: Dict) -> nn.Module:
    """The untrained network of ``spec``, whichever space wrote it."""
    return _BY_KIND.get(spec.get("kind"), (chain_net, chain_net.ChainNet))[1](spec)


def _source(module: ModuleType) -> Path:
    return Path(inspect.getsourcefile(module) or module.__file__)


def export_sources(spec: Dict) -> Dict[str, Path]:
    """File name in the export -> source file: ``model.py`` and what it loads beside it."""
    module = network_module(spec)
    files = {"model.py": _source(module)}
    if module is not chain_net:
        files["chain_net.py"] = _source(chain_net)
    if spec.get("quant"):  # chain_net loads the quantised layers, which load fake.py, from beside it
        from ..quant import fake, layers

        files.update({"quant_layers.py": _source(layers), "fake.py": _source(fake)})
    return files

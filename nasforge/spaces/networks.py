"""The network protocol: which torch-only module builds a spec, for saving, loading and exporting.

A network that ``nasforge retrain`` saves and ``nasforge export`` writes standalone is described by
its ``spec``: the ``.spec`` attribute of the module a space's ``build()`` returns, a JSON-able dict
with a ``"kind"`` and the input and output it takes (``"in_channels"``, ``"input_size"``: the spatial
sizes, ``"num_classes"``). Each kind is built by a module registered with :func:`register_network`,
which imports only torch (an export copies it verbatim as ``model.py``) and holds:

* the network class: ``network_class(spec)`` builds the untrained network, whose ``state_dict``
  the saved weights load into;
* ``load(directory, map_location="cpu", raw_input=True)``: the model of ``spec.json`` and
  ``weights.pt`` in ``directory``, in eval mode; with ``raw_input`` and a record in
  ``preprocessing.json``, behind ``RawInput`` of ``chain_net.py``, which the export copies beside
  every module but chain_net itself (``chain_net.load_network`` does all of it for a class).

chain-cnn's specs, older than kinds, carry none: a spec without a kind is chain-cnn's when it has
chain-cnn's form, and refused otherwise; so is a kind no module is registered for.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from types import ModuleType
from typing import Dict, NamedTuple, Optional

from torch import nn

from . import cell_net, chain_net, mobile_net

CHAIN_KIND = "chain-cnn"
#: what export reads off every spec besides its kind
SPEC_KEYS = ("in_channels", "input_size", "num_classes")
#: what a space must provide for retrain and export, as their refusals say it
PROTOCOL = ("its build() must return a torch module whose .spec is a JSON-able dict with \"kind\", \"in_channels\", "
            "\"input_size\" and \"num_classes\", and a torch-only module building that kind must be registered with "
            "nasforge.spaces.networks.register_network(kind, module, network_class) (docs/architecture.md)")


class NetworkProtocolError(ValueError):
    """A network or spec that cannot be saved, loaded or exported; the message says why."""


class NetworkKind(NamedTuple):
    module: ModuleType
    network_class: type


_BY_KIND: Dict[str, NetworkKind] = {
    CHAIN_KIND: NetworkKind(chain_net, chain_net.ChainNet),
    cell_net.KIND: NetworkKind(cell_net, cell_net.CellNet),
    mobile_net.KIND: NetworkKind(mobile_net, mobile_net.MobileNet),
}


def register_network(kind: str, module: ModuleType, network_class: type) -> None:
    """Declare that ``module`` (torch only, a file of its own) builds specs of ``kind`` with
    ``network_class``, so that retrain saves such networks and export writes them standalone.
    Registering the same again (a module imported twice) is harmless; another module for a
    registered kind is refused."""
    if not isinstance(kind, str) or not kind:
        raise NetworkProtocolError(f"a network kind must be a non-empty string, got {kind!r}")
    if not isinstance(module, ModuleType) or not callable(getattr(module, "load", None)):
        raise NetworkProtocolError(f"network module for kind {kind!r} must be a module with a "
                                   "load(directory, map_location, raw_input) function")
    if not (isinstance(network_class, type) and issubclass(network_class, nn.Module)):
        raise NetworkProtocolError(f"network class for kind {kind!r} must be a torch.nn.Module subclass, "
                                   f"got {network_class!r}")
    _source(module)  # the export copies it: it must be a file
    known = _BY_KIND.get(kind)
    if known is not None and (known.module.__name__, known.network_class) != (module.__name__, network_class):
        raise NetworkProtocolError(f"network kind {kind!r} is already built by {known.module.__name__}."
                                   f"{known.network_class.__name__}")
    _BY_KIND[kind] = NetworkKind(module, network_class)


def network_kind(spec: Dict) -> NetworkKind:
    """The registered module and class that build ``spec``; NetworkProtocolError naming what is missing."""
    if not isinstance(spec, dict):
        raise NetworkProtocolError(f"a network spec must be a dict, got {type(spec).__name__}")
    kind = spec.get("kind")
    if kind is None:
        if "layers" in spec and "dims" in spec:
            return _BY_KIND[CHAIN_KIND]
        raise NetworkProtocolError("the network spec names no \"kind\" (and is not chain-cnn's)")
    if not isinstance(kind, str) or kind not in _BY_KIND:
        raise NetworkProtocolError(f"no network module is registered for spec kind {kind!r} "
                                   f"(registered: {', '.join(sorted(_BY_KIND))})")
    return _BY_KIND[kind]


def network_module(spec: Dict) -> ModuleType:
    """The module whose network builds ``spec``."""
    return network_kind(spec).module


def build_network(spec: Dict) -> nn.Module:
    """The untrained network of ``spec``, whichever space wrote it."""
    return network_kind(spec).network_class(spec)


def unsavable(net: object) -> Optional[str]:
    """Why a space's network cannot be saved and exported (what retrain and export need), or None."""
    name = type(net).__name__
    spec = getattr(net, "spec", None)
    if not isinstance(net, nn.Module):
        return f"{name} is not a torch module"
    if not isinstance(spec, dict):
        return f"{name} has no .spec dict"
    try:
        json.dumps(spec)
        kind = network_kind(spec)
    except (TypeError, ValueError) as exc:
        return f"{name}'s spec: {exc}"
    missing = [key for key in SPEC_KEYS if key not in spec]
    if missing:
        return f"{name}'s spec lacks {', '.join(map(repr, missing))}"
    if not isinstance(net, kind.network_class):
        return f"{name} is not the {kind.network_class.__name__} that spec kind {spec.get('kind', CHAIN_KIND)!r} builds"
    return None


def _source(module: ModuleType) -> Path:
    try:
        return Path(inspect.getsourcefile(module) or module.__file__)
    except (TypeError, AttributeError):
        raise NetworkProtocolError(f"network module {module.__name__} has no source file to export") from None


def export_sources(spec: Dict) -> Dict[str, Path]:
    """File name in the export -> source file: ``model.py`` and what it loads beside it."""
    module = network_module(spec)
    files = {"model.py": _source(module)}
    if module is not chain_net:  # every other module takes RawInput from it
        files["chain_net.py"] = _source(chain_net)
    if spec.get("quant"):  # chain_net loads the quantised layers, which load fake.py, from beside it
        from ..quant import fake, layers

        files.update({"quant_layers.py": _source(layers), "fake.py": _source(fake)})
    return files

"""The network module of the test plugin space (tests/mlp_plugin_space.py): torch only, since an
export copies it as ``model.py``. What the protocol of nasforge/spaces/networks.py asks of it: the
class built from a spec, and ``load`` (here ``chain_net.load_network``, from the copy the export
puts beside it)."""

from __future__ import annotations

import json
import os
from typing import Dict

from torch import nn

KIND = "test-mlp"


class MLPNet(nn.Module):
    """Flatten, then one ReLU layer per width, then the classes."""

    def __init__(self, spec: Dict):
        super().__init__()
        self.spec = json.loads(json.dumps(spec))
        n_in = int(spec["in_channels"])
        for size in spec["input_size"]:
            n_in *= int(size)
        layers = [nn.Flatten()]
        for width in spec["widths"]:
            layers += [nn.Linear(n_in, int(width)), nn.ReLU()]
            n_in = int(width)
        layers.append(nn.Linear(n_in, int(spec["num_classes"])))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


def load(directory: str, map_location: str = "cpu", raw_input: bool = True) -> nn.Module:
    """The exported model of ``directory``; it takes the raw arrays when the export holds a preprocessing record."""
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "chain_net.py")
    module_spec = importlib.util.spec_from_file_location(f"{__name__}_chain_net", path)
    chain_net = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(chain_net)
    return chain_net.load_network(MLPNet, directory, map_location, raw_input)

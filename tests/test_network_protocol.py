"""The network protocol of nasforge/spaces/networks.py in process: a spec is built only by the module
registered for its kind (never as chain-cnn by default), a kind keeps its one module, and saving or
exporting a network outside the protocol is refused before any file is written."""

from __future__ import annotations

import pytest
from torch import nn

import mlp_plugin_net
import mlp_plugin_space  # noqa: F401  registers test-mlp
from nasforge.report.export import export_model
from nasforge.report.model_files import save_model
from nasforge.spaces import chain_net, networks
from nasforge.spaces.networks import NetworkProtocolError, build_network, register_network

SHAPE = {"in_channels": 1, "input_size": [8, 8], "num_classes": 10}


def test_a_spec_is_built_by_its_kinds_module_and_an_unknown_kind_is_refused_by_name():
    assert isinstance(build_network({**SHAPE, "kind": "test-mlp", "widths": [4]}), mlp_plugin_net.MLPNet)
    with pytest.raises(NetworkProtocolError, match="no network module is registered for spec kind 'my-mlp'"):
        build_network({**SHAPE, "kind": "my-mlp", "widths": [4]})


def test_a_spec_without_a_kind_is_chain_cnns_only_in_chain_cnns_form():
    chain = {**SHAPE, "dims": 2, "layers": [], "head": {"depth": 0, "width": 8}, "readout": "avg"}
    assert isinstance(build_network(chain), chain_net.ChainNet)
    with pytest.raises(NetworkProtocolError, match='names no "kind"'):
        build_network({**SHAPE, "widths": [4]})


def test_a_kind_keeps_the_module_registered_for_it():
    register_network("test-mlp", mlp_plugin_net, mlp_plugin_net.MLPNet)  # the plugin imported again: harmless
    with pytest.raises(NetworkProtocolError, match="'nb201-cell' is already built by"):
        register_network("nb201-cell", mlp_plugin_net, mlp_plugin_net.MLPNet)
    with pytest.raises(NetworkProtocolError, match="load"):
        register_network("test-no-load", networks, mlp_plugin_net.MLPNet)  # a module without load()


def _unregistered_kind() -> nn.Module:
    net = mlp_plugin_net.MLPNet({**SHAPE, "kind": "test-mlp", "widths": []})
    net.spec = {**net.spec, "kind": "unregistered"}
    return net


@pytest.mark.parametrize("make, says", [
    (lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), "Sequential has no .spec dict"),
    (_unregistered_kind, "no network module is registered for spec kind 'unregistered'"),
])
def test_saving_and_exporting_refuse_a_network_outside_the_protocol_before_writing(tmp_path, make, says):
    with pytest.raises(NetworkProtocolError, match=f"cannot save the network: .*{says}"):
        save_model(make(), tmp_path / "saved", {})
    with pytest.raises(NetworkProtocolError, match=f"cannot export the network: .*{says}"):
        export_model(make(), tmp_path / "export", metadata={})
    assert not (tmp_path / "saved").exists() and not (tmp_path / "export").exists()

"""A plugin search space for the retrain / export protocol tests: ``test-mlp`` registers its torch-only
network module (tests/mlp_plugin_net.py), so its networks are retrained and exported; two others
break the protocol: ``test-mlp-no-spec`` builds a bare ``nn.Sequential``, and ``test-mlp-unregistered``
gives its networks a spec of a kind no module is registered for."""

from __future__ import annotations

from typing import Sequence, Tuple

from torch import nn

import mlp_plugin_net
from nasforge.spaces.base import SPACES, Decision, SearchSpace
from nasforge.spaces.networks import register_network

register_network(mlp_plugin_net.KIND, mlp_plugin_net, mlp_plugin_net.MLPNet)


@SPACES.register("test-mlp")
class MLPSpace(SearchSpace):
    name = "test-mlp"

    @property
    def decisions(self):
        return [Decision("depth", (1, 2)), Decision("L0.width", (8, 16)), Decision("L1.width", (8, 16))]

    def canonical(self, tokens: Sequence[int]):
        t = self.validate(tokens)
        return t if t[0] == 1 else t[:2] + (0,)

    def spec(self, tokens: Sequence[int], input_shape: Tuple[int, ...], num_classes: int):
        v = self.encode(tokens)
        return {"kind": mlp_plugin_net.KIND, "in_channels": int(input_shape[0]),
                "input_size": [int(s) for s in input_shape[1:]], "num_classes": int(num_classes),
                "widths": [v[f"L{i}.width"] for i in range(v["depth"])]}

    def build(self, tokens, input_shape, num_classes):
        return mlp_plugin_net.MLPNet(self.spec(tokens, input_shape, num_classes))


@SPACES.register("test-mlp-no-spec")
class NoSpec(MLPSpace):
    name = "test-mlp-no-spec"

    def build(self, tokens, input_shape, num_classes):
        return super().build(tokens, input_shape, num_classes).layers  # the bare Sequential


@SPACES.register("test-mlp-unregistered")
class UnregisteredKind(MLPSpace):
    name = "test-mlp-unregistered"

    def build(self, tokens, input_shape, num_classes):
        net = super().build(tokens, input_shape, num_classes).layers
        net.spec = {**self.spec(tokens, input_shape, num_classes), "kind": "test-mlp-unregistered"}
        return net

"""Quantised layers and their metrics: weight bits by hand, BitOps against torch's FLOP counter,
the straight-through gradient reaching the latent weights, calibrated ranges against the inputs
the layers really see, and chain-cnn's mixed-precision decisions built into the network."""

from __future__ import annotations

import copy
import json

import numpy as np

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from nasforge.objectives.hardware import count_flops, model_size_bytes
from nasforge.quant.layers import ActQuant, calibrate, layer_bits, quantisable_layers, quantize_modules, strip
from nasforge.quant.metrics import bitops, quant_size_bytes, weight_bits
from nasforge.spaces.chain_cnn import ChainCNNSpace


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(2, 4, 3, padding=1), nn.BatchNorm1d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 8, 5))


def test_weight_bits_and_size_by_hand():
    net = quantize_modules(_net(), {"weight_bits": [2, 8], "activation_bits": [32, 8]})
    # conv weight 2*4*3 = 24 at 2 bits, linear weight 32*5 = 160 at 8; biases 4 + 5, BN 8 at 32
    assert weight_bits(net) == 24 * 2 + 160 * 8 + (4 + 5 + 8) * 32
    # buffers: BN mean and var (8) and the linear layer's activation range (1), at 32 bits
    assert quant_size_bytes(net) == (weight_bits(net) + 9 * 32 + 7) // 8


def test_unquantised_size_is_size_bytes():
    net = _net()
    assert quant_size_bytes(net) == model_size_bytes(net, 32)
    assert weight_bits(net) == 32 * sum(p.numel() for p in net.parameters())


@settings(max_examples=10, deadline=None)
@given(w=st.sampled_from([1, 2, 4, 8, 32]), a=st.sampled_from([4, 8, 32]))
def test_bitops_is_torch_macs_times_bits(w, a):
    net = _net()
    macs = count_flops(net, (2, 8)) // 2  # torch counts a multiply-add as 2 FLOPs
    quantize_modules(net, {"weight_bits": w, "activation_bits": a})
    assert bitops(net, (2, 8)) == macs * w * a


def test_forward_sees_levels_and_gradient_reaches_latent_weight():
    net = quantize_modules(_net(), {"weight_bits": 2, "activation_bits": 8})
    conv = quantisable_layers(net)[0]
    assert all(len(torch.unique(conv.weight[c])) <= 3 for c in range(4))  # 2 bits: 3 levels
    latent = conv.parametrizations["weight"].original
    before = latent.detach().clone()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    net.train()
    net(torch.randn(16, 2, 8)).sum().backward()
    assert latent.grad is not None and latent.grad.abs().sum() > 0
    opt.step()
    assert not torch.equal(before, latent.detach())


def test_calibrated_range_is_the_largest_input_seen():
    net = quantize_modules(_net(), {"weight_bits": 8, "activation_bits": 8})
    linear = quantisable_layers(net)[1]
    seen = []
    linear.register_forward_pre_hook(lambda m, inp: seen.append(inp[0].abs().max()))
    x = torch.randn(50, 2, 8)
    calibrate(net, x, batch_size=7)
    assert float(linear.act_quant.max_abs) == pytest.approx(float(torch.stack(seen).max()))
    # eval mode: a prediction does not depend on the rest of its batch
    net.eval()
    with torch.no_grad():
        assert torch.equal(net(x)[:3], net(x[:3]))


def test_strip_keeps_the_quantised_weights_and_drops_rounding():
    original = quantize_modules(_net(), {"weight_bits": 4, "activation_bits": 8})
    levels = quantisable_layers(original)[0].weight.detach().clone()
    net = strip(copy.deepcopy(original))
    assert torch.equal(quantisable_layers(net)[0].weight, levels)
    assert layer_bits(quantisable_layers(net)[0]) == {"weight_bits": 32, "activation_bits": 32}
    assert not any(isinstance(m, ActQuant) for m in net.modules())
    assert layer_bits(quantisable_layers(original)[0]) == {"weight_bits": 4, "activation_bits": 8}
    original(torch.randn(2, 2, 8))  # the original still works: stripping a copy left it alone


def test_refused_records():
    with pytest.raises(ValueError, match="weight bits must be one of"):
        quantize_modules(_net(), {"weight_bits": 3})
    with pytest.raises(ValueError, match="3 weight bit widths for 2"):
        quantize_modules(_net(), {"weight_bits": [8, 8, 8]})
    with pytest.raises(ValueError, match="quantised already"):
        quantize_modules(quantize_modules(_net(), {"weight_bits": 8}), {"weight_bits": 8})


def test_mixed_precision_decisions_follow_each_layer_and_reach_the_network():
    space = ChainCNNSpace(num_layers=2, mixed_precision=True, weight_bit_choices=[2, 8])
    names = [d.name for d in space.decisions]
    assert names.index("L0.weight_bits") == names.index("L0.stride") + 1
    assert names.index("L1.activation_bits") == names.index("L1.stride") + 2
    assert names[-2:] == ["head.weight_bits", "head.activation_bits"]
    values = {d.name: 0 for d in space.decisions}
    values.update({"L0.weight_bits": 1, "L1.weight_bits": 0, "L1.activation_bits": 1, "head.depth": 1,
                   "head.weight_bits": 1})  # both layers conv (op index 0)
    tokens = tuple(values[n] for n in names)
    net = space.build(tokens, (1, 16), 3)
    bits = [layer_bits(m) for m in quantisable_layers(net)]
    assert bits == [{"weight_bits": 8, "activation_bits": 4}, {"weight_bits": 2, "activation_bits": 8},
                    {"weight_bits": 8, "activation_bits": 4}, {"weight_bits": 8, "activation_bits": 4}]
    # an identity layer ignores its bits: twins share a canonical form
    ident = dict(values, **{"L1.op": 3})
    twin = dict(ident, **{"L1.weight_bits": 1})
    assert space.canonical(tuple(ident[n] for n in names)) == space.canonical(tuple(twin[n] for n in names))


def test_mixed_precision_settings():
    assert ChainCNNSpace().config() == {"num_layers": 6, "dims": 1}  # unchanged when off
    with pytest.raises(ValueError, match="weight_bit_choices must be distinct values"):
        ChainCNNSpace(mixed_precision=True, weight_bit_choices=[3])
    with pytest.raises(ValueError, match="need mixed_precision=true"):
        ChainCNNSpace(weight_bit_choices=[2])
    with pytest.raises(ValueError, match="paper"):
        ChainCNNSpace(dims=2, paper=True, mixed_precision=True)


def test_a_fixed_network_searches_only_the_bits_of_its_weighted_layers():
    plain = ChainCNNSpace(num_layers=3)
    # layer 0 conv, layer 1 identity reading layer 0, layer 2 conv (kernel 5, 36 filters, stride 2)
    # reading layer 1; average readout, one hidden fc of 256
    network = [0, 1, 0, 0, 1, 3, 0, 0, 0, 0, 1, 0, 2, 1, 1, 0, 1, 2]
    space = ChainCNNSpace(num_layers=3, mixed_precision=True, weight_bit_choices=[1, 2, 4],
                          architecture=network)
    searched = [d.name for d in space.decisions if d.size > 1]
    assert searched == ["L0.weight_bits", "L0.activation_bits", "L2.weight_bits", "L2.activation_bits",
                        "head.weight_bits", "head.activation_bits"]  # the identity layer has none
    rng = np.random.default_rng(0)
    bit_settings = set()
    for _ in range(20):
        tokens = space.sample(rng)
        assert space.layers(tokens) == plain.layers(network) and space.ending(tokens) == plain.ending(network)
        record = space.quant_record(tokens)
        assert len(record["weight_bits"]) == 4 and set(record["weight_bits"]) <= {1, 2, 4}  # 2 convs, 2 fc
        bit_settings.add(json.dumps(record))
        assert [layer_bits(m)["weight_bits"] for m in quantisable_layers(space.build(tokens, (1, 16), 3))] \
            == record["weight_bits"]
    assert len(bit_settings) > 10
    assert ChainCNNSpace(**space.config()).decisions == space.decisions  # the stored config is complete
    assert space.summary(space.sample(rng)).startswith("C3x24@w")


def test_a_fixed_network_is_checked():
    with pytest.raises(ValueError, match="needs mixed_precision=true"):
        ChainCNNSpace(num_layers=3, architecture=[0] * 18)
    with pytest.raises(ValueError, match="num_layers=3, dims=1 \\(18 tokens\\).*expects 18 tokens, got 17"):
        ChainCNNSpace(num_layers=3, mixed_precision=True, architecture=[0] * 17)
    with pytest.raises(ValueError, match="L0.op"):
        ChainCNNSpace(num_layers=3, mixed_precision=True, architecture=[9] + [0] * 17)
    with pytest.raises(ValueError, match="must be a list of tokens"):
        ChainCNNSpace(num_layers=3, mixed_precision=True, architecture=5)

"""``mobile-blocks``: parameters counted by hand, forward on odd image sizes, twins, refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nasforge.spaces.base import InvalidArchitectureError, create_space
from nasforge.spaces.mobile_blocks import scaled
from nasforge.spaces.mobile_net import InvertedResidual, MobileNet

def small(**settings):
    base = dict(stages=[[4, 1], [8, 2]], stem_channels=4, head_channels=8)
    return create_space("mobile-blocks", **{**base, **settings})


def test_parameters_counted_by_hand():
    spec = {"kind": "mobile-blocks", "in_channels": 1, "input_size": [5, 5], "num_classes": 3,
            "stem": {"channels": 4, "stride": 1}, "head_channels": 8,
            "blocks": [{"channels": 4, "stride": 1, "expand": 3, "kernel": 3, "se": True}]}
    stem = 1 * 4 * 9 + 2 * 4                      # 3x3 conv, BN
    expand = 4 * 12 + 2 * 12                      # 1x1 conv to 4 * 3, BN
    depthwise = 12 * 9 + 2 * 12                   # one 3x3 filter per channel, BN
    se = (12 * 1 + 1) + (1 * 12 + 12)             # down to 4 // 4 = 1 with bias, up with bias
    project = 12 * 4 + 2 * 4                      # linear 1x1, BN
    head = 4 * 8 + 2 * 8 + (8 * 3 + 3)            # 1x1 conv, BN, linear
    total = sum(p.numel() for p in MobileNet(spec).parameters())
    assert total == stem + expand + depthwise + se + project + head == 416
    spec["blocks"][0].update(expand=1, se=False)  # expand 1 has no expansion conv
    depthwise, project = 4 * 9 + 2 * 4, 4 * 4 + 2 * 4
    assert sum(p.numel() for p in MobileNet(spec).parameters()) == stem + depthwise + project + head == 187


def test_space_spec_applies_width_strides_and_depths():
    space = small()
    values = {d.name: d.choices[0] for d in space.decisions}
    values.update({"width": 0.5, "S0.blocks": 2, "S1.blocks": 1, "S0.B1.kernel": 7, "S1.B0.se": True})
    spec = space.spec(space.decode(values), (1, 9, 9), 10)
    assert spec["stem"] == {"channels": 4, "stride": 1}  # 4 * 0.5 = 2, never below the divisor 4
    assert [(b["channels"], b["stride"], b["kernel"], b["se"]) for b in spec["blocks"]] == [
        (4, 1, 3, False), (4, 1, 7, False), (4, 2, 3, True)]
    assert (scaled(16, 0.5), scaled(24, 0.75), scaled(32, 0.75), scaled(64, 1.0)) == (8, 20, 24, 64)
    blocks = MobileNet(spec).blocks
    assert [b.residual for b in blocks] == [True, True, False]  # stride 1 and equal channels only


@pytest.mark.parametrize("channels, size", [(1, (7, 9)), (3, (13, 11)), (3, (1, 1))])
def test_forward_on_odd_image_sizes(channels, size):
    space = small()
    for seed in range(4):
        tokens = space.sample(np.random.default_rng(seed))
        model = space.build(tokens, (channels, *size), 5).eval()
        with torch.no_grad():
            out = model(torch.randn(2, channels, *size))
        assert out.shape == (2, 5) and torch.isfinite(out).all()


def test_twins_share_a_hash_and_build_the_same_function():
    space = small()
    values = {d.name: d.choices[0] for d in space.decisions}
    values.update({"S0.blocks": 1, "S1.blocks": 2, "S1.B1.kernel": 5})
    tokens = space.decode(values)
    twin = space.decode({**values, "S0.B2.kernel": 7, "S0.B1.se": True, "S1.B2.expand": 6})  # absent blocks
    other = space.decode({**values, "S1.B1.kernel": 7})  # a present block
    assert twin != tokens and space.arch_hash(twin) == space.arch_hash(tokens)
    assert space.canonical(twin) == space.canonical(tokens)
    assert space.arch_hash(other) != space.arch_hash(tokens)
    x = torch.randn(3, 1, 9, 7)
    outputs = []
    for version in (tokens, twin):
        torch.manual_seed(0)
        with torch.no_grad():
            outputs.append(space.build(version, (1, 9, 7), 4).eval()(x))
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)


def test_mutation_changes_what_the_network_reads():
    space = small()
    rng = np.random.default_rng(0)
    for _ in range(200):
        tokens = space.sample(rng)
        assert space.arch_hash(space.mutate(tokens, rng)) != space.arch_hash(tokens)


def test_per_stage_choices_apply_to_every_block_of_the_stage():
    space = small(per_block=False)
    assert [d.name for d in space.decisions] == ["width", "S0.blocks", "S0.expand", "S0.kernel", "S0.se",
                                                 "S1.blocks", "S1.expand", "S1.kernel", "S1.se"]
    values = {"width": 1.0, "S0.blocks": 3, "S0.expand": 6, "S0.kernel": 5, "S0.se": True,
              "S1.blocks": 1, "S1.expand": 1, "S1.kernel": 3, "S1.se": False}
    blocks = space.spec(space.decode(values), (1, 8, 8), 2)["blocks"]
    assert [(b["expand"], b["kernel"], b["se"]) for b in blocks] == [(6, 5, True)] * 3 + [(1, 3, False)]


def test_one_dimensional_inputs_and_bad_settings_are_refused():
    space = small()
    with pytest.raises(InvalidArchitectureError, match="2-D images"):
        space.spec(space.sample(np.random.default_rng(0)), (1, 40), 10)
    for bad in ({"stages": [[16, 3]]}, {"stages": []}, {"stages": [[0, 1]]}, {"stages": [16, 1]},
                {"per_block": "yes"}, {"max_blocks": 0}, {"stem_stride": 3}, {"head_channels": True}):
        with pytest.raises(ValueError, match="mobile-blocks: "):
            small(**bad)
    spec = small().spec(small().sample(np.random.default_rng(0)), (1, 8, 8), 2)
    spec["blocks"][0]["kernel"] = 4
    with pytest.raises(ValueError, match="kernel"):
        MobileNet(spec)


def test_block_without_expansion_has_no_expansion_conv():
    block = InvertedResidual(8, {"channels": 8, "stride": 1, "expand": 1, "kernel": 3, "se": False})
    assert len(block.body) == 2 and block.body[0][0].groups == 8

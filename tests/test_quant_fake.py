"""Fake quantisation: the levels by hand, the number of distinct values per channel, the
straight-through gradient against autograd of the identity, and refused bit widths."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nasforge.quant.fake import quantize_activation, quantize_weight, weight_levels


def test_one_bit_is_sign_times_the_channels_mean_magnitude():
    w = torch.tensor([[0.5, -1.5, 0.0, 1.0], [-2.0, 2.0, -2.0, 4.0]])
    expected = torch.tensor([[0.75, -0.75, 0.75, 0.75], [-2.5, 2.5, -2.5, 2.5]])
    assert torch.equal(weight_levels(w, 1), expected)


def test_two_bits_by_hand():
    w = torch.tensor([[0.2, -0.6, 0.9, -0.1]])  # scale = 0.9 / 1: levels -0.9, 0, 0.9
    assert torch.allclose(weight_levels(w, 2), torch.tensor([[0.0, -0.9, 0.9, 0.0]]))


@settings(max_examples=40, deadline=None)
@given(bits=st.sampled_from([1, 2, 4, 8]), seed=st.integers(0, 10_000))
def test_each_channel_has_at_most_its_levels_and_keeps_its_largest_value(bits, seed):
    w = torch.randn(3, 4, 5, generator=torch.Generator().manual_seed(seed))
    q = weight_levels(w, bits)
    for c in range(3):
        distinct = torch.unique(q[c]).numel()
        assert distinct <= (2 if bits == 1 else 2 ** bits - 1)
        if bits > 1:  # the largest magnitude is a level exactly
            assert torch.isclose(q[c].abs().max(), w[c].abs().max())


def test_the_gradient_goes_straight_through():
    w = torch.randn(4, 3, requires_grad=True)
    out = (quantize_weight(w, 2) * torch.arange(12.0).reshape(4, 3)).sum()
    out.backward()
    assert torch.equal(w.grad, torch.arange(12.0).reshape(4, 3))


def test_32_bits_is_off_and_bad_widths_are_refused():
    w = torch.randn(2, 2)
    assert quantize_weight(w, 32) is w
    with pytest.raises(ValueError, match="weight bits must be one of 1, 2, 4, 8, 32"):
        quantize_weight(w, 3)
    with pytest.raises(ValueError, match="activation bits"):
        quantize_activation(w, 2)


def test_relu_activations_use_unsigned_levels():
    x = torch.tensor([0.0, 0.2, 0.45, 1.0])  # no value half-way between two levels
    q = quantize_activation(x, 4)  # 15 steps of 1/15 from 0 to 1
    assert torch.allclose(q, torch.round(x * 15) / 15)
    assert torch.allclose(quantize_activation(-x, 4), -torch.round(x * 7) / 7)

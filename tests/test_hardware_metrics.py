"""Hardware metrics against hand counts: FLOPs, size, measured peak memory, latency fields.

No timing assertions: latency is only checked for sane, self-consistent fields (the CI machines
are shared and noisy).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nasforge.tables import nb201
from nasforge.objectives.hardware import (count_flops, count_flops_with_pooling, hardware_metrics, measure_latency,
                                          measure_peak_memory, model_size_bytes, peak_memory_breakdown)
from nasforge.objectives.registry import METRICS, metric_info, register_metric

F32 = 4  # bytes per float32


# ---- FLOPs ------------------------------------------------------------------------------------------
def test_conv1d_flops_with_stride_and_padding_by_hand():
    # L_out = floor((20 + 2*2 - 5) / 2) + 1 = 10; each output: 3 channels x 5 taps multiply-adds
    model = nn.Conv1d(3, 8, 5, stride=2, padding=2)
    assert count_flops(model, (3, 20)) == 2 * 10 * 8 * 3 * 5  # the bias additions are not counted


def test_conv2d_flops_with_stride_padding_and_groups_by_hand():
    # H_out = floor((9 + 2 - 3) / 2) + 1 = 5, W_out = floor((11 + 4 - 5) / 1) + 1 = 11
    model = nn.Conv2d(2, 6, (3, 5), stride=(2, 1), padding=(1, 2))
    assert count_flops(model, (2, 9, 11)) == 2 * (5 * 11) * 6 * 2 * (3 * 5)
    # groups=2: each output channel reads 4 / 2 input channels; 6x6 stays 6x6 with padding 1
    grouped = nn.Conv2d(4, 8, 3, padding=1, groups=2, bias=False)
    assert count_flops(grouped, (4, 6, 6)) == 2 * 36 * 8 * 2 * 9


def test_linear_flops_by_hand():
    assert count_flops(nn.Linear(12, 7), (12,)) == 2 * 12 * 7
    assert count_flops(nn.Linear(12, 7), (4, 12)) == 2 * 4 * 12 * 7  # a sequence of 4 positions


def test_torch_counts_nothing_for_pooling_and_we_add_one_flop_per_window_element():
    cases = [
        # (layer, input shape, outputs x window elements)
        (nn.MaxPool1d(3, stride=2, padding=1), (4, 10), 4 * 5 * 3),  # L_out = (10 + 2 - 3) // 2 + 1 = 5
        (nn.AvgPool1d(3, stride=2, padding=1), (4, 10), 4 * 5 * 3),
        (nn.MaxPool2d(2), (3, 8, 8), 3 * 16 * 4),
        (nn.AvgPool2d((3, 1), stride=(1, 1)), (2, 5, 4), 2 * (3 * 4) * 3),
        (nn.AdaptiveAvgPool2d(1), (3, 5, 5), 3 * 25),  # global: every input element once
        # adaptive windows along 8 -> 3: [0, 3), [2, 6), [5, 8): 3 + 4 + 3 elements
        (nn.AdaptiveAvgPool1d(3), (2, 8), 2 * 10),
        (nn.AdaptiveMaxPool1d(3), (2, 8), 2 * 10),
    ]
    for layer, shape, expected in cases:
        assert count_flops(layer, shape) == 0, layer
        assert count_flops_with_pooling(layer, shape) == expected, layer
        assert count_flops(layer, shape, pooling=True) == expected, layer


def test_flops_of_a_small_cnn_with_pooling_and_a_mean_readout():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(1, 4, 3, padding=1)
            self.pool = nn.MaxPool1d(2)
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            h = self.pool(torch.relu(self.conv(x)))  # (4, 16) -> (4, 8)
            return self.fc(h.mean(dim=2))  # global average pooling as ChainNet writes it

    conv, fc = 2 * 16 * 4 * 3, 2 * 4 * 3
    pooling = 4 * 8 * 2 + 4 * 8  # max pool: 32 outputs x 2; mean: 32 inputs
    assert count_flops(Net(), (1, 16)) == conv + fc
    assert count_flops_with_pooling(Net(), (1, 16)) == conv + fc + pooling


# ---- size ----------------------------------------------------------------------------------------------
def _small_net():
    return nn.Sequential(nn.Conv1d(1, 4, 3, padding=1), nn.BatchNorm1d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(40, 5))


def test_model_size_bytes_by_hand():
    model = _small_net()
    params = (4 * 3 + 4) + (4 + 4) + (40 * 5 + 5)  # conv, batch-norm affine, linear
    running = 4 + 4  # batch-norm running mean and variance; num_batches_tracked is not stored
    assert model_size_bytes(model) == (params + running) * 4
    assert model_size_bytes(model, bits=8) == params + running
    assert model_size_bytes(model, bits=4) == -(-(params + running) // 2)  # rounded up
    assert model_size_bytes(model, bits=16, include_buffers=False) == params * 2
    with pytest.raises(ValueError):
        model_size_bytes(model, bits=0)


# ---- peak memory ---------------------------------------------------------------------------------------
def test_peak_memory_matches_a_hand_computation_for_a_sequential_net():
    model = _small_net()
    for batch in (2, 3):
        x = batch * 1 * 10 * F32  # the input stays alive for the whole pass
        conv = bn = relu = batch * 4 * 10 * F32  # Flatten is a view: no new memory
        fc = batch * 5 * F32
        # Sequential keeps only the latest output: conv+bn alive during batch norm, bn+relu during
        # ReLU, relu(viewed)+fc during the linear layer
        activations = x + max(conv + bn, bn + relu, relu + fc)
        params = ((4 * 3 + 4) + (4 + 4) + (40 * 5 + 5)) * F32
        buffers = (4 + 4) * F32 + 8  # running stats + the int64 num_batches_tracked
        parts = peak_memory_breakdown(model, (1, 10), batch)
        assert parts["method"] == "tracker"
        assert (parts["params_bytes"], parts["buffers_bytes"], parts["activations_bytes"]) == (
            params, buffers, activations)
        assert measure_peak_memory(model, (1, 10), batch) == params + buffers + activations


def test_peak_memory_sees_in_place_ops_and_dead_intermediates():
    wide = nn.Sequential(nn.Linear(10, 1000), nn.ReLU(), nn.Linear(1000, 10))
    in_place = nn.Sequential(nn.Linear(10, 1000), nn.ReLU(inplace=True), nn.Linear(1000, 10))
    x, h, out = 10 * F32, 1000 * F32, 10 * F32
    assert peak_memory_breakdown(wide, (10,))["activations_bytes"] == x + 2 * h  # linear out + relu out
    assert peak_memory_breakdown(in_place, (10,))["activations_bytes"] == x + max(h, h + out)
    model = _small_net().train()
    peak_memory_breakdown(model, (1, 10))
    assert model.training  # the mode is restored


# ---- latency -------------------------------------------------------------------------------------------
def test_latency_returns_sane_fields_and_restores_threads():
    model = _small_net().train()
    torch.set_num_threads(2)  # the session runs on one: restoring must be seen
    try:
        result = measure_latency(model, (1, 10), batch_size=2, warmup=2, repeats=7, threads=1)
        assert result["threads"] == 1 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
    assert result["device"] == "cpu" and result["batch_size"] == 2 and result["repeats"] == 7
    assert 0 < result["min_ms"] <= result["median_ms"] <= result["p90_ms"]
    assert result["min_ms"] <= result["mean_ms"] and result["cv"] >= 0
    assert model.training
    with pytest.raises(ValueError):
        measure_latency(model, (1, 10), repeats=0)


def test_hardware_metrics_use_registered_names():
    metrics = hardware_metrics(_small_net(), (1, 10), warmup=1, repeats=3, pooling_flops=True)
    for name in ("params", "size_bytes", "flops", "flops_with_pooling", "latency_ms", "latency_p90_ms",
                 "latency_cv", "peak_memory_bytes"):
        assert name in METRICS and name in metrics


# ---- registry ------------------------------------------------------------------------------------------
def test_registry_knows_every_metric_the_estimators_and_benchmarks_report():
    names = {"val_acc", "val_acc_last", "params", "flops", "train_seconds", "test_acc", "test_top3_acc",
             "test_average_precision", "simulated_seconds", "latency_s", "params_m"}
    names |= set(nb201.ACCURACY_FIELDS) | set(nb201.DRIFT_FIELDS) | {f + "_std" for f in nb201.DRIFT_FIELDS}
    assert names <= set(METRICS)
    assert metric_info("latency_ms").direction == "minimize" and metric_info("ptq_acc").direction == "maximize"
    with pytest.raises(ValueError, match="unknown metric 'speed'"):
        metric_info("speed")
    try:
        register_metric("energy_mj", "mJ", "minimize")
        assert metric_info("energy_mj").unit == "mJ"
    finally:
        METRICS.pop("energy_mj", None)

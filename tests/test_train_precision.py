"""Mixed precision (training.amp) and the channels-last layout (training.channels_last), issue 19.5.

Checked on every device this machine has (the CPU; CUDA too where present): autocast really runs
the convolutions in the chosen dtype while the weights stay float32; bf16 learns as well as float32
on a real slice; channels-last computes the same function; and what a device or the data cannot do
is refused by name, through the CLI with exit 2 and no experiment left behind.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from nasforge.data import load_dataset
from nasforge.estimators.train import TrainEstimator, TrainRecipe, predict, train_network
from nasforge.spaces.base import space_of_section
from nasforge.spaces.chain_net import PadExcludingAvgPool2d

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
DIGITS_CNN = {"name": "chain-cnn", "dims": 2, "num_layers": 3}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _amps(device: str):
    return ["off", "bf16"] + (["fp16"] if device == "cuda" else [])


def _model(data, channels: int = 1) -> nn.Module:
    """A chain of three 3x3 convolutions of 24 filters and a linear readout of the flattened output."""
    space = space_of_section(DIGITS_CNN)
    pick = {"op": "conv", "kernel_h": 3, "kernel_w": 3, "filters": 24, "stride": 1, "readout": "flatten",
            "depth": 0, "from_L0": 1, "from_L1": 1}
    tokens = tuple(d.choices.index(pick[d.name.split(".")[-1]]) for d in space.decisions if d.name != "head.width")
    tokens += (0,)  # head.width: no hidden layer reads it
    assert space.summary(tokens) == "C3x3x24 C3x3x24 C3x3x24<0+1 | flatten", space.summary(tokens)
    torch.manual_seed(0)
    return space.build(tokens, (channels,) + tuple(data.input_shape[1:]), data.num_classes)


def _watch(model: nn.Module, kinds=(nn.Conv1d, nn.Conv2d, nn.Linear)):
    """Record ((input is contiguous, input is channels-last), output dtype) of every convolution
    and linear layer called in training mode (a one-channel image is both)."""
    seen = []

    def hook(module, inputs, output):
        if module.training:
            x = inputs[0]
            layout = (x.is_contiguous(), x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last))
            seen.append((layout, output.dtype))

    for m in model.modules():
        if isinstance(m, kinds):
            m.register_forward_hook(hook)
    return seen


@pytest.mark.parametrize("device", DEVICES)
def test_autocast_runs_the_layers_in_the_chosen_dtype_and_keeps_float32_weights(device, digits):
    for amp in _amps(device):
        model = _model(digits)
        seen = _watch(model)
        recipe = TrainRecipe(epochs=1, amp=amp)
        history = train_network(model, digits.x_train[:256], digits.y_train[:256], recipe, 0, torch.device(device),
                                digits.x_train[256:512], digits.y_train[256:512])
        expected = {"off": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]
        assert seen and {dtype for _, dtype in seen} == {expected}, amp
        assert all(p.dtype == torch.float32 for p in model.parameters()), amp
        assert np.isfinite(history).all()


@pytest.mark.parametrize("device", DEVICES)
def test_bf16_learns_as_well_as_float32(device, digits):
    """A real slice of digits, four epochs: reduced precision costs at most a few images."""
    accuracy = {}
    for amp in ("off", "bf16"):
        history = train_network(_model(digits), digits.x_train[:900], digits.y_train[:900],
                                TrainRecipe(epochs=4, amp=amp), 0, torch.device(device),
                                digits.x_train[900:], digits.y_train[900:])
        accuracy[amp] = history[-1]
    assert accuracy["off"] > 0.8  # it learned: ten classes, chance is 0.1
    assert abs(accuracy["bf16"] - accuracy["off"]) <= 0.03, accuracy


@pytest.mark.parametrize("device", DEVICES)
def test_channels_last_computes_the_same_function(device, digits):
    """On three-channel images (digits in each channel), where the layouts differ from the input on."""
    x = np.repeat(digits.x_train[:900], 3, axis=1)
    results = []
    for layout in (False, True):
        model = _model(digits, channels=3)
        seen = _watch(model, kinds=(nn.Conv2d,))
        history = train_network(model, x[:512], digits.y_train[:512], TrainRecipe(epochs=2, channels_last=layout), 0,
                                torch.device(device), x[512:], digits.y_train[512:900])
        layouts = [layout_seen for layout_seen, _ in seen]
        if layout:  # every input channels-last, none also plain-contiguous
            assert layouts and all(last and not plain for plain, last in layouts)
        else:
            assert layouts and all(plain for plain, _ in layouts)
        results.append((history, predict(model, torch.as_tensor(x[512:], device=device)).argmax(1)))
    (plain_history, plain), (last_history, last) = results
    # float sums in another order drift apart over 16 steps; the trained networks still agree
    assert np.allclose(plain_history, last_history, atol=3 / 388)  # at most three validation images apart
    assert (plain == last).mean() >= 0.97


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kernel, stride, padding", [(3, 1, 1), (3, 2, 1), (5, 1, 2), (2, 2, 0)])
def test_pad_excluding_pooling_has_the_same_gradients_in_both_layouts(device, kernel, stride, padding):
    """The pooling of nb201-cell's avg_pool_3x3 and chain-cnn's 2-D avgpool. torch's CUDA
    channels-last kernel for count_include_pad=False returned wrong gradients (torch 2.11, H200);
    ours pools in the standard layout there."""
    pool = PadExcludingAvgPool2d(kernel, stride=stride, padding=padding)
    reference = nn.AvgPool2d(kernel, stride=stride, padding=padding, count_include_pad=False)
    x = torch.randn(4, 16, 14, 14, device=device)
    plain = x.clone().requires_grad_()
    last = x.clone().contiguous(memory_format=torch.channels_last).requires_grad_()
    wanted = reference(x.cpu())
    for inp in (plain, last):
        out = pool(inp)
        assert torch.allclose(out.cpu(), wanted, atol=1e-6)
        out.backward(torch.ones_like(out) * torch.arange(out.shape[-1], device=device))
    cpu = x.cpu().requires_grad_()
    out = reference(cpu)
    out.backward(torch.ones_like(out) * torch.arange(out.shape[-1]))
    for inp in (plain, last):
        assert torch.allclose(inp.grad.cpu(), cpu.grad, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_an_nb201_cell_trains_alike_in_both_layouts(device):
    """A cell with average-pooling edges, on three-channel images: one step's gradients agree
    (TF32 off, so that only the layout differs)."""
    space = space_of_section({"name": "nb201-cell"})
    rng = np.random.default_rng(0)
    tokens = space.sample(rng)
    while space.summary(tokens).count("avg_pool_3x3") < 2 or "nor_conv_3x3" not in space.summary(tokens):
        tokens = space.sample(rng)
    x = torch.randn(32, 3, 16, 16, device=device)
    grads = []
    allow = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        for layout in (torch.contiguous_format, torch.channels_last):
            torch.manual_seed(0)
            model = space.build(tokens, (3, 16, 16), 10).to(device).to(memory_format=layout)
            model(x.contiguous(memory_format=layout)).logsumexp(1).sum().backward()
            grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    finally:
        torch.backends.cudnn.allow_tf32 = allow
    plain, last = grads
    assert ((plain - last).norm() / plain.norm()).item() < 1e-2  # the faulty kernel: 0.1 to 0.3


@pytest.mark.parametrize("settings, words", [
    ({"amp": "fp32"}, "amp must be one of"),
    ({"amp": "bf16", "quantization": "qat", "weight_bits": 4}, "set training.amp=off for a quantised child"),
    ({"channels_last": "yes"}, "channels_last must be true or false"),
])
def test_bad_settings_are_refused_by_name(settings, words):
    with pytest.raises(ValueError, match=words):
        TrainRecipe(**settings).check()


def test_what_the_device_or_the_data_cannot_do_is_refused(digits, mnist1d_slice):
    with pytest.raises(ValueError, match="'fp16' needs CUDA"):
        train_network(_model(digits), digits.x_train[:64], digits.y_train[:64], TrainRecipe(epochs=1, amp="fp16"),
                      0, torch.device("cpu"))
    estimator = TrainEstimator(dataset="mnist1d", epochs=1, channels_last=True, device="cpu")
    with pytest.raises(ValueError, match="channels_last lays out images"):
        estimator.setup(space_of_section({"name": "chain-cnn"}), mnist1d_slice)


@pytest.mark.parametrize("flag, words", [
    ("training.amp=fp16", "'fp16' needs CUDA"),
    ("training.channels_last=true", "channels_last lays out images"),
])
def test_the_cli_exits_2_naming_the_setting(flag, words, tmp_path, mnist1d_npz):
    done = subprocess.run([sys.executable, "-m", "nasforge", "search", "--dataset", mnist1d_npz, "--budget", "2",
                           "--epochs", "1", "--workers", "1", "--device", "cpu", "--set", flag,
                           "--experiment", "exp"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr
    assert words in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "exp").exists()

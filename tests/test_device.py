"""A device this machine cannot train on is refused before anything runs (issue 13, item 5):
``--device cuda`` without CUDA used to fail every trial and end the search with exit status 0."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from nasforge import SearchConfig, run_search
from nasforge.config import ConfigError
from nasforge.estimators.device import resolve_device


@pytest.fixture
def no_cuda(monkeypatch):
    """This machine has no CUDA; on one that has, pretend it has not."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "CUDA"])
def test_cuda_without_cuda_names_the_setting_and_the_way_out(no_cuda, device):
    with pytest.raises(ConfigError) as info:
        resolve_device(device)
    message = str(info.value)
    assert "training.device" in message
    assert "torch.cuda.is_available() is False" in message
    assert "--device cpu or auto" in message


@pytest.mark.parametrize("device, words", [
    ("mps", "not supported"), ("gpu", "not a device"), ("cuda:x", "cuda:N"), ("", "not a device"), (1, "got 1"),
])
def test_other_devices_get_a_clear_error(device, words):
    with pytest.raises(ConfigError, match="training.device") as info:
        resolve_device(device)
    assert words in str(info.value)


def test_auto_and_cpu_still_resolve(no_cuda):
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")


def test_a_search_asking_for_cuda_is_refused_before_the_experiment_exists(no_cuda, tmp_path, mnist1d_npz):
    config = SearchConfig(dataset=mnist1d_npz, budget=2, training={"epochs": 1, "device": "cuda"},
                          execution={"name": "local", "workers": 1})
    with pytest.raises(ConfigError, match="cuda requested"):
        run_search(config, tmp_path / "exp")
    assert not (tmp_path / "exp").exists()


def test_the_cli_exits_2_with_the_reason(tmp_path, mnist1d_npz):
    if torch.cuda.is_available():  # a subprocess cannot be monkeypatched: ask for a device that is absent
        device = f"cuda:{torch.cuda.device_count()}"
    else:
        device = "cuda"
    done = subprocess.run([sys.executable, "-m", "nasforge", "search", "--dataset", mnist1d_npz, "--budget", "2",
                           "--epochs", "1", "--workers", "1", "--device", device, "--experiment", "exp"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "training.device" in done.stderr
    assert not (tmp_path / "exp").exists()

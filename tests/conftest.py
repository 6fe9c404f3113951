"""Shared fixtures: a small real slice of MNIST-1D, as a Dataset and as a user .npz file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nasforge.data.datasets import Dataset, load_mnist1d


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Every test in this process on one torch thread: the tensors here are tiny, and torch's default
    threads spin against the other processes on a busy machine (a controller test took 173 s beside
    another job, in place of seconds). Commands the tests start run with the project's own
    settings; a test of thread handling sets what it needs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def mnist1d() -> Dataset:
    return load_mnist1d()


@pytest.fixture(scope="session")
def mnist1d_slice(mnist1d) -> Dataset:
    """600 training and 200 test signals of the real dataset: enough to learn something quickly."""
    d = mnist1d
    return Dataset("mnist1d-slice", d.x_train[:600], d.y_train[:600], d.x_test[:200], d.y_test[:200], 10)


@pytest.fixture()
def mnist1d_npz(tmp_path, mnist1d_slice) -> str:
    d = mnist1d_slice
    path = tmp_path / "slice.npz"
    np.savez(path, x_train=d.x_train[:, 0], y_train=d.y_train, x_test=d.x_test[:, 0], y_test=d.y_test)
    return str(path)


@pytest.fixture()
def ray_offline(monkeypatch):
    """For tests that start Ray: its processes reach nothing beyond loopback. Ray's dashboard
    process asks the cloud metadata service (169.254.169.254, metadata.google.internal) which
    cloud it runs on, whatever the settings; through a proxy on a closed loopback port those
    requests fail at once, and no DNS lookup is made. Ray's own traffic is to loopback (no_proxy)."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(name, "127.0.0.1,localhost,::1")

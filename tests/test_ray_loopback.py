"""The private Ray instance the ray executor starts must not be reachable from the network.

Ray 2.60 on Linux turned ``_node_ip_address="127.0.0.1"`` into the machine's external address and
its GCS, raylet and workers listened on every interface; this test lists the sockets of every
process the executor's start created (and of this process, where Ray's driver listens too).
"""

from __future__ import annotations

import os

import pytest

from nasforge.config import SearchConfig
from nasforge.build import estimator_recipe
from nasforge.execution import EstimatorRecipe, Task, create_executor
from nasforge.execution.ray_executor import is_loopback

ray = pytest.importorskip("ray")
import psutil  # noqa: E402 - Ray ships psutil in ray/thirdparty_files, on the path once ray is imported


def _recipe() -> EstimatorRecipe:
    config = SearchConfig(budget=1, seed=0, dataset="digits")
    config.space = {"name": "chain-cnn", "num_layers": 2, "dims": 1}
    config.strategy = {"name": "random"}
    config.training = {"estimator": "synthetic", "seconds": 0.0}
    return estimator_recipe(config.to_dict())


def listening_sockets(processes):
    """(process name, address) of every TCP listener and every bound, unconnected UDP socket."""
    found = []
    for proc in processes:
        try:
            name = proc.name()
            for conn in proc.net_connections(kind="inet"):
                listening = conn.status == psutil.CONN_LISTEN or (conn.type.name == "SOCK_DGRAM" and not conn.raddr)
                if listening and conn.laddr:
                    found.append((name, conn.laddr.ip, conn.laddr.port))
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


def test_is_loopback_accepts_only_loopback_forms():
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.3.2.1", "::1", "::ffff:127.0.0.1", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.0.2.2", "::ffff:192.0.2.2", "*", ""))


@pytest.mark.usefixtures("ray_offline")
def test_the_private_ray_instance_listens_on_loopback_only():
    if ray.is_initialized():
        pytest.skip("a Ray instance is already running in this process")  # the executor would reuse it
    ours = ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_USAGE_STATS_ENABLED")
    environment = {key: os.environ.get(key) for key in ours}
    auth_mode = os.environ.get("RAY_AUTH_MODE")  # a user's explicit choice, if any, is Ray's to honour
    executor = create_executor("ray", workers=1)
    executor.start(_recipe())
    try:
        assert executor.ours
        executor.submit(Task(trial_id=0, tokens=(0,) * 12, seed=0))  # a worker process exists from here
        [outcome] = executor.wait(timeout=120)
        me = psutil.Process()
        started = me.children(recursive=True)
        sockets = listening_sockets([me] + started)
        names = {name for name, _, _ in sockets}
        gcs = ray.get_runtime_context().gcs_address
        auth_after = os.environ.get("RAY_AUTH_MODE")
    finally:
        executor.shutdown()
    assert outcome.kind != "lost", outcome.error
    # the check cannot pass vacuously: Ray's servers were found and listen
    assert {"gcs_server", "raylet"} <= names, sockets
    exposed = [s for s in sockets if not is_loopback(s[1])]
    assert not exposed, f"Ray sockets reachable from the network: {exposed}"
    assert is_loopback(gcs.rsplit(":", 1)[0]), gcs
    assert {key: os.environ.get(key) for key in ours} == environment  # set for the start only
    if auth_mode is None:  # Ray's default for a new local instance: token authentication, kept on
        assert auth_after == "token"

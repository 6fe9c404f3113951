"""``nasforge retrain`` refuses what it cannot do before it trains anything."""

from __future__ import annotations

import pytest
import torch
from cli_paths import nasforge, ok, refused

TINY = ["--layers", "2", "--epochs", "1", "--batch-size", "64", "--strategy", "random", "--seed", "1"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has the GPU the test asks for")
def test_a_device_this_machine_lacks_is_refused_before_any_training(tmp_path, mnist1d_npz):
    """It re-ranked three candidates first (each failing, "keeping the search's best" with no reason
    given), then said the device was missing."""
    ok(nasforge(["search", "--dataset", mnist1d_npz, *TINY, "--budget", "3", "--experiment", "e", "--quiet"],
                cwd=tmp_path))
    run = nasforge(["retrain", "--experiment", "e", "--device", "cuda", "--epochs", "1"], cwd=tmp_path)
    refused(run, "retrain", "training.device 'cuda': cuda requested but", "use --device cpu")
    assert "re-rank" not in run.stdout and "retraining" not in run.stdout
    assert not (tmp_path / "e" / "retrain").exists()

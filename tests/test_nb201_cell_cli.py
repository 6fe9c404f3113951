"""``nb201-cell`` through the real command line: search on digits, trials, retrain, export, and the
export used in a fresh interpreter on the raw digits test images; 1-D data refused with exit 2."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Dict

import numpy as np
import pytest

from cli_paths import error_line, json_out, nasforge, ok, python, shown

pytestmark = pytest.mark.timeout(600)

SMALL = ["--space", "nb201-cell", "--set", "space.cells_per_stage=1", "--set", "space.channels=4"]

USE_EXPORT = r'''
import importlib.util, json, sys
import numpy as np, torch
export, data = sys.argv[1], sys.argv[2]
with np.load(data) as f:
    x, y = f["x"], f["y"]
spec = importlib.util.spec_from_file_location("exported_model", export + "/model.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
with torch.no_grad():
    logits = module.load(export)(torch.as_tensor(x))
print(json.dumps({"acc": float((logits.argmax(1).numpy() == y).mean()),
                  "nasforge": any(m.startswith("nasforge") for m in sys.modules)}))
'''


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Dict[str, subprocess.CompletedProcess]:
    folder = tmp_path_factory.mktemp("nb201cell")
    done = {"folder": folder}
    done["search"] = nasforge(["search", "--dataset", "digits", "--budget", "3", "--epochs", "1", "--workers", "1",
                               "--experiment", "exp", *SMALL], cwd=folder)
    if done["search"].returncode == 0:
        done["trials"] = nasforge(["trials", "--json", "--experiment", "exp"], cwd=folder)
        done["retrain"] = nasforge(["retrain", "--experiment", "exp", "--epochs", "1", "--rerank", "1"], cwd=folder)
        if done["retrain"].returncode == 0:
            done["export"] = nasforge(["export", "--experiment", "exp"], cwd=folder)
    return done


def test_search_completes_and_reads_back(runs):
    ok(runs["search"])
    rows = json_out(runs["trials"])
    assert sorted(r["number"] for r in rows if r["state"] == "COMPLETE") == [0, 1, 2], rows
    from nasforge.spaces.base import create_space

    table = create_space("nb201-cifar10")
    for row in rows:  # the stored hash is the table's for the stored tokens
        assert row["arch_hash"] == table.arch_hash(row["tokens"]), row


def test_retrain_and_export_take_raw_digits(runs, tmp_path):
    ok(runs["retrain"])
    reported = float(re.findall(r"test accuracy\s+(\d+(?:\.\d+)?)%", runs["retrain"].stdout)[0]) / 100
    ok(runs["export"])
    out = runs["folder"] / "exp" / "export"
    for name in ("model.py", "chain_net.py", "spec.json", "weights.pt", "model.onnx", "preprocessing.json"):
        assert (out / name).is_file(), f"export lacks {name}{shown(runs['export'])}"
    assert json.loads((out / "spec.json").read_text())["kind"] == "nb201-cell"
    from sklearn.datasets import load_digits

    from nasforge.data.datasets import split_validation

    bunch = load_digits()
    _, (xt, yt) = split_validation(bunch.images, bunch.target, 0.2, 0)  # nasforge's digits test split, raw
    np.savez(tmp_path / "raw.npz", x=xt, y=yt)
    (tmp_path / "use.py").write_text(USE_EXPORT)
    run = python(["use.py", out.resolve(), tmp_path / "raw.npz"], cwd=tmp_path, isolated=True, timeout=120)
    ok(run)
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert not got["nasforge"], "the exported model imported nasforge"
    assert abs(got["acc"] - reported) <= 1.0 / len(yt) + 5e-5, (got, reported)


def test_one_dimensional_data_is_refused(tmp_path):
    run = nasforge(["search", "--dataset", "mnist1d", "--budget", "1", "--epochs", "1", *SMALL], cwd=tmp_path)
    assert run.returncode == 2, shown(run)
    line = error_line(run)
    assert "nb201-cell is 2-D" in line and "1-D inputs" in line and "takes 2-D data only" in line, line
    assert "Traceback" not in run.stderr, shown(run)
    assert not (Path(tmp_path) / "runs" / "latest").exists()

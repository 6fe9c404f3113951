"""An export used as a user would: its ``model.py`` loaded in a fresh, isolated interpreter (no
nasforge on the path) and run on the raw digits test images of nasforge's own split."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict

import numpy as np

from cli_paths import ok, python, shown

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


def accuracy_on_raw_digits(export: Path, scratch: Path) -> Dict:
    """``{"acc", "nasforge", "n"}``: the export's test accuracy on raw digits, whether it imported
    nasforge, and the number of test images."""
    from sklearn.datasets import load_digits

    from nasforge.data.datasets import split_validation

    bunch = load_digits()
    _, (xt, yt) = split_validation(bunch.images, bunch.target, 0.2, 0)  # nasforge's digits test split, raw
    np.savez(scratch / "raw.npz", x=xt, y=yt)
    (scratch / "use.py").write_text(USE_EXPORT)
    run = python(["use.py", Path(export).resolve(), scratch / "raw.npz"], cwd=scratch, isolated=True, timeout=120)
    ok(run)
    return {**json.loads(run.stdout.strip().splitlines()[-1]), "n": len(yt)}


def check_retrain_and_export(runs: Dict, kind: str, scratch: Path) -> None:
    """A CLI test's retrain and export (``runs["retrain"]``, ``runs["export"]`` of experiment ``exp``
    in ``runs["folder"]``): every file there, the spec's ``kind``, and the export's accuracy on the raw
    test images equal to the retrain's reported one (within one image)."""
    ok(runs["retrain"])
    reported = float(re.findall(r"test accuracy\s+(\d+(?:\.\d+)?)%", runs["retrain"].stdout)[0]) / 100
    ok(runs["export"])
    out = runs["folder"] / "exp" / "export"
    for name in ("model.py", "chain_net.py", "spec.json", "weights.pt", "model.onnx", "preprocessing.json"):
        assert (out / name).is_file(), f"export lacks {name}{shown(runs['export'])}"
    assert json.loads((out / "spec.json").read_text())["kind"] == kind
    got = accuracy_on_raw_digits(out, scratch)
    assert not got["nasforge"], "the exported model imported nasforge"
    assert abs(got["acc"] - reported) <= 1.0 / got["n"] + 5e-5, (got, reported)

"""Quantisation through the real CLI on a small real slice of MNIST-1D: a mixed-precision search
under a weight-bits constraint read back (trials, best, pareto), a QAT search retrained and exported
to int8 ONNX, nb201's quantised accuracies searched as objectives, and bad settings refused."""

from __future__ import annotations

import json
import shutil

import pytest
import numpy as np
from cli_paths import error_line, json_out, nasforge, ok, python

TINY = ["--layers", "2", "--epochs", "1", "--batch-size", "64", "--strategy", "random", "--seed", "1"]


def test_mixed_precision_search_reads_back_with_weight_bits(tmp_path, mnist1d_npz):
    ok(nasforge(["search", "--dataset", mnist1d_npz, *TINY, "--budget", "4", "--experiment", "mp",
                 "--set", "space.mixed_precision=true", "--set", "space.weight_bit_choices=[1,2,8]",
                 "--constraint", "weight_bits<=60000", "--constraint-mode", "mnasnet-hard", "--quiet"], cwd=tmp_path))
    trials = json_out(nasforge(["trials", "--experiment", "mp", "--json"], cwd=tmp_path))
    done = [t for t in trials if t["state"] == "COMPLETE"]
    assert len(done) == 4
    for t in done:  # every child reports its bits; 1..8-bit weights are far below 32 bits a parameter
        assert 0 < t["metrics"]["weight_bits"] < 32 * t["metrics"]["params"]
        assert t["metrics"]["bitops"] > 0
    assert len({t["metrics"]["weight_bits"] for t in done}) > 1
    best = json_out(nasforge(["best", "--experiment", "mp", "--json"], cwd=tmp_path))
    assert "weight_bits" in json.dumps(best)
    front = json_out(nasforge(["pareto", "--experiment", "mp", "--metrics", "val_acc,weight_bits", "--json"],
                              cwd=tmp_path))
    assert front["directions"] == ["maximize", "minimize"] and front["front"]


def test_the_bits_of_a_found_network_are_searched_and_retrained(tmp_path, mnist1d_npz):
    # an fp32 search's best, then a search of its bit widths alone (space.architecture), read back
    ok(nasforge(["search", "--dataset", mnist1d_npz, *TINY, "--budget", "2", "--experiment", "fp", "--quiet"],
                cwd=tmp_path))
    network = json_out(nasforge(["best", "--experiment", "fp", "--json"], cwd=tmp_path))[0]
    ok(nasforge(["search", "--dataset", mnist1d_npz, *TINY, "--budget", "4", "--experiment", "bits", "--quiet",
                 "--set", "space.mixed_precision=true", "--set", f"space.architecture={network['tokens']}"],
                cwd=tmp_path))
    done = [t for t in json_out(nasforge(["trials", "--experiment", "bits", "--json"], cwd=tmp_path))
            if t["state"] == "COMPLETE"]
    assert len(done) == 4 and {t["metrics"]["params"] for t in done} == {network["metrics"]["params"]}
    assert len({t["metrics"]["weight_bits"] for t in done}) > 1  # same network, different bit widths
    table = nasforge(["trials", "--experiment", "bits"], cwd=tmp_path)
    ok(table)
    assert "@w" in table.stdout  # each row shows its bit widths
    ok(nasforge(["retrain", "--experiment", "bits", "--epochs", "1"], cwd=tmp_path))
    spec = json.loads(next((tmp_path / "bits" / "retrain").glob("*/spec.json")).read_text())
    assert len(spec["quant"]["weight_bits"]) == len(spec["quant"]["activation_bits"]) >= 2


def test_qat_search_retrains_quantised_and_exports_int8(tmp_path, mnist1d_npz):
    data = tmp_path / "data.npz"  # the user's own copy: it moves below
    shutil.copy(mnist1d_npz, data)
    ok(nasforge(["search", "--dataset", str(data), *TINY, "--budget", "1", "--experiment", "q", "--quiet",
                 "--set", "training.quantization=\"qat\"", "--set", "training.weight_bits=8",
                 "--set", "training.activation_bits=8"], cwd=tmp_path))
    ok(nasforge(["retrain", "--experiment", "q", "--epochs", "3"], cwd=tmp_path))
    spec = json.loads(next((tmp_path / "q" / "retrain").glob("*/spec.json")).read_text())
    assert spec["quant"] == {"weight_bits": 8, "activation_bits": 8}  # retrain carried the setting
    run = nasforge(["export", "--experiment", "q", "--int8", "--min-agreement", "0.5"], cwd=tmp_path)
    ok(run)
    assert "WARNING" not in run.stderr  # onnxruntime's advice to pre-process is taken
    report = json.loads((tmp_path / "q" / "export" / "int8.json").read_text())
    assert report["agreement"] >= 0.5 and report["int8_bytes"] > 0 and report["int8_latency_ms"] > 0
    assert (tmp_path / "q" / "export" / "quant_layers.py").exists()
    export = tmp_path / "q" / "export"
    import onnxruntime as ort
    dims = ", ".join(map(str, ort.InferenceSession(str(export / "model_int8.onnx")).get_inputs()[0].shape[1:]))
    assert f"float32 input, shape (batch, {dims})" in (export / "README.md").read_text()  # not the raw arrays
    before = {p.name: p.read_bytes() for p in export.iterdir() if p.is_file()}
    for level in ("1.01", "95", "nan"):  # a percentage for a fraction: refused before the export is replaced
        refused = nasforge(["export", "--experiment", "q", "--int8", "--overwrite", "--min-agreement", level],
                           cwd=tmp_path)
        assert refused.returncode == 2 and "--min-agreement must be a fraction in [0, 1]" in error_line(refused)
        assert "Traceback" not in refused.stderr
    assert {p.name: p.read_bytes() for p in export.iterdir() if p.is_file()} == before
    moved = data.rename(tmp_path / "moved.npz")
    lost = nasforge(["export", "--experiment", "q", "--int8", "--min-agreement", "0.5", "--out", "e8"], cwd=tmp_path)
    assert lost.returncode == 2 and "pass --dataset NEW_PATH" in error_line(lost), error_line(lost)
    assert not (tmp_path / "e8").exists()  # refused before anything was written
    ok(nasforge(["export", "--experiment", "q", "--int8", "--min-agreement", "0.5", "--out", "e8",
                 "--dataset", str(moved)], cwd=tmp_path))
    assert json.loads((tmp_path / "e8" / "int8.json").read_text())["agreement"] == report["agreement"]


STANDALONE = r"""
import json, sys
sys.modules["nasforge"] = None  # the export must stand alone, quantised layers included
sys.path.insert(0, ".")  # the export's folder (-I leaves it out)
import numpy as np, torch
import model
with np.load(sys.argv[1]) as f:
    x, y = f["x_test"], f["y_test"]
with torch.no_grad():
    print(json.dumps({"acc": float((model.load(".")(torch.from_numpy(x)).argmax(1).numpy() == y).mean())}))
"""
IMAGE_SPACES = {
    "nb201-cell": ["--set", "space.cells_per_stage=1", "--set", "space.channels=4"],
    "mobile-blocks": ["--set", "space.stages=[[4,1],[8,2]]", "--set", "space.stem_channels=4",
                      "--set", "space.head_channels=8"],
}


# mobile-blocks is slow: its saved network reloads quantised in test_spaces_contract's default run
@pytest.mark.parametrize("space, mode", [("nb201-cell", "qat"),
                                         pytest.param("mobile-blocks", "ptq", marks=pytest.mark.slow)])
def test_quantised_image_spaces_retrain_and_export(tmp_path, space, mode):
    """The 2-D spaces' networks quantised through the whole path: their retrained weights load into
    the export (they did not: the rebuilt network was a float one), which scores on the raw test
    images what retrain reported, with nasforge out of reach; and an int8 export is made from it."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    order = np.random.default_rng(0).permutation(len(bunch.images))
    x = (bunch.images * 15).astype(np.uint8)  # 8-bit pixels, as a user's images would be
    np.savez(tmp_path / "digits.npz", x_train=x[order[:1400]], y_train=bunch.target[order[:1400]],
             x_test=x[order[1400:]], y_test=bunch.target[order[1400:]], layout="NHW")
    ok(nasforge(["search", "--dataset", "digits.npz", "--space", space, *IMAGE_SPACES[space], "--epochs", "1",
                 "--strategy", "random", "--seed", "0", "--budget", "1", "--experiment", "q", "--quiet",
                 "--set", f"training.quantization=\"{mode}\"", "--set", "training.weight_bits=4"], cwd=tmp_path))
    ok(nasforge(["retrain", "--experiment", "q", "--epochs", "2", "--rerank", "1", "--device", "cpu"], cwd=tmp_path))
    export = nasforge(["export", "--experiment", "q", "--int8", "--min-agreement", "0.5", "--out", "e"], cwd=tmp_path)
    ok(export)
    assert "WARNING" not in export.stderr  # nor its per-channel axis warning for a batch norm left unfused
    meta = json.loads((tmp_path / "e" / "metadata.json").read_text())
    spec = json.loads((tmp_path / "e" / "spec.json").read_text())
    assert spec["quant"]["weight_bits"] == 4 and meta["test_acc"] > 0.2
    got = python(["-c", STANDALONE, tmp_path / "digits.npz"], cwd=tmp_path / "e", isolated=True)
    ok(got)
    assert json.loads(got.stdout.strip().splitlines()[-1])["acc"] == pytest.approx(meta["test_acc"], abs=1e-9)
    assert json.loads((tmp_path / "e" / "int8.json").read_text())["agreement"] >= 0.5


@pytest.mark.parametrize("objective", ["ptq_acc", "qat_acc"])
def test_nb201_quantised_accuracies_are_searchable_objectives(tmp_path, objective):
    ok(nasforge(["search", "--space", "nb201-cifar10", "--strategy", "random", "--budget", "8", "--objective",
                 objective, "--experiment", "n", "--quiet"], cwd=tmp_path))
    trials = [t for t in json_out(nasforge(["trials", "--experiment", "n", "--json"], cwd=tmp_path))
              if t["state"] == "COMPLETE"]
    assert trials and all(t["objective"] == pytest.approx(t["metrics"][objective]) for t in trials)


def test_a_table_search_points_to_its_results_and_refuses_export(tmp_path):
    """A tabular search trained nothing: it names what to do next, and export says why not."""
    run = nasforge(["search", "--space", "nb201-cifar10", "--strategy", "random", "--budget", "3",
                    "--experiment", "t", "--quiet"], cwd=tmp_path)
    ok(run)
    assert "nasforge best" in run.stdout and "nasforge retrain" not in run.stdout
    for argv in (["export"], ["export", "--int8"], ["retrain"]):
        refused = nasforge([*argv, "--experiment", "t"], cwd=tmp_path)
        assert refused.returncode == 2 and "tabular benchmark" in error_line(refused), error_line(refused)
    assert not (tmp_path / "t" / "export").exists()
    header = next(line for line in run.stdout.splitlines() if line.startswith("nasforge search ->"))
    assert "dataset" not in header and "nb201-cifar10 (a table)" in header  # a table has no dataset to name
    given = nasforge(["search", "--space", "nb201-cifar10", "--dataset", "digits", "--budget", "3",
                      "--experiment", "t2"], cwd=tmp_path)
    assert given.returncode == 2 and "--dataset does not apply to nb201-cifar10" in error_line(given)
    assert not (tmp_path / "t2").exists()


@pytest.mark.parametrize("settings, message", [
    (["training.weight_bits=3", "training.quantization=\"qat\""], "weight bits must be one of 1, 2, 4, 8, 32"),
    (["training.weight_bits=4"], "need quantization=qat"),
    (["training.quantization=\"int4\""], "quantization must be one of off, qat, ptq"),
    (["space.mixed_precision=true", "space.activation_bit_choices=[2]"], "activation_bit_choices must be"),
    (["space.architecture=[0,1,0,0,1,0,2,1,1,0,1,0]"], "architecture fixes a network whose bit widths"),
    (["space.mixed_precision=true", "space.architecture=[0,1]"], "expects 12 tokens, got 2"),
])
def test_bad_quantisation_settings_exit_2(tmp_path, mnist1d_npz, settings, message):
    run = nasforge(["search", "--dataset", mnist1d_npz, *TINY, "--budget", "1", "--experiment", "bad",
                    *[a for s in settings for a in ("--set", s)]], cwd=tmp_path)
    assert run.returncode == 2 and message in error_line(run), error_line(run)
    assert "Traceback" not in run.stderr and not (tmp_path / "bad").exists()
    assert "nasforge search ->" not in run.stdout  # no header of a search that never began

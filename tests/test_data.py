"""Loaders: IDX (both namings, gzipped or not), npz, csv, digits; and their errors on corrupt input."""

import gzip
import struct

import numpy as np
import pytest

from fastbp.data import Dataset, load, load_idx, one_hot, standardize, train_test_split

RNG = np.random.default_rng(5)


def write_idx(path, arr, code=0x08):
    raw = bytes([0, 0, code, arr.ndim]) + b"".join(struct.pack(">I", s) for s in arr.shape) + arr.tobytes()
    if str(path).endswith(".gz"):
        with gzip.open(path, "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)


def make_mnist_dir(folder, naming="dash", gz=True, n=40, n_test=12, side=6):
    """A tiny MNIST-style directory: uint8 images (n, side, side) and labels 0..9."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = {"dash": "{}-{}-idx{}-ubyte", "dot": "{}-{}.idx{}-ubyte"}[naming]
    suffix = ".gz" if gz else ""
    data = {}
    for split, count in (("train", n), ("t10k", n_test)):
        imgs = RNG.integers(0, 256, (count, side, side), dtype=np.uint8)
        labs = RNG.integers(0, 10, count).astype(np.uint8)
        write_idx(folder / (stem.format(split, "images", 3) + suffix), imgs)
        write_idx(folder / (stem.format(split, "labels", 1) + suffix), labs)
        data[split] = (imgs, labs)
    return data


@pytest.mark.parametrize("naming", ["dash", "dot"])
@pytest.mark.parametrize("gz", [True, False])
def test_idx_directory(tmp_path, naming, gz):
    data = make_mnist_dir(tmp_path / "mnist", naming, gz)
    ds = load(tmp_path / "mnist")
    assert isinstance(ds, Dataset)
    imgs, labs = data["train"]
    assert ds.X.shape == (40, 36) and ds.X.dtype == np.float32
    np.testing.assert_allclose(ds.X, imgs.reshape(40, -1) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.y, labs)
    assert ds.X_test.shape == (12, 36) and ds.y_test.shape == (12,)
    assert 0.0 <= ds.X.min() and ds.X.max() <= 1.0


def test_idx_wrong_magic(tmp_path):
    make_mnist_dir(tmp_path, gz=False)
    p = tmp_path / "train-images-idx3-ubyte"
    p.write_bytes(b"\x12\x34" + p.read_bytes()[2:])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.*magic"):
        load(tmp_path)


def test_idx_truncated(tmp_path):
    make_mnist_dir(tmp_path, gz=False)
    p = tmp_path / "train-images-idx3-ubyte"
    p.write_bytes(p.read_bytes()[:-7])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.*truncated"):
        load(tmp_path)


def test_idx_truncated_gzip(tmp_path):
    make_mnist_dir(tmp_path, gz=True)
    p = tmp_path / "train-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:30])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz"):
        load(tmp_path)


def test_idx_label_count_mismatch(tmp_path):
    make_mnist_dir(tmp_path, gz=False)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(39, np.uint8))
    with pytest.raises(ValueError, match=r"39 labels.*40 images"):
        load(tmp_path)


def test_idx_missing_files(tmp_path):
    with pytest.raises(ValueError, match="no MNIST-style IDX files"):
        load(tmp_path)


def test_load_idx_other_types(tmp_path):
    arr = RNG.standard_normal((3, 4)).astype(">f4")
    write_idx(tmp_path / "a.idx", arr, code=0x0D)
    np.testing.assert_array_equal(load_idx(tmp_path / "a.idx"), arr)


def test_npz_both_key_sets(tmp_path):
    X, y = RNG.random((10, 3)), RNG.integers(0, 2, 10)
    np.savez(tmp_path / "a.npz", X=X, y=y)
    ds = load(tmp_path / "a.npz")
    np.testing.assert_array_equal(ds.X, X)
    assert ds.X_test is None
    np.savez(tmp_path / "b.npz", x_train=X, y_train=y, x_test=X[:4], y_test=y[:4])
    ds = load(tmp_path / "b.npz")
    np.testing.assert_array_equal(ds.y_test, y[:4])


def test_npz_that_is_not_a_zip(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"this is not a zip file")
    with pytest.raises(ValueError, match=r"bad\.npz.*not a readable \.npz"):
        load(tmp_path / "bad.npz")


def test_npz_without_known_keys(tmp_path):
    np.savez(tmp_path / "c.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match=r"c\.npz.*expected 'X' and 'y'"):
        load(tmp_path / "c.npz")


def test_csv_header_detected_and_target_column(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("a,label,b\n1,0,2\n3,1,4\n5,1,6\n")
    ds = load(p, target="label")
    np.testing.assert_array_equal(ds.X, [[1, 2], [3, 4], [5, 6]])
    np.testing.assert_array_equal(ds.y, [0, 1, 1])
    assert ds.y.dtype == np.int64
    p2 = tmp_path / "e.csv"
    p2.write_text("1,2,0\n3,4,1\n")
    ds = load(p2)
    np.testing.assert_array_equal(ds.y, [0, 1])


def test_csv_non_numeric_cell_names_row_and_column(tmp_path):
    p = tmp_path / "f.csv"
    p.write_text("a,b,label\n1,2,0\n3,oops,1\n")
    with pytest.raises(ValueError, match=r"f\.csv.*line 3, column 2 \('b'\).*'oops'"):
        load(p)


def test_csv_unknown_target(tmp_path):
    p = tmp_path / "g.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"target.*'c'"):
        load(p, target="c")


def test_missing_path():
    with pytest.raises(FileNotFoundError, match="no such file"):
        load("/no/such/file.npz")


def test_digits_by_name():
    ds = load("digits")
    assert ds.X.shape == (1797, 64) and set(np.unique(ds.y)) == set(range(10))


def test_helpers():
    X = RNG.random((20, 3)) * [1, 10, 100]
    Xtr, Xte, ytr, yte = train_test_split(X, np.arange(20), test_size=0.25, seed=1)
    assert len(Xtr) == 15 and len(Xte) == 5 and set(ytr) | set(yte) == set(range(20))
    a, b, (mean, std) = standardize(Xtr, Xte)
    np.testing.assert_allclose(a.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(a.std(axis=0), 1, atol=1e-12)
    np.testing.assert_allclose(b, (Xte - mean) / std)
    np.testing.assert_array_equal(one_hot(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(ValueError, match="labels"):
        one_hot(np.array([0, 3]), 3)

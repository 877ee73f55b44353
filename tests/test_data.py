"""Data: the loaders, a model's inputs matched by name, labels, the scaler, splits.

The loaders: IDX in both namings, gzipped or not; npz; csv with names, text labels, ids and several targets;
digits; and their errors on corrupt input."""

import struct

import numpy as np
import pytest

from conftest import cli_fails, make_mnist_dir, write_idx
from fastbp.data import (Dataset, Scaler, encode_labels, load, load_idx, load_inputs, one_hot, scale_hint, standardize,
                         train_test_split)

RNG = np.random.default_rng(5)


# --------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("naming", ["dash", "dot"])
@pytest.mark.parametrize("gz", [True, False])
def test_idx_directory(tmp_path, naming, gz):
    data = make_mnist_dir(tmp_path / "mnist", naming, gz, rng=RNG)
    ds = load(tmp_path / "mnist")
    assert isinstance(ds, Dataset)
    imgs, labs = data["train"]
    assert ds.X.shape == (40, 36) and ds.X.dtype == np.float32
    np.testing.assert_allclose(ds.X, imgs.reshape(40, -1) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.y, labs)
    assert ds.X_test.shape == (12, 36) and ds.y_test.shape == (12,)
    assert 0.0 <= ds.X.min() and ds.X.max() <= 1.0


def test_idx_wrong_magic(tmp_path):
    make_mnist_dir(tmp_path, gz=False, rng=RNG)
    p = tmp_path / "train-images-idx3-ubyte"
    p.write_bytes(b"\x12\x34" + p.read_bytes()[2:])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.*magic"):
        load(tmp_path)


def test_idx_truncated(tmp_path):
    make_mnist_dir(tmp_path, gz=False, rng=RNG)
    p = tmp_path / "train-images-idx3-ubyte"
    p.write_bytes(p.read_bytes()[:-7])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.*truncated"):
        load(tmp_path)


def test_idx_truncated_gzip(tmp_path):
    make_mnist_dir(tmp_path, gz=True, rng=RNG)
    p = tmp_path / "train-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:30])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz"):
        load(tmp_path)


def test_idx_label_count_mismatch(tmp_path):
    make_mnist_dir(tmp_path, gz=False, rng=RNG)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(39, np.uint8))
    with pytest.raises(ValueError, match=r"39 labels.*40 images"):
        load(tmp_path)


def test_idx_missing_files(tmp_path):
    with pytest.raises(ValueError, match="no MNIST-style IDX files"):
        load(tmp_path)


def test_idx_with_no_images(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">III", 0, 28, 28))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 0))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte' holds 0 images"):
        load(tmp_path)


def test_idx_float_labels_that_are_not_whole_numbers(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">III", 2, 1, 1) + b"\1\2")
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(bytes([0, 0, 0x0D, 1]) + struct.pack(">I", 2)
                                                       + np.array([1.5, 0], ">f4").tobytes())
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte' holds label 1.5"):
        load(tmp_path)


def test_load_idx_other_types(tmp_path):
    arr = RNG.standard_normal((3, 4)).astype(">f4")
    write_idx(tmp_path / "a.idx", arr, code=0x0D)
    np.testing.assert_array_equal(load_idx(tmp_path / "a.idx"), arr)


# --------------------------------------------------------------------------- npz


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


def test_labels_in_an_npz_that_are_neither_numbers_nor_names(tmp_path, capsys):
    np.savez(tmp_path / "c.npz", X=RNG.standard_normal((6, 2)), y=np.arange(6) * 1j)
    with pytest.raises(ValueError, match=r"c.npz' holds labels of dtype complex128"):
        load(tmp_path / "c.npz")
    cli_fails(capsys, "train", "--data", tmp_path / "c.npz", "--out", tmp_path / "r", names=["c.npz", "labels"])
    np.savez(tmp_path / "s.npz", X=RNG.standard_normal((6, 2)), y=np.array(["cat", "dog"] * 3))
    assert load(tmp_path / "s.npz").y.tolist() == ["cat", "dog"] * 3  # class names: the CLI encodes them
    np.savez(tmp_path / "t.npz", X=RNG.standard_normal((6, 2)), y=np.array([["cat"] * 2] * 6))
    with pytest.raises(ValueError, match=r"t.npz' holds labels of dtype <U3, shape \(6, 2\)"):
        load(tmp_path / "t.npz")


# --------------------------------------------------------------------------- csv


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


def test_csv_text_labels_several_targets_and_id(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text("id,x1,x2,kind,t1,t2\nr1,1,2,dog,0.5,1\nr2,3,4,cat,1.5,2\nr3,5,6,dog,2.5,3\n")
    ds = load(p, target="kind", id_column="id")
    assert ds.y.tolist() == ["dog", "cat", "dog"] and ds.feature_names == ["x1", "x2", "t1", "t2"]
    with pytest.raises(ValueError, match=r"a\.csv' line 2, column 4 \('kind'\): 'dog' is not a number"):
        load(p, target="t1,t2", id_column="id")
    p2 = tmp_path / "b.csv"
    p2.write_text("1,2,dog\n3,4,cat\n")  # text labels on every row: no header
    ds = load(p2)
    assert ds.X.shape == (2, 2) and ds.y.tolist() == ["dog", "cat"] and ds.feature_names is None
    p.write_text("id,x1,x2,t1,t2\nr1,1,2,0.5,1\nr2,3,4,1.5,2\n")
    ds = load(p, target=["t1", "t2"], id_column="id")
    assert ds.y.shape == (2, 2) and ds.target_names == ["t1", "t2"]
    with pytest.raises(ValueError, match=r"target: no column named 'price' in .*a\.csv"):
        load(p, target="price")


def test_a_csv_label_too_large_for_int64_stays_a_number(tmp_path, capsys):
    (tmp_path / "d.csv").write_text("a,b,label\n1,2,1e300\n3,4,0\n5,6,1\n")
    ds = load(tmp_path / "d.csv")
    assert ds.y.dtype == np.float64 and ds.y[0] == 1e300
    cli_fails(capsys, "train", "--data", tmp_path / "d.csv", "--out", tmp_path / "r", names=["--target", "1e+300"])


# --------------------------------------------------------------------------- other sources


def test_missing_path():
    with pytest.raises(FileNotFoundError, match="no such file"):
        load("/no/such/file.npz")


def test_digits_by_name():
    ds = load("digits")
    assert ds.X.shape == (1797, 64) and set(np.unique(ds.y)) == set(range(10))


def test_data_that_is_not_a_path():
    with pytest.raises(TypeError, match="^data: expected 'digits' or a path, got 5"):
        load(5)


# --------------------------------------------------------------------------- a model's inputs, labels, scaling, splits


def test_load_inputs_matches_columns_by_name(tmp_path):
    feats, targets = ["a", "b", "c"], ["y"]
    p = tmp_path / "new.csv"
    p.write_text("name,c,a,b\nq,3,1,2\nr,6,4,5\n")
    inp = load_inputs(p, 3, feats, targets, id_column="name")
    np.testing.assert_array_equal(inp.X, [[1, 2, 3], [4, 5, 6]])  # put back in the model's order
    assert inp.y is None and inp.ids.tolist() == ["q", "r"] and "2 rows" in inp.rows
    p.write_text("c,a,b,y\n3,1,2,cat\n")
    assert load_inputs(p, 3, feats, targets).y.tolist() == ["cat"]
    p.write_text("a,b,d\n1,2,3\n")
    with pytest.raises(ValueError, match=r"new\.csv' has no column 'c'"):
        load_inputs(p, 3, feats, targets)
    p.write_text("a,b,c,extra\n1,2,3,4\n")
    with pytest.raises(ValueError, match=r"new\.csv' has a column 'extra' that is not one of the model's features"):
        load_inputs(p, 3, feats, targets)
    with pytest.raises(ValueError, match=r"id: no column named 'nope' in .*new\.csv"):
        load_inputs(p, 3, feats, targets, id_column="nope")
    p.write_text("1,2\n3,4\n")  # no header, no names: by count
    with pytest.raises(ValueError, match=r"has 2 columns; the model expects 3 features \(or 4 with the target\)"):
        load_inputs(p, 3)
    np.savez(tmp_path / "x.npz", X=np.ones((4, 3)))
    inp = load_inputs(tmp_path / "x.npz", 3)
    assert inp.X.shape == (4, 3) and inp.y is None


def test_encode_labels_sorts_as_numpy_unique_and_maps_back():
    y = np.array(["dog", "cat", "emu", "cat"])
    codes, classes = encode_labels(y)
    assert classes.tolist() == ["cat", "dog", "emu"] == np.unique(y).tolist()
    assert (classes[codes] == y).all()
    codes, classes = encode_labels([15, 5, 15, 5.0])  # arbitrary integers (floats that are integral too)
    assert classes.tolist() == [5, 15] and codes.tolist() == [1, 0, 1, 0]
    assert encode_labels(["emu", "cat"], ["cat", "dog", "emu"])[0].tolist() == [2, 0]


def test_encode_labels_refuses_unseen_and_non_integral_labels():
    with pytest.raises(ValueError, match=r"y: label 'owl' \(row 1\) is not one of the classes \['cat', 'dog'\]"):
        encode_labels(["cat", "owl"], ["cat", "dog"])
    with pytest.raises(ValueError, match=r"label 7 \(row 0\)"):
        encode_labels([7], [5, 15])
    with pytest.raises(ValueError, match="non-integral value 2.5 at row 1.*mse"):
        encode_labels([1.0, 2.5])


def test_scaler_statistics_and_constant_columns():
    X = RNG.standard_normal((30, 3)) * [1, 1000, 0] + [0, 5e4, 7]
    sc = Scaler.fit(X)
    np.testing.assert_allclose(sc.x_mean, X.mean(axis=0))
    np.testing.assert_allclose(sc.x_std, [X[:, 0].std(), X[:, 1].std(), 1.0])
    Z = sc.transform_X(X)
    np.testing.assert_allclose(Z[:, :2].mean(axis=0), 0, atol=1e-10)
    np.testing.assert_allclose(Z[:, 2], 0)
    assert scale_hint(X) is not None and "standardize" in scale_hint(X)
    assert scale_hint(Z[:, :2]) is None


def test_split_standardize_and_one_hot():
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

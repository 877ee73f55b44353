"""Users' own data in the library: labels by name, scaling kept with the model, files without targets,
regression and multi-label scores, progress (issue 17)."""

import io
import warnings

import numpy as np
import pytest
from numba import njit

import fastbp
from fastbp.callbacks import Progress, needs_compile
from fastbp.data import Scaler, encode_labels, load, load_inputs, scale_hint

RNG = np.random.default_rng(7)


# ----------------------------------------------------------------------------- labels

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


def test_network_fit_with_string_labels_sets_classes_and_predicts_names(tmp_path):
    X = RNG.standard_normal((60, 3)).astype(np.float32)
    names = np.array(["no", "yes"])
    y = names[(X[:, 0] > 0).astype(int)]
    net = fastbp.Network([3, 8, 2], seed=1)
    net.fit(X, y, epochs=30, lr=0.3, verbose=0)
    assert net.classes_.tolist() == ["no", "yes"]
    pred = net.predict(X)
    assert pred.dtype.kind == "U" and (pred == y).mean() > 0.9
    idx = net.forward(X).argmax(axis=1)
    assert (pred == names[idx]).all()
    assert net.evaluate(X, y)["accuracy"] == pytest.approx((pred == y).mean())
    net.save(tmp_path / "m.npz")
    back = fastbp.load(tmp_path / "m.npz")  # read with allow_pickle=False
    assert back.classes_.tolist() == ["no", "yes"] and (back.predict(X) == pred).all()


def test_integer_classes_and_one_sigmoid_unit():
    X = RNG.standard_normal((40, 2))
    y = np.where(X[:, 1] > 0, 15, 5)
    net = fastbp.Network([2, 4, 2], classes=[5, 15], seed=0)
    net.fit(X, y, epochs=20, lr=0.3, verbose=0)
    assert set(net.predict(X)) <= {5, 15}
    assert net.get_config()["classes"] == [5, 15] and isinstance(net.get_config()["classes"][0], int)
    bin_net = fastbp.Network([2, 4, 1], loss="binary_cross_entropy", classes=["a", "b"], seed=0)
    p = bin_net.predict_proba(X)
    np.testing.assert_allclose(p[:, 1], bin_net.forward(X)[:, 0], rtol=1e-6)
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-6)
    assert set(bin_net.predict(X)) <= {"a", "b"}
    with pytest.raises(ValueError, match=r"classes: expected 3 distinct labels .*got \[.a., .b.\]"):
        fastbp.Network([2, 4, 3], classes=["a", "b"])
    with pytest.raises(ValueError, match=r"y: 2 distinct labels \['a', 'b'\], but the network has 3 classes"):
        fastbp.Network([2, 4, 3]).fit(X, np.where(y == 5, "a", "b"), verbose=0)
    with pytest.raises(ValueError, match="classes: only a single-label classifier"):
        fastbp.Network([2, 4, 1], loss="mse", classes=["a", "b"])


# ----------------------------------------------------------------------------- scaling

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


def test_standardized_network_is_the_plain_network_on_scaled_data(tmp_path):
    X = RNG.standard_normal((80, 3)) * [1, 100, 1e4] + [0, 50, -3e4]
    y = X @ [3.0, 0.02, 1e-4] + 5
    net = fastbp.Network([3, 6, 1], activation="tanh", loss="mse", standardize=True, dtype="float64", seed=2)
    net.fit(X, y, epochs=3, lr=0.05, verbose=0)
    sc = net.scaler_
    np.testing.assert_allclose(sc.x_mean, X.mean(axis=0))
    np.testing.assert_allclose(sc.y_mean, [y.mean()]) and np.testing.assert_allclose(sc.y_std, [y.std()])
    plain = fastbp.Network([3, 6, 1], activation="tanh", loss="mse", dtype="float64", seed=2)
    plain.params = net.params
    Xs = (X - X.mean(axis=0)) / X.std(axis=0)
    ref = plain.forward(Xs)[:, 0] * y.std() + y.mean()
    np.testing.assert_allclose(net.predict(X), ref, rtol=1e-12)
    assert net.predict(X).shape == (80,)  # 1-D targets → 1-D predictions
    # evaluate in the targets' own units, against independent formulas
    from sklearn.metrics import mean_absolute_error, r2_score

    s = net.evaluate(X, y)
    assert s["loss"] == pytest.approx(0.5 * np.mean((ref - y) ** 2))
    assert s["rmse"] == pytest.approx(np.sqrt(np.mean((ref - y) ** 2)))
    assert s["mae"] == pytest.approx(mean_absolute_error(y, ref))
    assert s["r2"] == pytest.approx(r2_score(y, ref))
    # input sensitivities are with respect to the raw inputs (chain rule through the scaling)
    g = net.input_grad(X[:4], y[:4])
    eps = 1e-6 * np.abs(X[:4]).max(axis=0)
    for j in range(3):
        Xp, Xm = X[:4].copy(), X[:4].copy()
        Xp[:, j] += eps[j]
        Xm[:, j] -= eps[j]
        num = [(0.5 * ((net.forward(Xp[k:k + 1])[0, 0] - sc.y_mean[0]) / sc.y_std[0] - (y[k] - sc.y_mean[0]) / sc.y_std[0]) ** 2
                - 0.5 * ((net.forward(Xm[k:k + 1])[0, 0] - sc.y_mean[0]) / sc.y_std[0] - (y[k] - sc.y_mean[0]) / sc.y_std[0]) ** 2)
               / (2 * eps[j]) for k in range(4)]
        np.testing.assert_allclose(g[:, j], num, rtol=1e-5, atol=1e-12)
    net.save(tmp_path / "r.npz")
    back = fastbp.load(tmp_path / "r.npz")
    np.testing.assert_array_equal(back.predict(X), net.predict(X))
    np.testing.assert_array_equal(net.astype("float32").scaler_.x_std, sc.x_std)


def test_classifier_scales_features_only_and_hint_warns():
    X = RNG.standard_normal((50, 2)) * [1, 1e4]
    y = (X[:, 0] > 0).astype(int)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        fastbp.Network([2, 3, 2]).fit(X, y, epochs=1, verbose=0)
        assert any("scales differ" in str(m.message) for m in w)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net = fastbp.Network([2, 3, 2], standardize=True)
        net.fit(X, y, epochs=1, verbose=0)
    assert net.scaler_.y_mean is None


# ----------------------------------------------------------------------------- regression, multi-label

def test_several_targets_and_multilabel():
    X = RNG.standard_normal((40, 3))
    Y = np.stack([X[:, 0], 2 * X[:, 1]], axis=1)
    net = fastbp.Network([3, 5, 2], loss="mse", seed=0)
    net.fit(X, Y, epochs=2, verbose=0)
    assert net.predict(X).shape == (40, 2)
    A = net.forward(X)
    s = net.evaluate(X, Y)
    assert s["loss"] == pytest.approx(0.5 * ((A - Y) ** 2).sum(axis=1).mean(), rel=1e-5)
    ml = fastbp.Network([3, 5, 4], loss="binary_cross_entropy", seed=0)
    T = (RNG.random((40, 4)) > 0.5).astype(int)
    ml.fit(X, T, epochs=2, verbose=0)
    P = ml.predict(X)
    assert P.shape == (40, 4) and set(np.unique(P)) <= {0, 1}
    np.testing.assert_array_equal(P, ml.forward(X) >= 0.5)
    s = ml.evaluate(X, T)
    assert s["exact_match"] == pytest.approx((P == T).all(axis=1).mean())
    assert s["hamming_accuracy"] == pytest.approx((P == T).mean())
    with pytest.raises(ValueError, match="predict_proba"):
        ml.predict_proba(X)


# ----------------------------------------------------------------------------- files

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


# ----------------------------------------------------------------------------- progress

def test_progress_bar_and_in_epoch_updates():
    out = io.StringIO()
    p = Progress(1, 3, 1, stream=out)
    logs = {"loss": 0.5, "lr": 0.1, "samples_per_second": 100.0, "seconds": 0.1}
    p.batches(1, 5, 10)
    assert p._bar.n == pytest.approx(0.5)
    for e in (1, 2, 3):
        p.update(e, logs)
    p.close(False)
    text = out.getvalue()
    assert "epoch 3/3" in text and "100%" in text and "loss 0.5000" in text
    out = io.StringIO()
    p = Progress(2, 2, 1, stream=out)
    p.update(1, logs)
    assert out.getvalue().startswith("epoch 1  loss 0.5000")


def test_compile_notice_only_before_a_first_compile():
    @njit  # no cache: compiled in this process only
    def twice(a):
        return a * 2

    a32 = np.ones(2, np.float32)
    assert needs_compile(twice, a32)
    twice(a32)
    assert not needs_compile(twice, a32)
    assert needs_compile(twice, np.ones(2, np.float64))
    out = io.StringIO()
    Progress(2, 1, 1, stream=out).compiling(twice, np.ones(2, np.int64))
    assert out.getvalue() == "compiling (first run only)...\n"
    out = io.StringIO()
    bar = Progress(1, 1, 1, stream=out)
    bar.compiling(twice, np.ones((2, 2), np.int64))
    bar.close(False)
    assert "compiling (first run only)...\n" in out.getvalue()

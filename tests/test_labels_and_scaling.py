"""A network on a user's own targets: class labels, several targets, multi-label outputs, standardization.

Class labels by name or of any integers, one sigmoid unit for two classes, several regression targets and
multi-label outputs with their scores, and the scaling kept with the model."""

import warnings

import numpy as np
import pytest

import fastbp

RNG = np.random.default_rng(7)


# ----------------------------------------------------------------------------- labels


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

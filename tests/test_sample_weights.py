"""Sample weights, class weights and the L2 penalty, checked against their definitions.

The weighted cost of a set of rows is Σ_k w_k C_k / Σ_k w_k (scikit-learn's MLP), so its
gradient is Σ_k w_k ∇C_k / Σ_k w_k: the reference takes each row's own gradient from the
NumPy backprop of conftest (the mean over one row is that row's cost) and weighs them.
The L2 penalty (l2/2)·Σ‖W‖² / Σ w adds l2·W / Σ w to the weights' gradient (not the biases').
"""

import numpy as np
import pytest
from sklearn.utils.class_weight import compute_class_weight

import fastbp
from conftest import assert_raises_naming, backprop_np, make_targets, per_sample_cost_np
from fastbp.training import train_population

# (loss, output, output width, one-hot targets): every cost and its output
COSTS = [
    ("mse", "identity", 3, False),
    ("squared", "tanh", 3, False),
    ("mse", "softmax", 3, False),
    ("binary_cross_entropy", "sigmoid", 1, False),
    ("binary_cross_entropy", "sigmoid", 3, False),
    ("cross_entropy", "softmax", 3, False),
    ("cross_entropy", "softmax", 3, True),
]
COST_IDS = [f"{c[0]}+{c[1]}({c[2]}{', one-hot' if c[3] else ''})" for c in COSTS]


def _case(loss, output, n_out, one_hot, n=12, dtype="float64", seed=0):
    net = fastbp.Network([4, 6, 5, n_out], activation="tanh", output=output, loss=loss, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4))
    y = make_targets(loss, n, n_out, rng, one_hot=one_hot)
    w = rng.uniform(0.0, 3.0, n)
    w[1] = 0.0  # a row that counts for nothing
    return net, X, y, w


def _l2_grad(net, l2, total):
    """l2·W / Σw in the weights' places of the flat layout, 0 in the biases'."""
    g = np.zeros(net.n_params)
    for l in range(1, len(net.sizes)):
        net.layout.weights(g, l)[...] = l2 * net.weights(l) / total
    return g


def weighted_reference(net, X, y, w, l2=0.0):
    """(Σ w C / Σ w + (l2/2)Σ‖W‖²/Σw, its gradient) in float64 from per-row NumPy backprop."""
    C = per_sample_cost_np(net, X, y)
    rows = [backprop_np(net, X[k : k + 1], y[k : k + 1]) for k in range(X.shape[0])]
    total = w.sum()
    sq = sum(float(np.sum(np.asarray(net.weights(l), np.float64) ** 2)) for l in range(1, len(net.sizes)))
    cost = float(w @ C) / total + 0.5 * l2 * sq / total
    return cost, (w @ np.array(rows)) / total + _l2_grad(net, l2, total)


@pytest.mark.parametrize("case", COSTS, ids=COST_IDS)
def test_weighted_cost_and_gradient_are_the_weighted_mean(case):
    net, X, y, w = _case(*case)
    loss, grad = net.loss_and_grad(X, y, sample_weight=w)
    ref_loss, ref_grad = weighted_reference(net, X, y, w)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-9, atol=1e-13)
    assert net.evaluate(X, y, sample_weight=w)["loss"] == pytest.approx(ref_loss, rel=1e-12)
    # with the penalty
    loss, grad = net.loss_and_grad(X, y, sample_weight=w, l2=0.3)
    ref_loss, ref_grad = weighted_reference(net, X, y, w, l2=0.3)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize("case", [COSTS[0], COSTS[4], COSTS[5]], ids=[COST_IDS[0], COST_IDS[4], COST_IDS[5]])
def test_gradcheck_with_weights_and_l2(case):
    net, X, y, w = _case(*case)
    assert fastbp.gradcheck(net, X, y, sample_weight=w) <= 1e-6
    assert fastbp.gradcheck(net, X, y, sample_weight=w, l2=0.5) <= 1e-6
    assert fastbp.gradcheck(net, X, y, l2=0.5) <= 1e-6


def test_l2_without_weights_is_over_the_row_count():
    net, X, y, _ = _case(*COSTS[5])
    loss, grad = net.loss_and_grad(X, y, l2=0.2)
    ref_loss, ref_grad = weighted_reference(net, X, y, np.ones(X.shape[0]), l2=0.2)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_weights_of_ones_are_bitwise_no_weights(dtype, optimizer):
    loss, output, n_out, one_hot = COSTS[5]
    runs = []
    for sw in (None, np.ones(40)):
        net, X, y, _ = _case(loss, output, n_out, one_hot, n=40, dtype=dtype)
        Xv, yv = X[:10] + 0.5, y[:10]
        h = net.fit(X, y, epochs=2, batch_size=7, optimizer=optimizer, sample_weight=sw, verbose=0,
                    validation_data=(Xv, yv) if sw is None else (Xv, yv, np.ones(10)))
        runs.append((net.params.copy(), h.history, net.loss_and_grad(X, y, sample_weight=sw),
                     net.evaluate(X, y, sample_weight=sw)))
    (p0, h0, (l0, g0), e0), (p1, h1, (l1, g1), e1) = runs
    assert np.array_equal(p0, p1)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert h0[key] == h1[key]
    assert l0 == l1 and np.array_equal(g0, g1) and e0 == e1


@pytest.mark.parametrize("case", [COSTS[0], COSTS[5]], ids=[COST_IDS[0], COST_IDS[5]])
def test_integer_weights_are_repeated_rows(case):
    """Full batch: a weight of k trains as k copies of the row."""
    net, X, y, _ = _case(*case, n=10)
    w = np.array([0, 1, 2, 3, 1, 1, 4, 2, 1, 1])
    twin = fastbp.Network.from_config(net.get_config())
    Xr, yr = np.repeat(X, w, axis=0), np.repeat(y, w, axis=0)
    la, ga = net.loss_and_grad(X, y, sample_weight=w, l2=0.1)
    lb, gb = twin.loss_and_grad(Xr, yr, l2=0.1)
    assert la == pytest.approx(lb, rel=1e-12)
    np.testing.assert_allclose(ga, gb, rtol=1e-10, atol=1e-14)
    ha = net.fit(X, y, sample_weight=w, epochs=3, batch_size=10, optimizer="adam", l2=0.1, shuffle=False, verbose=0)
    hb = twin.fit(Xr, yr, epochs=3, batch_size=w.sum(), optimizer="adam", l2=0.1, shuffle=False, verbose=0)
    np.testing.assert_allclose(net.params, twin.params, rtol=1e-9, atol=1e-12)
    # the epoch's loss is the batch's cost (scikit-learn's loss_curve_), penalty included
    np.testing.assert_allclose(ha["loss"], hb["loss"], rtol=1e-10)


def test_fit_takes_the_weighted_penalised_step():
    """One full-batch SGD update is θ - lr·∇(Σ w C / Σ w + (l2/2)Σ‖W‖² / Σ w), and the logged loss is that
    cost before the update."""
    net, X, y, w = _case(*COSTS[5], n=16)
    ref_loss, ref_grad = weighted_reference(net, X, y, w, l2=0.7)
    before = net.params.copy()
    h = net.fit(X, y, sample_weight=w, l2=0.7, epochs=1, batch_size=16, lr=0.05, verbose=0)
    np.testing.assert_allclose(net.params, before - 0.05 * ref_grad, rtol=1e-12, atol=1e-14)
    assert h["loss"][0] == pytest.approx(ref_loss, rel=1e-12)


def test_mini_batch_loss_and_accuracy_are_sklearns_epoch_means():
    """Per batch the weighted mean; the epoch averages the batches by their row counts."""
    net, X, y, w = _case(*COSTS[5], n=10)
    twin = fastbp.Network.from_config(net.get_config())
    h = net.fit(X, y, sample_weight=w, epochs=1, batch_size=4, lr=1e-300, shuffle=False, verbose=0)
    loss = acc = 0.0
    for s in (slice(0, 4), slice(4, 8), slice(8, 10)):
        r = twin.evaluate(X[s], y[s], sample_weight=w[s])
        rows = s.stop - s.start
        loss += rows * r["loss"]
        acc += rows * r["accuracy"]
    assert h["loss"][0] == pytest.approx(loss / 10, rel=1e-12)
    assert h["accuracy"][0] == pytest.approx(acc / 10, rel=1e-12)


def test_weighted_accuracy_and_regression_scores():
    net, X, y, w = _case(*COSTS[5])
    right = net.predict(X) == y
    assert net.evaluate(X, y, sample_weight=w)["accuracy"] == pytest.approx(float(w @ right) / w.sum())
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    reg, X, Y, w = _case(*COSTS[0])
    scores = reg.evaluate(X, Y, sample_weight=w)
    A = reg.forward(X)
    assert scores["rmse"] == pytest.approx(np.sqrt(mean_squared_error(Y, A, sample_weight=w)))
    assert scores["mae"] == pytest.approx(mean_absolute_error(Y, A, sample_weight=w))
    assert scores["r2"] == pytest.approx(r2_score(Y, A, sample_weight=w))


def test_balanced_class_weights_are_sklearns():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((30, 4))
    y = np.array(["a"] * 5 + ["b"] * 20 + ["c"] * 5)
    net = fastbp.Network([4, 5, 3], seed=1, dtype="float64")
    from fastbp.training import row_class_weights

    X_, Y = net.check_data(X, np.repeat([0, 1, 2], [5, 20, 5]))
    per_class = compute_class_weight("balanced", classes=np.unique(y), y=y)
    np.testing.assert_array_equal(row_class_weights(net, Y, "balanced"), per_class[[0] * 5 + [1] * 20 + [2] * 5])
    # fit with class_weight = fit with the rows' weights (multiplied with sample_weight)
    sw = rng.uniform(0.5, 2.0, 30)
    a = fastbp.Network([4, 5, 3], seed=1, dtype="float64")
    b = fastbp.Network([4, 5, 3], seed=1, dtype="float64")
    a.fit(X, y, class_weight="balanced", sample_weight=sw, epochs=2, batch_size=8, verbose=0)
    b.fit(X, y, sample_weight=sw * per_class[np.searchsorted(["a", "b", "c"], y)], epochs=2, batch_size=8, verbose=0)
    np.testing.assert_array_equal(a.params, b.params)
    # a dict by label; classes not named weigh 1
    c = fastbp.Network([4, 5, 3], seed=1, dtype="float64")
    c.fit(X, y, class_weight={"b": 0.25}, epochs=2, batch_size=8, verbose=0)
    d = fastbp.Network([4, 5, 3], seed=1, dtype="float64")
    d.fit(X, y, sample_weight=np.where(y == "b", 0.25, 1.0), epochs=2, batch_size=8, verbose=0)
    np.testing.assert_array_equal(c.params, d.params)


def test_validation_split_splits_the_weights():
    net, X, y, w = _case(*COSTS[5], n=20)
    h = net.fit(X, y, sample_weight=w, validation_split=0.25, epochs=1, batch_size=5, verbose=0)
    twin = fastbp.Network.from_config(net.get_config())
    twin.params = net.params
    assert h["val_loss"][0] == pytest.approx(twin.evaluate(X[15:], y[15:], sample_weight=w[15:])["loss"], rel=1e-12)


def test_population_with_l2_and_weights_is_fit():
    # float32: the population kernel the suite's other populations compile (the property holds in either dtype)
    net, X, y, w = _case(*COSTS[5], n=30, dtype="float32")
    fitted = fastbp.Network.from_config(net.get_config())
    fitted.fit(X, y, sample_weight=w, l2=0.3, epochs=2, batch_size=8, verbose=0)
    others = [fastbp.Network.from_config(net.get_config()) for _ in range(2)]
    Xc, Y = others[0].check_data(X, y)
    sgd = fastbp.SGD(lr=0.1)
    train_population(others, Xc, Y, 2, 8, [sgd, sgd], [fastbp.Constant()] * 2, [None, None], l2s=[0.3, 0.0],
                     sample_weight=w)
    assert np.array_equal(others[0].params, fitted.params)
    assert not np.array_equal(others[1].params, fitted.params)


@pytest.mark.parametrize("bad, kind", [
    (-np.ones(12), ValueError), (np.full(12, np.nan), ValueError), (np.full(12, np.inf), ValueError),
    (np.zeros(12), ValueError), (np.ones(11), ValueError), (np.ones((12, 1)), ValueError), ("heavy", TypeError),
])
def test_bad_sample_weights(bad, kind):
    net, X, y, _ = _case(*COSTS[5])
    assert_raises_naming(kind, "sample_weight", net.fit, X, y, sample_weight=bad, epochs=1, verbose=0)
    assert_raises_naming(kind, "sample_weight", net.evaluate, X, y, sample_weight=bad)
    assert_raises_naming(kind, "sample_weight", net.loss_and_grad, X, y, sample_weight=bad)
    assert net.epochs_trained == 0
    assert_raises_naming(kind, "validation_data[2]", net.fit, X, y, validation_data=(X, y, bad), epochs=1, verbose=0)


def test_bad_class_weights_and_l2():
    net, X, y, _ = _case(*COSTS[5])
    assert_raises_naming(ValueError, "class_weight", net.fit, X, y, class_weight={7: 1.0}, verbose=0)
    assert_raises_naming(ValueError, "class_weight", net.fit, X, y, class_weight="even", verbose=0)
    assert_raises_naming(TypeError, "class_weight", net.fit, X, y, class_weight=[1, 2, 3], verbose=0)
    assert_raises_naming(ValueError, "class_weight", net.fit, X, y, class_weight={0: -1.0}, verbose=0)
    assert_raises_naming(ValueError, "class_weight", net.fit, X, y, class_weight={0: 0, 1: 0, 2: 0}, verbose=0)
    reg, Xr, yr, _ = _case(*COSTS[0])
    assert_raises_naming(ValueError, "class_weight", reg.fit, Xr, yr, class_weight="balanced", verbose=0)
    for bad, kind in ((-0.1, ValueError), (np.inf, ValueError), ("big", TypeError)):
        assert_raises_naming(kind, "l2", net.fit, X, y, l2=bad, verbose=0)
        assert_raises_naming(kind, "l2", net.loss_and_grad, X, y, l2=bad)
    assert net.epochs_trained == 0


@pytest.mark.parametrize("optimizer", ["sgd", "sgd-momentum"])
def test_l2_step_on_the_blas_engine(optimizer):
    """On a network whose plain-SGD step is folded into BLAS (as in test_engines.py's thread test), and on the
    unfolded path (momentum 0.9 takes the optimizer's own step; its first step is plain descent): one
    full-batch update is θ - lr·∇(cost + penalty) with the weighted cost."""
    rng = np.random.default_rng(7)
    X = rng.standard_normal((100, 200)).astype(np.float32)
    y = rng.integers(0, 10, 100)
    w = rng.uniform(0.5, 2.0, 100)
    net = fastbp.Network([200, 256, 64, 10], seed=0)
    _, grad = net.astype("float64").loss_and_grad(X, y, sample_weight=w, l2=0.5)
    want = net.params.astype(np.float64) - 0.05 * grad
    opt = fastbp.SGD(lr=0.05, momentum=0.9 if optimizer == "sgd-momentum" else 0.0)
    net.fit(X, y, sample_weight=w, l2=0.5, epochs=1, batch_size=100, optimizer=opt, shuffle=False, verbose=0)
    np.testing.assert_allclose(net.params, want, rtol=1e-4, atol=1e-6)

"""The costs of section 4: evaluate()["loss"] is the formula averaged over the samples, and stays finite
when the output saturates."""

import numpy as np
import pytest
from scipy.special import log_softmax

import fastbp
from fastbp import Sigmoid
from conftest import backprop_np, forward_np, identity_layer_net, make_targets, per_sample_cost_np, targets_matrix

TOL = {"float32": dict(rtol=1e-5, atol=1e-6), "float64": dict(rtol=1e-12, atol=1e-14)}


def formula(loss, a, z, Y):
    """Per-sample costs written from the a's as in the paper (the naive logs are fine for moderate z)."""
    if loss == "mse":
        return np.sum(0.5 * (a - Y) ** 2, axis=1)
    if loss == "squared":
        return np.sum((a - Y) ** 2, axis=1)
    if loss == "binary_cross_entropy":
        return -np.sum(Y * np.log(a) + (1 - Y) * np.log(1 - a), axis=1)
    if loss == "cross_entropy":
        return -np.log(a[Y.astype(bool)])
    raise AssertionError(loss)


CASES = {
    "mse+identity": ("mse", "identity", 3, False),
    "mse+identity(1 unit, 1-D y)": ("mse", "identity", 1, False),
    "squared+identity": ("squared", "identity", 3, False),
    "squared+tanh": ("squared", "tanh", 2, False),
    "mse+softmax": ("mse", "softmax", 3, False),
    "mse+sigmoid": ("mse", "sigmoid", 2, False),
    "bce+sigmoid(1 unit)": ("binary_cross_entropy", "sigmoid", 1, False),
    "bce+sigmoid(3 units)": ("binary_cross_entropy", "sigmoid", 3, False),
    "bce+sigmoid(beta=2)": ("binary_cross_entropy", Sigmoid(2.0), 3, False),
    "cross_entropy(labels)": ("cross_entropy", "softmax", 4, False),
    "cross_entropy(one-hot)": ("cross_entropy", "softmax", 4, True),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CASES)
def test_loss_is_the_mean_of_the_formula(case, dtype):
    loss, output, n_out, one_hot = CASES[case]
    rng = np.random.default_rng(11)
    net = fastbp.Network([4, 6, n_out], activation="tanh", output=output, loss=loss, dtype=dtype, seed=2)
    X = rng.standard_normal((12, 4))
    y = make_targets(loss, 12, n_out, rng, one_hot=one_hot)
    if n_out == 1 and loss == "mse":
        y = y[:, 0].copy()  # 1-D targets for a single output unit
    if loss == "binary_cross_entropy":
        y[0] = 0.25  # soft targets are allowed too
    z, _ = forward_np(net, X)[-1]
    a = net.forward(X).astype(np.float64)
    Y = targets_matrix(net, y)
    expected = formula(loss, a, z, Y).mean()
    got = net.evaluate(X, y)["loss"]
    np.testing.assert_allclose(got, expected, **TOL[dtype])
    np.testing.assert_allclose(got, per_sample_cost_np(net, X, y).mean(), **TOL[dtype])
    loss_value, _ = net.loss_and_grad(X, y)
    np.testing.assert_allclose(loss_value, got, rtol=1e-12)


def test_mse_is_half_of_squared():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((9, 4)), rng.standard_normal((9, 2))
    mse = fastbp.Network([4, 5, 2], activation="tanh", loss="mse", dtype="float64", seed=1)
    sq = fastbp.Network([4, 5, 2], activation="tanh", loss="squared", dtype="float64", seed=1)
    np.testing.assert_allclose(sq.evaluate(X, y)["loss"], 2 * mse.evaluate(X, y)["loss"], rtol=1e-14)
    np.testing.assert_allclose(sq.loss_and_grad(X, y)[1], 2 * mse.loss_and_grad(X, y)[1], rtol=1e-14)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("beta", [1.0, 2.0])
def test_binary_cross_entropy_saturated_is_finite_and_exact(dtype, beta):
    """z = ±200: a rounds to exactly 0 or 1, where y log a + (1-y) log(1-a) taken literally is -inf."""
    net = identity_layer_net(2, Sigmoid(beta), loss="binary_cross_entropy", dtype=dtype)
    net.weights(1)[...] = 200 * np.eye(2)
    X = np.array([[1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]])
    y = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])  # rows 0 and 1 maximally wrong, row 2 right
    t = 200 * beta
    expected = (2 * t + 2 * t + 2 * np.log1p(np.exp(-t))) / 3  # softplus(t) - y t summed, per sample, averaged
    got = net.evaluate(X, y)["loss"]
    assert np.isfinite(got)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    np.testing.assert_allclose(got, per_sample_cost_np(net, X, y).mean(), rtol=1e-6)
    loss_value, grad = net.loss_and_grad(X, y)
    assert np.isfinite(loss_value) and np.all(np.isfinite(grad))
    # ∂C/∂z = β (a - y): saturated wrong units pass the full ±β, not a vanished gradient
    np.testing.assert_allclose(grad, backprop_np(net, X, y), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(net.layout.weights(grad, 1), beta * np.array([[2, -2], [-2, 2]]) / 3, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cross_entropy_huge_logits_is_finite_and_exact(dtype):
    net = identity_layer_net(3, "softmax", dtype=dtype)
    X = np.array([[1e4, 0.0, -1e4], [1e4, 0.0, -1e4], [1e4, 1e4, 0.0]])
    y = np.array([2, 0, 1])
    expected = np.mean(-log_softmax(X, axis=1)[np.arange(3), y])  # (2e4 + 0 + log 2) / 3
    got = net.evaluate(X, y)["loss"]
    assert np.isfinite(got)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    loss_value, grad = net.loss_and_grad(X, y)
    assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("loss, output, n_out", [("cross_entropy", "softmax", 4),
                                                 ("binary_cross_entropy", "sigmoid", 1),
                                                 ("binary_cross_entropy", "sigmoid", 3)])
def test_accuracy_is_the_fraction_predicted_right(loss, output, n_out):
    rng = np.random.default_rng(3)
    net = fastbp.Network([4, 6, n_out], activation="tanh", output=output, loss=loss, dtype="float64", seed=5)
    X = rng.standard_normal((40, 4))
    a = net.forward(X)
    if loss == "cross_entropy":
        y = rng.integers(0, n_out, 40)
        right = a.argmax(axis=1) == y
    elif n_out == 1:
        y = rng.integers(0, 2, 40).astype(float)
        right = (a[:, 0] >= 0.5) == (y >= 0.5)
    else:  # several sigmoid outputs with binary cross-entropy: multi-label, each output thresholded
        y = (rng.random((40, n_out)) > 0.5).astype(float)
        labels_right = (a >= 0.5) == (y >= 0.5)
        scores = net.evaluate(X, y)
        assert 0 < labels_right.mean() < 1 and "accuracy" not in scores
        assert scores["hamming_accuracy"] == pytest.approx(labels_right.mean())
        assert scores["exact_match"] == pytest.approx(labels_right.all(axis=1).mean())
        return
    assert 0 < right.mean() < 1  # the check means something
    assert net.evaluate(X, y)["accuracy"] == pytest.approx(right.mean())


def test_regression_has_no_accuracy():
    net = fastbp.Network([3, 2], loss="mse", dtype="float64")
    X = np.ones((2, 3))
    assert set(net.evaluate(X, np.zeros((2, 2)))) == {"loss", "rmse", "mae", "r2"}
    assert not net.is_classifier


@pytest.mark.parametrize("loss, output", [("mse", "identity"), ("squared", "identity"),
                                          ("binary_cross_entropy", "sigmoid"), ("cross_entropy", "softmax")])
def test_each_cost_comes_with_its_output(loss, output):
    assert fastbp.Network([3, 4, 2], loss=loss).activations[-1].name == output


@pytest.mark.parametrize("output, loss", [("softmax", "cross_entropy"), ("sigmoid", "binary_cross_entropy"),
                                          ("tanh", "mse"), ("identity", "mse")])
def test_each_output_comes_with_its_cost(output, loss):
    assert fastbp.Network([3, 4, 2], output=output).loss == loss

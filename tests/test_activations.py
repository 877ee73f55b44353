"""Each activation's forward values against its formula (section 3 of the paper), the linear-composition
proof, and the activation specs' argument checks.

The values go through a 1-layer Network [n, n] with W = I and b = 0, so forward(X) = f(X).
"""

import numpy as np
import pytest
from scipy.special import softmax
from scipy.stats import norm

import fastbp
from fastbp import Gaussian, PiecewiseLinear, Sigmoid, Step
from conftest import act_np, identity_layer_net

DTYPES = ["float32", "float64"]
TOL = {"float32": dict(rtol=2e-6, atol=1e-7), "float64": dict(rtol=1e-13, atol=1e-15)}

# Inputs with both signs, zero, small and moderate values: 6 rows of 4 units.
GRID = np.concatenate([np.linspace(-6, 6, 21), [-1e-3, 0.0, 1e-3]]).reshape(6, 4)


def through_identity_layer(output, X, dtype, loss=None):
    net = identity_layer_net(X.shape[1], output, loss=loss, dtype=dtype)
    return net.forward(np.asarray(X, dtype=dtype))


def reference(act, X, dtype):
    """The formula evaluated at the inputs as the network sees them (rounded to its dtype)."""
    return act_np(act, np.asarray(X, dtype=dtype).astype(np.float64))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("beta", [1.0, 0.5, 2.5])
def test_sigmoid(dtype, beta):
    out = through_identity_layer(Sigmoid(beta), GRID, dtype, loss="mse")
    x = np.asarray(GRID, dtype=dtype).astype(np.float64)
    with np.errstate(over="ignore"):
        formula = 1.0 / (1.0 + np.exp(-beta * x))
    np.testing.assert_allclose(out, formula, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_saturates_without_overflow(dtype):
    X = np.array([[1e4, -1e4, 200.0, -200.0]])
    with np.errstate(all="raise"):  # no warnings from the NumPy side of fastbp either
        out = through_identity_layer(Sigmoid(2.0), X, dtype, loss="mse")
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, [[1.0, 0.0, 1.0, 0.0]], rtol=0, atol=1e-30)
    assert np.all((out >= 0) & (out <= 1))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_min, x_max", [(-1.0, 1.0), (-1.0, 3.0), (0.5, 2.0)])
def test_piecewise_linear(dtype, x_min, x_max):
    act = PiecewiseLinear(x_min, x_max)
    m = 1.0 / (x_max - x_min)
    b = -x_min * m
    X = np.concatenate([GRID.ravel(), [x_min, x_max, x_min - 1e-3, x_max + 1e-3]]).reshape(7, 4)
    out = through_identity_layer(act, X, dtype, loss="mse")
    x = np.asarray(X, dtype=dtype).astype(np.float64)
    expected = np.where(x <= x_min, 0.0, np.where(x >= x_max, 1.0, m * x + b))
    np.testing.assert_allclose(out, expected, **TOL[dtype])
    assert np.all(out[x <= x_min] == 0) and np.all(out[x >= x_max] == 1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mu, sigma", [(0.0, 1.0), (0.3, 1.5), (-1.0, 0.25)])
def test_gaussian_is_the_normal_density(dtype, mu, sigma):
    out = through_identity_layer(Gaussian(mu, sigma), GRID, dtype, loss="mse")
    x = np.asarray(GRID, dtype=dtype).astype(np.float64)
    formula = np.exp(-((x - mu) ** 2) / (2 * sigma**2)) / (sigma * np.sqrt(2 * np.pi))
    np.testing.assert_allclose(out, formula, **TOL[dtype])
    np.testing.assert_allclose(out, norm.pdf(x, loc=mu, scale=sigma), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("straight_through", [False, True])
def test_step(dtype, straight_through):
    X = np.array([[-1.0, -1e-7, 0.0, 1e-7], [5.0, -5.0, -0.0, 1e-30]])
    out = through_identity_layer(Step(straight_through), X, dtype, loss="mse")
    np.testing.assert_array_equal(out, [[0, 0, 1, 1], [1, 0, 1, 1]])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["relu", "tanh", "identity"])
def test_relu_tanh_identity(dtype, name):
    out = through_identity_layer(name, GRID, dtype, loss="mse")
    x = np.asarray(GRID, dtype=dtype).astype(np.float64)
    formula = {"relu": np.maximum(x, 0), "tanh": np.tanh(x), "identity": x}[name]
    np.testing.assert_allclose(out, formula, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax(dtype):
    out = through_identity_layer("softmax", GRID, dtype)
    assert out.shape == GRID.shape
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=0, atol=1e-6 if dtype == "float32" else 1e-14)
    np.testing.assert_allclose(out, softmax(np.asarray(GRID, dtype=dtype).astype(np.float64), axis=1),
                               **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_huge_logits(dtype):
    X = np.array([[1e4, 0.0, -1e4], [1e4, 1e4, -1e4], [-1e4, -1e4, -1e4]])
    with np.errstate(all="raise"):
        out = through_identity_layer("softmax", X, dtype)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, [[1, 0, 0], [0.5, 0.5, 0], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-6, atol=1e-30)


def test_every_registered_activation_has_a_reference():
    """The tests above cover every activation fastbp registers."""
    assert set(fastbp.ACTIVATIONS) == {"sigmoid", "piecewise_linear", "gaussian", "step", "relu", "tanh",
                                       "identity", "softmax"}
    for name, cls in fastbp.ACTIVATIONS.items():
        act_np(cls(), np.zeros((1, 2)))


def test_activation_by_name_uses_the_defaults():
    net = fastbp.Network([3, 4, 2], activation="sigmoid", output="identity", loss="mse")
    assert net.activations[0] == Sigmoid(1.0)
    net = fastbp.Network([3, 4, 2], activation="piecewise_linear", output="identity", loss="mse")
    assert net.activations[0] == PiecewiseLinear(-1.0, 1.0)


def test_one_activation_per_hidden_layer():
    net = fastbp.Network([3, 4, 5, 2], activation=["tanh", Gaussian(0.5, 2.0)], output="identity", loss="mse",
                         dtype="float64", seed=1)
    assert [a.name for a in net.activations] == ["tanh", "gaussian", "identity"]
    X = np.random.default_rng(0).standard_normal((4, 3))
    a1 = np.tanh(X @ net.weights(1).T + net.biases(1))
    a2 = act_np(Gaussian(0.5, 2.0), a1 @ net.weights(2).T + net.biases(2))
    np.testing.assert_allclose(net.forward(X), a2 @ net.weights(3).T + net.biases(3), rtol=1e-12)


# --------------------------------------------------------------------------- the paper's proof


@pytest.mark.parametrize("hidden", [[6], [6, 4]])
def test_linear_layers_compose_to_one_linear_function(hidden):
    """Identity hidden and output layers: z2 = W2 (W1 a + b1) + b2 = [W2 W1] a + [W2 b1 + b2]."""
    sizes = [5, *hidden, 3]
    net = fastbp.Network(sizes, activation="identity", output="identity", loss="mse", dtype="float64", seed=4)
    rng = np.random.default_rng(4)
    for l in range(1, len(sizes)):
        net.biases(l)[...] = rng.uniform(-1, 1, sizes[l])  # the init leaves biases at 0
    W, B = np.eye(5), np.zeros(5)
    for l in range(1, len(sizes)):
        W, B = net.weights(l) @ W, net.weights(l) @ B + net.biases(l)
    X = rng.standard_normal((8, 5))
    np.testing.assert_allclose(net.forward(X), X @ W.T + B, rtol=1e-13, atol=1e-14)
    if len(hidden) == 1:  # the paper's two-layer form, written out
        W1, b1, W2, b2 = net.weights(1), net.biases(1), net.weights(2), net.biases(2)
        np.testing.assert_allclose(net.forward(X), (X @ (W2 @ W1).T) + (W2 @ b1 + b2), rtol=1e-13, atol=1e-14)


# --------------------------------------------------------------------------- argument checks


@pytest.mark.parametrize("make, argname", [
    (lambda: PiecewiseLinear(2, 1), "PiecewiseLinear"),
    (lambda: PiecewiseLinear(1, 1), "PiecewiseLinear"),
    (lambda: PiecewiseLinear(0, float("inf")), "PiecewiseLinear(x_max)"),
    (lambda: Sigmoid(beta=0), "Sigmoid(beta)"),
    (lambda: Sigmoid(beta=-1), "Sigmoid(beta)"),
    (lambda: Sigmoid(beta=float("nan")), "Sigmoid(beta)"),
    (lambda: Gaussian(sigma=-1), "Gaussian(sigma)"),
    (lambda: Gaussian(sigma=0), "Gaussian(sigma)"),
    (lambda: Gaussian(mu=float("inf")), "Gaussian(mu)"),
])
def test_bad_activation_parameters(make, argname):
    with pytest.raises(ValueError) as info:
        make()
    assert str(info.value).startswith(argname)


@pytest.mark.parametrize("make", [lambda: Sigmoid(beta="2"), lambda: Step(straight_through=1),
                                  lambda: Gaussian(mu=None)])
def test_activation_parameters_of_the_wrong_type(make):
    with pytest.raises(TypeError):
        make()

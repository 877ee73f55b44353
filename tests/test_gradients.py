"""Backpropagation against finite differences (fastbp.gradcheck) and against NumPy backprop.

Finite differences have an absolute error floor of about 1e-11 here (float64,
h = 1e-5: rounding ε|C|/h and truncation h²|C'''|/6). ``gradcheck`` measures
|g - ĝ| / max(|g|, |ĝ|, 1e-8), so a *correct* gradient component of size 1e-7
reads as a relative error of ~1e-4. To test at 1e-6 we use networks whose every
non-zero gradient component is at least 2e-4 (and, for ReLU, step and piecewise
linear units, whose pre-activations stay 1e-4 away from every kink): weights of
the later layers get a gain for the activations whose slope is at most 1/4
(sigmoid, piecewise, gaussian), so that gradients do not vanish with depth, and
``well_conditioned_case`` walks the seeds 0, 1, 2, ... until both conditions
hold, judged by the NumPy reference (conftest.backprop_np), never by fastbp.
For most cases seed 0 qualifies; the rest need a few more seeds (bounded below).
"""

import itertools

import numpy as np
import pytest

import fastbp
from fastbp._numba import mkl
from fastbp.engine import policy
from fastbp import Gaussian, PiecewiseLinear, Sigmoid, Step
from conftest import backprop_np, fd_input_grad, forward_np, kink_distance, make_targets

GRAD_FLOOR = 2e-4
KINK_MARGIN = 1e-4
MAX_SEED = 60

HIDDEN = {
    "sigmoid": (Sigmoid(), 3.0),
    "sigmoid_beta2.5": (Sigmoid(beta=2.5), 1.5),
    "piecewise_linear": (PiecewiseLinear(-2, 2), 3.0),
    "gaussian": (Gaussian(0.3, 1.5), 6.0),
    "step": (Step(), 1.0),
    "relu": ("relu", 1.0),
    "tanh": ("tanh", 1.0),
    "identity": ("identity", 1.0),
}

# name: (loss, output activation, output width, one-hot targets)
COSTS = {
    "mse+identity": ("mse", "identity", 3, False),
    "squared+tanh": ("squared", "tanh", 3, False),
    "mse+softmax": ("mse", "softmax", 3, False),
    "bce+sigmoid(1 unit)": ("binary_cross_entropy", "sigmoid", 1, False),
    "bce+sigmoid(3 units)": ("binary_cross_entropy", "sigmoid", 3, False),
    "bce+sigmoid(beta=2)": ("binary_cross_entropy", Sigmoid(beta=2), 3, False),
    "cross_entropy+softmax(labels)": ("cross_entropy", "softmax", 3, False),
    "cross_entropy+softmax(one-hot)": ("cross_entropy", "softmax", 3, True),
}

HIDDEN_WIDTHS = {1: [7], 2: [7, 4], 3: [6, 5, 4]}
N_IN, N_SAMPLES = 5, 10


def build_case(activation, gain, loss, output, n_out, one_hot, depth, seed, dtype="float64"):
    sizes = [N_IN, *HIDDEN_WIDTHS[depth], n_out]
    net = fastbp.Network(sizes, activation=activation, output=output, loss=loss, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed)
    for l in range(1, len(sizes)):
        if l >= 2:
            net.weights(l)[...] *= gain
        net.biases(l)[...] = rng.uniform(-0.5, 0.5, sizes[l])
    X = rng.standard_normal((N_SAMPLES, N_IN))
    y = make_targets(loss, N_SAMPLES, n_out, rng, one_hot=one_hot)
    return net, X, y


def well_conditioned_case(*args):
    """The first seed whose network and data are away from kinks and have no vanishingly small gradient."""
    for seed in range(MAX_SEED):
        net, X, y = build_case(*args, seed=seed)
        g = np.abs(backprop_np(net, X, y))
        if kink_distance(net, X) >= KINK_MARGIN and g[g > 0].min() >= GRAD_FLOOR:
            return net, X, y
    raise AssertionError(f"no seed below {MAX_SEED} gives a well-conditioned case for {args}")


CASES = list(itertools.product(HIDDEN, COSTS, HIDDEN_WIDTHS))


@pytest.mark.parametrize("hidden, cost, depth", CASES, ids=[f"{h}-{c}-{d}hidden" for h, c, d in CASES])
def test_gradcheck(hidden, cost, depth):
    act, gain = HIDDEN[hidden]
    net, X, y = well_conditioned_case(act, gain, *COSTS[cost], depth)
    assert fastbp.gradcheck(net, X, y) <= 1e-6
    # and the same gradient as backpropagation written out in NumPy
    _, grad = net.loss_and_grad(X, y)
    np.testing.assert_allclose(grad, backprop_np(net, X, y), rtol=1e-9, atol=1e-12)


def test_piecewise_case_is_mostly_linear():
    """The piecewise-linear gradchecks do exercise the sloped part (not only saturated units)."""
    act, gain = HIDDEN["piecewise_linear"]
    for depth in HIDDEN_WIDTHS:
        net, X, _ = well_conditioned_case(act, gain, *COSTS["mse+identity"], depth)
        z = np.concatenate([z.ravel() for z, _ in forward_np(net, X)[:-1]])
        assert np.mean((z > -2) & (z < 2)) > 0.5


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_exact_step_blocks_every_gradient_below_it(depth):
    net, X, y = well_conditioned_case(Step(), 1.0, "mse", "identity", 3, False, depth)
    _, grad = net.loss_and_grad(X, y)
    L = len(net.sizes) - 1
    last = net.layout.w_off[L - 1]
    assert np.all(grad[:last] == 0.0)  # W1, b1, ..., W_{L-1}, b_{L-1}: exactly zero
    assert np.all(net.layout.biases(grad, L) != 0.0)  # the output layer still learns
    assert np.count_nonzero(net.layout.weights(grad, L)) > 0


@pytest.mark.parametrize("depth", [1, 2])
def test_straight_through_step_passes_the_gradient(depth):
    net, X, y = well_conditioned_case(Step(straight_through=True), 1.0, "mse", "identity", 3, False, depth)
    _, grad = net.loss_and_grad(X, y)
    L = len(net.sizes) - 1
    first_layers = grad[: net.layout.w_off[L - 1]]
    assert np.count_nonzero(first_layers) > first_layers.size // 2
    # exactly the straight-through rule: the step's derivative taken as 1
    np.testing.assert_allclose(grad, backprop_np(net, X, y), rtol=1e-9, atol=1e-12)


INPUT_GRAD_CASES = [
    ("tanh", "cross_entropy+softmax(labels)"),
    ("sigmoid", "bce+sigmoid(1 unit)"),
    ("relu", "mse+identity"),
    ("gaussian", "squared+tanh"),
    ("sigmoid_beta2.5", "mse+softmax"),
    ("piecewise_linear", "bce+sigmoid(beta=2)"),
]


@pytest.mark.parametrize("hidden, cost", INPUT_GRAD_CASES)
def test_input_grad_is_the_per_sample_sensitivity(hidden, cost):
    act, gain = HIDDEN[hidden]
    net, X, y = well_conditioned_case(act, gain, *COSTS[cost], 2)
    dX = net.input_grad(X, y)
    assert dX.shape == X.shape
    np.testing.assert_allclose(dX, fd_input_grad(net, X, y), rtol=1e-6, atol=1e-9)


def test_input_grad_does_not_depend_on_the_other_rows():
    act, gain = HIDDEN["tanh"]
    net, X, y = well_conditioned_case(act, gain, *COSTS["mse+identity"], 2)
    full = net.input_grad(X, y)
    np.testing.assert_allclose(net.input_grad(X[3:4], y[3:4]), full[3:4], rtol=1e-12, atol=1e-15)


def test_gradcheck_checks_a_float32_network_in_float64():
    act, gain = HIDDEN["tanh"]
    net64, X, y = well_conditioned_case(act, gain, *COSTS["cross_entropy+softmax(labels)"], 2)
    net32 = net64.astype("float32")
    assert net32.dtype == np.float32
    assert fastbp.gradcheck(net32, X, y) <= 1e-6
    assert net32.dtype == np.float32  # the network itself is left as it was


def test_gradcheck_sees_a_wrong_gradient(monkeypatch):
    """gradcheck can fail: with the gradient of one parameter corrupted, it reports a large error."""
    act, gain = HIDDEN["tanh"]
    net, X, y = well_conditioned_case(act, gain, *COSTS["mse+identity"], 1)
    original = fastbp.Network.loss_and_grad

    def corrupted(self, X, y, **kwargs):
        loss, g = original(self, X, y, **kwargs)
        g[3] *= 1.01
        return loss, g

    monkeypatch.setattr(fastbp.Network, "loss_and_grad", corrupted)
    assert fastbp.gradcheck(net, X, y) > 1e-3


ENGINE_NAMES = [e for e in policy.ENGINES if e != "mkl" or mkl.available()]
ENGINE_COSTS = ["mse+identity", "bce+sigmoid(3 units)", "cross_entropy+softmax(labels)"]


@pytest.mark.parametrize("engine", ENGINE_NAMES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cost", ENGINE_COSTS)
def test_gradient_on_every_engine(engine, dtype, cost):
    """∇C on each engine, with every product forced onto it (a BLAS takes even the smallest), equals
    NumPy's float64 backprop (to the dtype's rounding), and gradcheck passes; the input sensitivities too."""
    net, X, y = well_conditioned_case("tanh", 1.0, *COSTS[cost], 2)
    net = net.astype(dtype)
    with policy.force_engine(engine, smallest=0):
        _, grad = net.loss_and_grad(X, y)
        dX = net.input_grad(X, y)
        if dtype == "float64":
            assert fastbp.gradcheck(net, X, y) <= 1e-6
    tol = {"rtol": 2e-4, "atol": 2e-6} if dtype == "float32" else {"rtol": 1e-9, "atol": 1e-12}
    np.testing.assert_allclose(grad, backprop_np(net, X, y), **tol)
    np.testing.assert_allclose(dX, fd_input_grad(net.astype("float64"), X, y), rtol=1e-3 if dtype == "float32"
                               else 1e-6, atol=1e-5 if dtype == "float32" else 1e-9)

"""The paper's activation functions (section 3), their derivatives, and two for outputs.

Each activation is a small spec object that validates its arguments and turns
into an integer code plus two floats; the compiled kernels dispatch on the code
once per layer, with the element loop inside each branch. Derivatives are
written in terms of the stored activation a = f(z) where that is possible
(sigmoid, tanh, ReLU, piecewise linear), and of z otherwise (gaussian).
"""

import math

import numpy as np
from numba import njit, types
from numba.extending import overload

from .._numba.views import flat_view
from .parse import parse_spec

__all__ = [
    "Activation",
    "Sigmoid",
    "PiecewiseLinear",
    "Gaussian",
    "Step",
    "ReLU",
    "Tanh",
    "Identity",
    "Softmax",
    "ACTIVATIONS",
    "get_activation",
]

IDENTITY, SIGMOID, PIECEWISE_LINEAR, GAUSSIAN, STEP, RELU, TANH, SOFTMAX = range(8)


def _finite(name, value, positive=False):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or (positive and value <= 0):
        want = "a finite number > 0" if positive else "a finite number"
        raise ValueError(f"{name}: expected {want}, got {value!r}")
    return value


class Activation:
    """Base of the activation specs: a name, an integer code and up to two parameters."""

    name = ""
    code = -1
    output_only = False

    def _params(self):
        return {}

    @property
    def kernel_params(self):
        """The two floats the kernels read (unused ones are 0)."""
        vals = [float(v) for v in self._params().values()]
        return (vals + [0.0, 0.0])[:2]

    def get_config(self):
        return {"name": self.name, **self._params()}

    def __eq__(self, other):
        return type(self) is type(other) and self._params() == other._params()

    def __hash__(self):
        return hash((self.name, tuple(self._params().items())))

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({args})"


class Sigmoid(Activation):
    """Logistic sigmoid with steepness β: f(x) = 1 / (1 + e^(-βx)); f' = β a (1 - a).

    Computed without overflow for any x (the exponential is only ever taken of
    a non-positive number).
    """

    name, code = "sigmoid", SIGMOID

    def __init__(self, beta=1.0):
        self.beta = _finite("Sigmoid(beta)", beta, positive=True)

    def _params(self):
        return {"beta": self.beta}


class PiecewiseLinear(Activation):
    """0 for x ≤ x_min, 1 for x ≥ x_max, and the line m·x + b joining them between.

    m = 1 / (x_max - x_min) and b = -x_min·m. The derivative is m strictly
    inside (x_min, x_max) and 0 outside (0 at the two kinks, by choice).
    """

    name, code = "piecewise_linear", PIECEWISE_LINEAR

    def __init__(self, x_min=-1.0, x_max=1.0):
        self.x_min = _finite("PiecewiseLinear(x_min)", x_min)
        self.x_max = _finite("PiecewiseLinear(x_max)", x_max)
        if not self.x_min < self.x_max:
            raise ValueError(
                f"PiecewiseLinear: expected x_min < x_max, got x_min={self.x_min!r}, x_max={self.x_max!r}"
            )

    def _params(self):
        return {"x_min": self.x_min, "x_max": self.x_max}


class Gaussian(Activation):
    """Normal density: f(x) = e^(-(x-μ)²/(2σ²)) / (σ√(2π)); f' = -(x-μ)/σ² · f(x).

    The paper prints the normaliser as √(2πσ); the density's is σ√(2π)
    (see docs/math.md).
    """

    name, code = "gaussian", GAUSSIAN

    def __init__(self, mu=0.0, sigma=1.0):
        self.mu = _finite("Gaussian(mu)", mu)
        self.sigma = _finite("Gaussian(sigma)", sigma, positive=True)

    def _params(self):
        return {"mu": self.mu, "sigma": self.sigma}


class Step(Activation):
    """Threshold / unit step: 1 if x ≥ 0 else 0.

    Its derivative is 0 almost everywhere, so by default nothing before a step
    layer learns (the exact gradient). ``straight_through=True`` passes the
    gradient through as if the derivative were 1 (the straight-through estimator).
    """

    name, code = "step", STEP

    def __init__(self, straight_through=False):
        if not isinstance(straight_through, (bool, np.bool_)):
            raise TypeError(f"Step(straight_through): expected a bool, got {straight_through!r}")
        self.straight_through = bool(straight_through)

    def _params(self):
        return {"straight_through": self.straight_through}


class ReLU(Activation):
    """max(0, x); derivative 1 for x > 0, else 0."""

    name, code = "relu", RELU


class Tanh(Activation):
    """tanh(x); f' = 1 - a²."""

    name, code = "tanh", TANH


class Identity(Activation):
    """f(x) = x: the linear layer of the paper's proof, and regression outputs."""

    name, code = "identity", IDENTITY


class Softmax(Activation):
    """softmax(z)_j = e^(z_j) / Σ_k e^(z_k), for the output layer only."""

    name, code = "softmax", SOFTMAX
    output_only = True


ACTIVATIONS = {
    cls.name: cls
    for cls in (Sigmoid, PiecewiseLinear, Gaussian, Step, ReLU, Tanh, Identity, Softmax)
}


def get_activation(spec, argname="activation"):
    """An Activation from a spec, a registered name, or a ``get_config`` dict."""
    return parse_spec(spec, Activation, ACTIVATIONS, argname, "fastbp.Sigmoid(beta=2.0)")


# ---------------------------------------------------------------------------
# exp(x) for x ≤ 0, the only arguments softmax and the sigmoid need (after
# shifting by the row max, or taking -|βx|). In float32 it is a Cephes-style
# polynomial with the power of two built from the exponent bits: pure
# arithmetic, so the element loops vectorise (libm's expf is a call per element,
# 4x slower here); within 3 ulp of expf, and it flushes x < -87 to e^-87 ≈ 1.6e-38
# instead of a denormal. float64 keeps libm's exp.


def _exp_nonpos(x):
    return math.exp(x)


@overload(_exp_nonpos)
def _exp_nonpos_impl(x):
    if x == types.float32:
        def impl(x):
            t = max(x, np.float32(-87.0))
            n = np.floor(t * np.float32(1.4426950408889634) + np.float32(0.5))
            r = t - n * np.float32(0.693359375) - n * np.float32(-2.12194440e-4)
            p = np.float32(1.9875691500e-4)
            p = p * r + np.float32(1.3981999507e-3)
            p = p * r + np.float32(8.3334519073e-3)
            p = p * r + np.float32(4.1665795894e-2)
            p = p * r + np.float32(1.6666665459e-1)
            p = p * r + np.float32(5.0000001201e-1)
            y = p * r * r + r + np.float32(1.0)
            return y * np.int32((np.int32(n) + np.int32(127)) << np.int32(23)).view(np.float32)

        return impl
    return lambda x: np.exp(x)


# ---------------------------------------------------------------------------
# Compiled kernels. Z arrives holding W a; the bias is added in the same pass.


@njit(cache=True, error_model="numpy")
def _activate(Z, A, b, code, p0, p1):
    """Z += b (broadcast over rows), A = f(Z), in one pass."""
    n, m = Z.shape
    one = Z.dtype.type(1.0)
    zero = Z.dtype.type(0.0)
    if code == RELU:
        for i in range(n):
            for j in range(m):
                z = Z[i, j] + b[j]
                Z[i, j] = z
                A[i, j] = z if z > zero else zero
    elif code == SIGMOID:
        beta = Z.dtype.type(p0)
        for i in range(n):
            for j in range(m):
                z = Z[i, j] + b[j]
                Z[i, j] = z
                t = beta * z
                e = _exp_nonpos(-abs(t))  # never overflows
                A[i, j] = one / (one + e) if t >= zero else e / (one + e)
    elif code == TANH:
        for i in range(n):
            for j in range(m):
                z = Z[i, j] + b[j]
                Z[i, j] = z
                A[i, j] = np.tanh(z)
    elif code == IDENTITY:
        for i in range(n):
            for j in range(m):
                z = Z[i, j] + b[j]
                Z[i, j] = z
                A[i, j] = z
    elif code == PIECEWISE_LINEAR:
        lo = Z.dtype.type(p0)
        hi = Z.dtype.type(p1)
        slope = one / (hi - lo)
        for i in range(n):
            for j in range(m):
                z = Z[i, j] + b[j]
                Z[i, j] = z
                if z <= lo:
                    A[i, j] = zero
                elif z >= hi:
                    A[i, j] = one
                else:
                    A[i, j] = (z - lo) * slope
    elif code == GAUSSIAN:
        mu = Z.dtype.type(p0)
        sigma = Z.dtype.type(p1)
        c = one / (sigma * Z.dtype.type(math.sqrt(2.0 * math.pi)))
        h = Z.dtype.type(-0.5) / (sigma * sigma)
        for i in range(n):
            for j in range(m):
                z = Z[i, j] + b[j]
                Z[i, j] = z
                d = z - mu
                A[i, j] = c * np.exp(h * d * d)
    elif code == STEP:
        for i in range(n):
            for j in range(m):
                z = Z[i, j] + b[j]
                Z[i, j] = z
                A[i, j] = one if z >= zero else zero
    else:  # SOFTMAX, row-wise, shifted by the row max so exp never overflows
        for i in range(n):
            zmax = Z[i, 0] + b[0]
            for j in range(m):
                z = Z[i, j] + b[j]
                Z[i, j] = z
                if z > zmax:
                    zmax = z
            for j in range(m):
                A[i, j] = Z[i, j] - zmax
        # The exponentials in one loop over the whole (contiguous) block: a row of 10 outputs is
        # shorter than a vector of the loop LLVM makes, which then ran all of it scalar (4x slower).
        flat = flat_view(A)
        for e in range(n * m):
            flat[e] = _exp_nonpos(flat[e])
        for i in range(n):
            s = zero
            for j in range(m):
                s += A[i, j]
            r = one / s
            for j in range(m):
                A[i, j] *= r


@njit(cache=True, error_model="numpy")
def _act_backward(D, Z, A, code, p0, p1):
    """D ← D ⊙ f'(z): turns ∂C/∂a into ∂C/∂z for an element-wise activation."""
    n, m = D.shape
    one = D.dtype.type(1.0)
    zero = D.dtype.type(0.0)
    if code == RELU:
        for i in range(n):
            for j in range(m):
                if A[i, j] <= zero:
                    D[i, j] = zero
    elif code == SIGMOID:
        beta = D.dtype.type(p0)
        for i in range(n):
            for j in range(m):
                a = A[i, j]
                D[i, j] *= beta * a * (one - a)
    elif code == TANH:
        for i in range(n):
            for j in range(m):
                a = A[i, j]
                D[i, j] *= one - a * a
    elif code == IDENTITY:
        pass
    elif code == PIECEWISE_LINEAR:
        slope = one / (D.dtype.type(p1) - D.dtype.type(p0))
        for i in range(n):
            for j in range(m):
                a = A[i, j]
                D[i, j] = D[i, j] * slope if zero < a < one else zero
    elif code == GAUSSIAN:
        mu = D.dtype.type(p0)
        sigma = D.dtype.type(p1)
        r = -one / (sigma * sigma)
        for i in range(n):
            for j in range(m):
                D[i, j] *= r * (Z[i, j] - mu) * A[i, j]
    elif code == STEP:
        if p0 == 0.0:  # exact derivative: zero almost everywhere
            for i in range(n):
                for j in range(m):
                    D[i, j] = zero
    # SOFTMAX is never a hidden layer; its output Jacobian lives in losses.py

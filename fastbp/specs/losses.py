"""The costs of the paper's section 4, and the output delta ∂C/∂z^L that starts backpropagation.

Every cost is averaged over the samples of a batch, C = 1/n Σ_k C_k, as the
paper averages the gradient (section 5); the 1/n is folded into the output
delta so that no later pass has to scale anything.

Per-sample costs C_k:

- ``"mse"``: Σ_j ½ (a_j - y_j)², the paper's MSE cost with its ½;
- ``"squared"``: Σ_j (a_j - y_j)², the paper's simplified C = (a^L - y)²;
- ``"binary_cross_entropy"``: -Σ_j [y_j log a_j + (1 - y_j) log(1 - a_j)] for
  sigmoid outputs, computed from z as softplus(βz) - y·βz, so never inf or NaN;
- ``"cross_entropy"``: -Σ_j y_j log softmax(z)_j, fused with softmax, in log space.
"""

import math

from numba import njit

from .activations import SOFTMAX, _act_backward

__all__ = ["LOSSES", "get_loss", "DEFAULT_OUTPUT"]

MSE, SQUARED, BINARY_CROSS_ENTROPY, CROSS_ENTROPY = range(4)

LOSSES = {
    "mse": MSE,
    "squared": SQUARED,
    "binary_cross_entropy": BINARY_CROSS_ENTROPY,
    "cross_entropy": CROSS_ENTROPY,
}

# The output activation each cost is paired with when the user names only the cost.
DEFAULT_OUTPUT = {
    "mse": "identity",
    "squared": "identity",
    "binary_cross_entropy": "sigmoid",
    "cross_entropy": "softmax",
}

# What accuracy means for the output: none, argmax of a row, or one unit thresholded at 0.5.
ACC_NONE, ACC_ARGMAX, ACC_THRESHOLD = range(3)


def get_loss(name, argname="loss"):
    """The cost's integer code from its name."""
    if not isinstance(name, str):
        raise TypeError(f"{argname}: expected a cost name {sorted(LOSSES)}, got {name!r}")
    if name not in LOSSES:
        raise ValueError(f"{argname}: unknown cost {name!r}; expected one of {sorted(LOSSES)}")
    return LOSSES[name]


@njit(cache=True, error_model="numpy")
def _argmax_row(A, i):
    """Index of the largest entry of row i (the first of ties), without a data-dependent branch:
    on unpredictable rows a mispredicted jump per entry cost more than the comparisons."""
    best = A[i, 0]
    k = 0
    for j in range(1, A.shape[1]):
        a = A[i, j]
        better = a > best
        k = j if better else k
        best = a if better else best
    return k


@njit(cache=True, error_model="numpy")
def _row_weight(w, i):
    """Row i's sample weight, 1 without weights (an empty ``w``): multiplying by exactly 1.0 keeps the
    unweighted results bitwise."""
    return w[i] if w.shape[0] > 0 else 1.0


@njit(cache=True, error_model="numpy")
def _count_correct(A, Y, acc_mode, w):
    """The weight (the count, without weights) of the rows of A that match their target row of Y
    (argmax, or a ≥ ½ for one unit); float64."""
    correct = 0.0
    if acc_mode == ACC_ARGMAX:
        for i in range(A.shape[0]):
            correct += _row_weight(w, i) * (_argmax_row(A, i) == _argmax_row(Y, i))
    elif acc_mode == ACC_THRESHOLD:
        for i in range(A.shape[0]):
            correct += _row_weight(w, i) * ((A[i, 0] >= 0.5) == (Y[i, 0] >= 0.5))
    return correct


@njit(cache=True, error_model="numpy")
def _output_delta(Z, A, Y, D, loss_code, act_code, p0, p1, scale, acc_mode, w):
    """D = scale · ∂(Σ_k w_k C_k)/∂z^L for target rows Y (row i is sample i's, of weight w_i; an empty
    ``w``: all 1); returns Σ_k w_k C_k (float64) and the weight of the rows classified right (see
    ``_count_correct``).

    ``scale`` is 1/Σw for the batch's weighted mean, or 1 for per-sample sensitivities.
    """
    n, m = Z.shape
    total = 0.0
    if loss_code == CROSS_ENTROPY:  # softmax output: ∂C_k/∂z = a Σy - y
        correct = 0.0
        for i in range(n):
            wi = _row_weight(w, i)
            s = D.dtype.type(wi * scale)
            # log Σ_j e^(z_j) = z_k - log a_k for any k; the largest a_k (≥ 1/m) keeps the log exact,
            # and reuses the forward pass's exponentials instead of taking m more. It is also the
            # predicted class.
            k = _argmax_row(A, i)
            if acc_mode == ACC_ARGMAX:
                correct += wi * (k == _argmax_row(Y, i))
            sy = D.dtype.type(0.0)
            yz = 0.0
            for j in range(m):
                y = Y[i, j]
                sy += y
                yz += float(y) * float(Z[i, j])
            # Σ_j y_j (lse - z_j) as lse Σy - Σ y z: one product per entry, and the log off the loop's chain
            total += wi * ((float(Z[i, k]) - math.log(float(A[i, k]))) * float(sy) - yz)
            for j in range(m):
                D[i, j] = (A[i, j] * sy - Y[i, j]) * s
        if acc_mode != ACC_ARGMAX:
            correct = _count_correct(A, Y, acc_mode, w)
        return total, correct
    if loss_code == BINARY_CROSS_ENTROPY:  # sigmoid output: ∂C_k/∂z = β(a - y)
        beta = D.dtype.type(p0)
        for i in range(n):
            wi = _row_weight(w, i)
            s = D.dtype.type(wi * scale)
            for j in range(m):
                t = p0 * float(Z[i, j])
                y = float(Y[i, j])
                # softplus(t) - y t, with softplus(t) = max(t, 0) + log1p(e^-|t|)
                total += wi * (max(t, 0.0) + math.log1p(math.exp(-abs(t))) - y * t)
                D[i, j] = beta * (A[i, j] - Y[i, j]) * s
    else:  # MSE or SQUARED: ∂C_k/∂a = c (a - y), then through the output activation
        c = 1.0 if loss_code == MSE else 2.0
        h = 0.5 * c
        for i in range(n):
            wi = _row_weight(w, i)
            cs = D.dtype.type(c) * D.dtype.type(wi * scale)
            for j in range(m):
                d = A[i, j] - Y[i, j]
                total += wi * (h * float(d) * float(d))
                D[i, j] = cs * d
        if act_code == SOFTMAX:  # full Jacobian: a ⊙ (g - Σ_j a_j g_j)
            for i in range(n):
                dot = D.dtype.type(0.0)
                for j in range(m):
                    dot += A[i, j] * D[i, j]
                for j in range(m):
                    D[i, j] = A[i, j] * (D[i, j] - dot)
        else:
            _act_backward(D, Z, A, act_code, p0, p1)
    return total, _count_correct(A, Y, acc_mode, w)

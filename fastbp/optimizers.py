"""Update rules over the flat parameter and gradient vectors.

Plain gradient descent is the paper's: θ ← θ - η ∇C. Every rule is one fused
loop over all parameters, so its cost is one pass over the vector whatever the
number of layers.
"""

from numba import njit


@njit(cache=True)
def _sgd_step(params, grad, lr):
    """θ ← θ - lr · ∇C, in place."""
    eta = params.dtype.type(lr)
    for i in range(params.shape[0]):
        params[i] -= eta * grad[i]

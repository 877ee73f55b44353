"""Central finite differences against the reverse-mode gradient."""

import numpy as np

from .common import checks

__all__ = ["gradcheck"]


def gradcheck(net, X, y, eps=1e-5, max_params=None, seed=0, sample_weight=None, l2=0.0):
    """The largest relative error between ``net.loss_and_grad`` and central differences.

    Both are computed on a float64 copy of ``net``, so a float32 network is
    checked at float64 precision. For each parameter θ_i the numerical slope is
    (C(θ + h e_i) - C(θ - h e_i)) / 2h with h = ``eps`` · max(1, |θ_i|), and the
    relative error is |g_i - ĝ_i| over a denominator given below; the maximum over the
    checked parameters is returned. Central differences in float64 carry an
    absolute error of about 1e-11, so a component smaller than 0.1% of the
    gradient's largest is compared with that 0.1% instead of with itself: the
    denominator is max(|g_i|, |ĝ_i|, 1e-3 · max_j |g_j|, 1e-12).

    Parameters
    ----------
    net : Network
    X, y : array-like
        The data the cost is taken over (its mean over the rows, weighted by ``sample_weight``).
    eps : float, default 1e-5
    max_params : int, optional
        Check only this many parameters, drawn at random with ``seed`` (all by default).
    seed : int, default 0
    sample_weight : array-like, optional
        One weight per row (see ``Network.loss_and_grad``).
    l2 : float, default 0
        The L2 penalty included in the cost (see ``Network.loss_and_grad``).

    Returns
    -------
    float
    """
    eps = checks.check_positive_float(eps, "eps")
    twin = net.astype("float64")
    X, Y = twin.check_data(X, y)
    _, analytic = twin.loss_and_grad(X, Y, sample_weight=sample_weight, l2=l2)
    n = twin.n_params
    if max_params is None or max_params >= n:
        which = np.arange(n)
    else:
        max_params = checks.check_int(max_params, "max_params", minimum=1)
        which = np.sort(np.random.default_rng(seed).choice(n, size=max_params, replace=False))
    theta = twin.params

    def cost():
        if l2:  # the penalised cost; evaluate's is the data's alone (and costs no gradient)
            return twin.loss_and_grad(X, Y, sample_weight=sample_weight, l2=l2)[0]
        return twin.evaluate(X, Y, sample_weight=sample_weight)["loss"]

    floor = max(1e-3 * float(np.max(np.abs(analytic))), 1e-12)
    worst = 0.0
    for i in which:
        keep = theta[i]
        h = eps * max(1.0, abs(keep))
        theta[i] = keep + h
        up = cost()
        theta[i] = keep - h
        down = cost()
        theta[i] = keep
        numeric = (up - down) / (2 * h)
        err = abs(analytic[i] - numeric) / max(abs(analytic[i]), abs(numeric), floor)
        worst = max(worst, err)
    return float(worst)

"""fastbp against a straightforward NumPy implementation of the same training.

``numpy_epoch`` below is the textbook vectorised backpropagation: per batch,
one matrix product per layer forward (Z = A Wᵀ + b), ReLU, a stable softmax,
the cross-entropy delta (P - onehot) / rows, and per layer backward
∂W = δᵀ A, ∂b = Σ δ, δ ← (δ W) ⊙ [Z > 0], then plain SGD in place. Same
network, same initial weights (copied from the fastbp network), same dtype,
same batches (rows in order: both sides run with ``shuffle=False``), same lr.
NumPy's products go to its BLAS, with its default threads.
"""

import time

import numpy as np

from .common import CONFIGS, DTYPES, LR, make_data, make_network, warm_up_fit


def numpy_epoch(Ws, bs, X, y, batch_size, lr):
    """One epoch of mini-batch SGD over the rows of X in order; updates Ws, bs in place; returns the summed cost."""
    n = X.shape[0]
    L = len(Ws)
    loss = 0.0
    for start in range(0, n, batch_size):
        xb = X[start : start + batch_size]
        yb = y[start : start + batch_size]
        rows = xb.shape[0]
        r = np.arange(rows)
        A = [xb]
        Z = []
        for l in range(L):
            z = A[l] @ Ws[l].T
            z += bs[l]
            Z.append(z)
            if l < L - 1:
                A.append(np.maximum(z, 0))
            else:
                e = np.exp(z - z.max(axis=1, keepdims=True))
                A.append(e / e.sum(axis=1, keepdims=True))
        P = A[L]
        loss += float(-np.log(P[r, yb]).sum())
        d = P.copy()
        d[r, yb] -= 1
        d /= rows
        for l in range(L - 1, -1, -1):
            gW = d.T @ A[l]
            gb = d.sum(axis=0)
            if l > 0:
                d = (d @ Ws[l]) * (Z[l - 1] > 0)
            Ws[l] -= lr * gW
            bs[l] -= lr * gb
    return loss


class SpeedupVsNumpy:
    """NumPy epoch time / fastbp epoch time (best of 3 epochs each), for the tiny and mnist configurations.

    Above 1: fastbp is faster. Sample counts as in common.py (tiny: 8000, mnist: 12800).
    """

    params = (["tiny", "mnist"], DTYPES)
    param_names = ["config", "dtype"]
    timeout = 300
    unit = "ratio"

    def setup(self, config, dtype):
        c = CONFIGS[config]
        self.batch_size = c.batch_size
        self.X, self.y = make_data(c.layers, c.bench_samples, dtype)
        self.net = make_network(c.layers, dtype)
        L = len(c.layers) - 1
        self.Ws = [self.net.weights(l).copy() for l in range(1, L + 1)]
        self.bs = [self.net.biases(l).copy() for l in range(1, L + 1)]
        warm_up_fit(self.net, self.X, self.y, c.batch_size)
        numpy_epoch(self.Ws, self.bs, self.X[: 2 * c.batch_size], self.y[: 2 * c.batch_size], c.batch_size, LR)

    def track_speedup_vs_numpy(self, config, dtype):
        # fastbp's epochs first, then NumPy's: not interleaved, so that neither
        # runs while the other's thread pool (Numba's, OpenBLAS's) is still spinning.
        t_fastbp = min(self._time(self._fastbp_epoch) for _ in range(3))
        t_numpy = min(self._time(self._numpy_epoch) for _ in range(3))
        return t_numpy / t_fastbp

    @staticmethod
    def _time(fn):
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    def _fastbp_epoch(self):
        self.net.fit(self.X, self.y, epochs=1, batch_size=self.batch_size, lr=LR, shuffle=False, verbose=0)

    def _numpy_epoch(self):
        numpy_epoch(self.Ws, self.bs, self.X, self.y, self.batch_size, LR)

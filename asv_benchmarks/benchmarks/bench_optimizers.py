"""The optimizers' update rules, through the public API: ``Network.fit`` steps on a network of about 2**20
parameters (one layer, 1024 -> 1024), one row per batch, so that each step's cost is mostly the update over the
whole parameter vector (with its moment buffers) rather than the products of one row."""

import numpy as np

from .common import make_data, make_network, warm_up_fit

LAYERS = [1024, 1024]  # 1,049,600 parameters
STEPS = 32  # rows of the epoch, one batch each
OPTIMIZERS = ["sgd", "sgd-momentum", "adam", "adamw", "rmsprop"]


def _make_optimizer(name):
    import fastbp

    return {
        "sgd": lambda: fastbp.SGD(lr=0.01),
        "sgd-momentum": lambda: fastbp.SGD(lr=0.01, momentum=0.9),
        "adam": lambda: fastbp.Adam(),
        "adamw": lambda: fastbp.AdamW(),
        "rmsprop": lambda: fastbp.RMSprop(),
    }[name]()


class OptimizerSteps:
    """One epoch of ``net.fit(X, y, epochs=1, batch_size=1, optimizer=...)`` on STEPS rows: STEPS updates of every
    parameter (plain SGD's is folded into the weight-gradient product where BLAS takes it)."""

    params = (OPTIMIZERS, ["float32", "float64"])
    param_names = ["optimizer", "dtype"]
    timeout = 120

    def setup(self, optimizer, dtype):
        self.opt = _make_optimizer(optimizer)
        self.X, self.y = make_data(LAYERS, STEPS, dtype)
        self.net = make_network(LAYERS, dtype)
        # Compile (or load from Numba's cache) outside the timing; the first steps also fill the moment buffers.
        warm_up_fit(self.net, self.X, self.y, 1, optimizer=self.opt)
        self.net.fit(self.X[:2], self.y[:2], epochs=1, batch_size=1, optimizer=self.opt, verbose=0)

    def time_optimizer_steps(self, optimizer, dtype):
        self.net.fit(self.X, self.y, epochs=1, batch_size=1, optimizer=self.opt, verbose=0)

    def track_steps_per_second(self, optimizer, dtype):
        """Updates per second of wall time around ``fit``: the best of 3 epochs."""
        import time

        best = np.inf
        for _ in range(3):
            t0 = time.perf_counter()
            self.net.fit(self.X, self.y, epochs=1, batch_size=1, optimizer=self.opt, verbose=0)
            best = min(best, time.perf_counter() - t0)
        return STEPS / best

    track_steps_per_second.unit = "steps/s"

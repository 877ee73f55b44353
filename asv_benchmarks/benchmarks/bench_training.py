"""Training throughput: one epoch of ``Network.fit`` (SGD, lr 0.01), compile excluded.

See common.py for the configurations and the reduced sample counts.
"""

import time

import numpy as np

from .common import CONFIG_NAMES, CONFIGS, DTYPES, LR, make_data, make_network, warm_up_fit


class Epoch:
    """One epoch of mini-batch SGD: ``net.fit(X, y, epochs=1, batch_size=B, lr=0.01)``."""

    params = (CONFIG_NAMES, DTYPES)
    param_names = ["config", "dtype"]
    timeout = 300

    def setup(self, config, dtype):
        c = CONFIGS[config]
        self.batch_size = c.batch_size
        self.X, self.y = make_data(c.layers, c.bench_samples, dtype)
        self.net = make_network(c.layers, dtype)
        warm_up_fit(self.net, self.X, self.y, c.batch_size)

    def _epoch(self):
        self.net.fit(self.X, self.y, epochs=1, batch_size=self.batch_size, lr=LR, verbose=0)

    def time_epoch(self, config, dtype):
        self._epoch()

    def track_samples_per_second(self, config, dtype):
        """Rows trained per second of wall time around ``fit``: the best of 3 epochs."""
        best = np.inf
        for _ in range(3):
            t0 = time.perf_counter()
            self._epoch()
            best = min(best, time.perf_counter() - t0)
        return self.X.shape[0] / best

    track_samples_per_second.unit = "samples/s"


class EpochOptimizer:
    """One epoch of the mnist configuration (batch 128) with each optimizer in the fused epoch kernel."""

    params = (["sgd", "sgd-momentum", "adam", "adamw", "rmsprop"],)
    param_names = ["optimizer"]
    timeout = 300

    def setup(self, optimizer):
        import fastbp

        self.opt = {
            "sgd": lambda: fastbp.SGD(lr=LR),
            "sgd-momentum": lambda: fastbp.SGD(lr=LR, momentum=0.9),
            "adam": lambda: fastbp.Adam(),
            "adamw": lambda: fastbp.AdamW(),
            "rmsprop": lambda: fastbp.RMSprop(lr=1e-3),
        }[optimizer]()
        c = CONFIGS["mnist"]
        self.batch_size = c.batch_size
        self.X, self.y = make_data(c.layers, c.bench_samples, "float32")
        self.net = make_network(c.layers, "float32")
        warm_up_fit(self.net, self.X, self.y, c.batch_size, optimizer=self.opt)

    def time_epoch_optimizer(self, optimizer):
        self.net.fit(self.X, self.y, epochs=1, batch_size=self.batch_size, optimizer=self.opt, verbose=0)


class PeakMemFit:
    """Peak resident memory of a process that trains one full mnist epoch (60000 rows, batch 128).

    asv reports the process's peak RSS, so this includes the interpreter,
    NumPy/Numba and the training data itself (60000 x 784: 188 MB in float32,
    376 MB in float64).
    """

    params = (DTYPES,)
    param_names = ["dtype"]
    timeout = 300

    def setup(self, dtype):
        c = CONFIGS["mnist"]
        self.batch_size = c.batch_size
        self.X, self.y = make_data(c.layers, c.full_samples, dtype)
        self.net = make_network(c.layers, dtype)
        warm_up_fit(self.net, self.X, self.y, c.batch_size)

    def peakmem_fit(self, dtype):
        self.net.fit(self.X, self.y, epochs=1, batch_size=self.batch_size, lr=LR, verbose=0)

"""The compiled update rule alone: ``fastbp.optimizers._update`` over 2**20 parameters."""

import numpy as np

N_PARAMS = 1 << 20  # 1,048,576
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


class OptimizerUpdate:
    """One step ``_update(params, grad, state, code, hyper, lr, step, clip=0)`` in place (step > 1, no clipping)."""

    params = (OPTIMIZERS, ["float32", "float64"])
    param_names = ["optimizer", "dtype"]
    timeout = 120

    def setup(self, optimizer, dtype):
        try:
            from fastbp.optimizers import _update
        except ImportError:
            raise NotImplementedError("fastbp.optimizers._update is not in this version")
        self.update = _update
        opt = _make_optimizer(optimizer)
        rng = np.random.default_rng(0)
        self.params_ = rng.standard_normal(N_PARAMS).astype(dtype)
        self.grad = (1e-3 * rng.standard_normal(N_PARAMS)).astype(dtype)
        self.state = np.zeros((opt.n_slots, N_PARAMS), dtype=dtype)
        self.code = opt.code
        self.hyper = opt.hyper_vector()
        self.lr = opt.lr
        # Compile (or load from Numba's cache) outside the timing; step 1 also fills the momentum buffers.
        self.update(self.params_, self.grad, self.state, self.code, self.hyper, self.lr, 1, 0.0)

    def time_optimizer_update(self, optimizer, dtype):
        self.update(self.params_, self.grad, self.state, self.code, self.hyper, self.lr, 10, 0.0)

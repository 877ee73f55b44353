"""One batch through the compiled passes, and whole-dataset inference; compile excluded."""

from .common import CONFIG_NAMES, CONFIGS, DTYPES, make_data, make_network


class Batch:
    """One batch (``batch_size`` rows of each configuration) through forward / cost+gradient / input gradient."""

    params = (CONFIG_NAMES, DTYPES)
    param_names = ["config", "dtype"]
    timeout = 120

    def setup(self, config, dtype):
        c = CONFIGS[config]
        self.X, self.y = make_data(c.layers, c.batch_size, dtype)
        self.net = make_network(c.layers, dtype)
        # Compile (or load from Numba's cache) outside the timing.
        self.net.forward(self.X)
        self.net.loss_and_grad(self.X, self.y)
        self.net.input_grad(self.X, self.y)

    def time_forward(self, config, dtype):
        self.net.forward(self.X)

    def time_loss_and_grad(self, config, dtype):
        self.net.loss_and_grad(self.X, self.y)

    def time_input_grad(self, config, dtype):
        self.net.input_grad(self.X, self.y)


class Inference:
    """``predict`` and ``evaluate`` over 10000 rows (the MNIST test-set size) of the mnist network."""

    params = (DTYPES,)
    param_names = ["dtype"]
    timeout = 120

    def setup(self, dtype):
        layers = CONFIGS["mnist"].layers
        self.X, self.y = make_data(layers, 10000, dtype)
        self.net = make_network(layers, dtype)
        self.net.predict(self.X[:10])
        self.net.evaluate(self.X[:10], self.y[:10])

    def time_predict(self, dtype):
        self.net.predict(self.X)

    def time_evaluate(self, dtype):
        self.net.evaluate(self.X, self.y)


class NetworkInit:
    """``Network(...)`` construction: validation, layout and Glorot initialisation of the flat parameters."""

    params = (CONFIG_NAMES,)
    param_names = ["config"]

    def setup(self, config):
        make_network(CONFIGS["tiny"].layers, "float32")

    def time_network_init(self, config):
        make_network(CONFIGS[config].layers, "float32")

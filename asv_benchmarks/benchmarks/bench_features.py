"""The cost of training features inside the fused epoch: one epoch of the mnist configuration
(784-256-128-10, batch 128, float32, SGD lr 0.01) plain, with sample weights, with dropout 0.2 on
both hidden layers, and with an L2 penalty. Targets: sample weights ≤ 3% over plain,
dropout ≤ 10%; compare ``time_epoch_feature`` across the parameter."""

import numpy as np

from .common import CONFIGS, LR, make_data, make_network, warm_up_fit

FEATURES = ["plain", "sample-weight", "dropout-0.2", "l2"]


class EpochFeature:
    params = (FEATURES,)
    param_names = ["feature"]
    timeout = 300

    def setup(self, feature):
        c = CONFIGS["mnist"]
        self.batch_size = c.batch_size
        self.X, self.y = make_data(c.layers, c.bench_samples, "float32")
        self.net = make_network(c.layers, "float32", dropout=0.2 if feature == "dropout-0.2" else 0.0)
        self.kwargs = {}
        if feature == "sample-weight":
            self.kwargs["sample_weight"] = np.random.default_rng(1).uniform(0.5, 1.5, self.X.shape[0])
        if feature == "l2":
            self.kwargs["l2"] = 1e-4
        warm_up_fit(self.net, self.X, self.y, c.batch_size, **dict(self.kwargs))

    def time_epoch_feature(self, feature):
        self.net.fit(self.X, self.y, epochs=1, batch_size=self.batch_size, lr=LR, verbose=0, **self.kwargs)

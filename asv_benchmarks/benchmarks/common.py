"""Shared configurations and data for the fastbp benchmarks.

The one definition of the four configurations and their random data: the asv
suite imports it as ``benchmarks.common``, scripts/bench.py and
scripts/profile_epoch.py load it by path (scripts/benchlib/configs.py), so a
change here changes all three.

Every network is ReLU hidden layers + softmax/cross-entropy output, trained by
plain SGD (lr 0.01) on random data: X ~ N(0, 1) in the network's dtype, integer
labels drawn uniformly from the output classes, seeds fixed.

Sample counts. ``CONFIGS[name].full_samples`` is the dataset size the
configuration stands for; ``bench_samples`` is the number of rows an "epoch"
benchmark actually trains on, cut down for the slow configurations so that a
``--quick`` run stays short. Layer widths and batch sizes are never changed,
and an epoch is a whole number of full batches, so per-batch work is exactly
that of the full epoch: multiply a ``time_epoch`` result by
``full_samples / bench_samples`` for a full-epoch estimate (the shuffle is the
only per-epoch cost that does not scale, and it is negligible).
``track_samples_per_second`` does not depend on the count.
"""

from collections import namedtuple

import numpy as np

Config = namedtuple("Config", "layers batch_size full_samples bench_samples")

CONFIGS = {
    # 250 batches of 32: the whole dataset.
    "tiny": Config([64, 32, 10], 32, 8000, 8000),
    # 100 batches of 128 (full epoch: 60000 rows, 469 batches).
    "mnist": Config([784, 256, 128, 10], 128, 60000, 12800),
    # 400 batches of 32 (full epoch: 60000 rows, 1875 batches).
    "mnist-b32": Config([784, 256, 128, 10], 32, 60000, 12800),
    # 8 batches of 256 (full epoch: 16384 rows, 64 batches).
    "wide": Config([784, 2048, 2048, 10], 256, 16384, 2048),
}
CONFIG_NAMES = list(CONFIGS)
DTYPES = ["float32", "float64"]
LR = 0.01


def make_data(layers, n, dtype, seed=0):
    """X ~ N(0, 1) of shape (n, layers[0]) in ``dtype``, y uniform integer labels in [0, layers[-1])."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, layers[0]), dtype=np.dtype(dtype).type)
    y = rng.integers(0, layers[-1], n)
    return X, y


def make_network(layers, dtype, seed=0, **network_kwargs):
    """The benchmarks' network: ReLU hidden layers, softmax and cross-entropy; ``network_kwargs`` such as
    dropout go to ``fastbp.Network``."""
    import fastbp

    return fastbp.Network(layers, activation="relu", output="softmax", loss="cross_entropy", dtype=dtype,
                          seed=seed, **network_kwargs)


def warm_up_fit(net, X, y, batch_size, optimizer=None, **fit_kwargs):
    """Compile (or load from Numba's cache) the epoch kernel for this dtype, outside any timing.

    Two batches through ``fit`` with the same argument types as the timed call
    (``fit_kwargs`` such as sample_weight, cut to those rows); the parameters are
    put back afterwards so every benchmark starts from the same initial weights.
    """
    saved = net.params.copy()
    rows = min(X.shape[0], 2 * batch_size)
    if "sample_weight" in fit_kwargs:
        fit_kwargs["sample_weight"] = fit_kwargs["sample_weight"][:rows]
    if optimizer is None:
        net.fit(X[:rows], y[:rows], epochs=1, batch_size=batch_size, lr=LR, verbose=0, **fit_kwargs)
    else:
        net.fit(X[:rows], y[:rows], epochs=1, batch_size=batch_size, optimizer=optimizer, verbose=0, **fit_kwargs)
    net.params = saved

"""What several test files share: NumPy references of the forward pass, the activations, the costs and
backprop; a transcription of PyTorch's plateau rule; tiny MNIST-style directories; the command line run
in-process; fixtures, among them ``parallel`` (training on one thread, in a team, in a crew).

The references are written from the definitions (the paper's section 3 and 4, and the docstrings of
fastbp), independently of fastbp's kernels, and work in float64 whatever the network's dtype.
"""

import contextlib
import gzip
import math
import os
import re
import signal
import struct
import tempfile

import numba
import numpy as np
import pytest
from scipy.special import expit, log_softmax, softmax

import fastbp
import fastbp.datasets
from fastbp.data import train_test_split
from fastbp.engine import policy

# The suite tests the built-in engine rule (tests that force an engine say so): no calibration of this machine,
# no FASTBP_ENGINE from the environment. Child processes inherit both.
os.environ["FASTBP_CACHE_DIR"] = tempfile.mkdtemp(prefix="fastbp-test-cache-")
os.environ.pop("FASTBP_ENGINE", None)
# Nor teams (fastbp/engine/team.py) nor crews (fastbp/engine/crew.py): they would compile a second epoch kernel
# for many of the suite's networks. tests/test_parallel.py turns them on and checks them against training on one
# thread, and the ``parallel`` fixture below runs the main fit tests of tests/test_training.py with them on.
os.environ[policy.TEAMS_ENV] = "0"
os.environ[policy.CREW_ENV] = "0"
# A fit takes as many threads as Numba has, whatever else runs on the machine meanwhile (policy.fit_threads would
# give a fit on a busy machine one thread, and OpenBLAS's sums differ in their last bits between one thread and
# two): the suite's results do not depend on its load. tests/test_threads.py tests that choice with this unset.
os.environ[policy.THREADS_ENV] = str(numba.config.NUMBA_NUM_THREADS)
# Ctrl-C is Python's KeyboardInterrupt in the suite even where it was started with SIGINT ignored (a background
# job of a non-interactive shell): the interrupt tests send it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# --------------------------------------------------------------------------- activations


def act_np(act, z):
    """a = f(z) for an Activation spec, from its textbook formula (float64)."""
    z = np.asarray(z, dtype=np.float64)
    name = act.name
    if name == "sigmoid":
        return expit(act.beta * z)  # = 1 / (1 + exp(-beta z)), without overflow warnings
    if name == "piecewise_linear":
        m = 1.0 / (act.x_max - act.x_min)
        b = -act.x_min * m
        return np.where(z <= act.x_min, 0.0, np.where(z >= act.x_max, 1.0, m * z + b))
    if name == "gaussian":
        return np.exp(-((z - act.mu) ** 2) / (2 * act.sigma**2)) / (act.sigma * np.sqrt(2 * np.pi))
    if name == "step":
        return (z >= 0).astype(np.float64)
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "tanh":
        return np.tanh(z)
    if name == "identity":
        return z.copy()
    if name == "softmax":
        return softmax(z, axis=1)
    raise AssertionError(f"no reference for {name}")


def dact_np(act, z, a):
    """f'(z) for an element-wise activation (step: 0, or 1 with the straight-through estimator)."""
    name = act.name
    if name == "sigmoid":
        return act.beta * a * (1 - a)
    if name == "piecewise_linear":
        return ((z > act.x_min) & (z < act.x_max)) / (act.x_max - act.x_min)
    if name == "gaussian":
        return -(z - act.mu) / act.sigma**2 * a
    if name == "step":
        return np.full_like(z, 1.0 if act.straight_through else 0.0)
    if name == "relu":
        return (z > 0).astype(np.float64)
    if name == "tanh":
        return 1 - a * a
    if name == "identity":
        return np.ones_like(z)
    raise AssertionError(f"no derivative for {name}")


def kinks(act):
    """The points where the activation is not differentiable (finite differences must avoid them)."""
    return {"relu": [0.0], "step": [0.0], "piecewise_linear": [getattr(act, "x_min", 0), getattr(act, "x_max", 0)]}.get(
        act.name, []
    )


# --------------------------------------------------------------------------- the network in NumPy


def params_np(net):
    """[(W1, b1), ..., (WL, bL)] as float64 copies, read straight from the flat vector by the documented layout."""
    out, off = [], 0
    p = np.asarray(net.params, dtype=np.float64)
    for n_in, n_out in zip(net.sizes[:-1], net.sizes[1:]):
        W = p[off : off + n_out * n_in].reshape(n_out, n_in)  # row-major (n_l, n_{l-1})
        off += n_out * n_in
        b = p[off : off + n_out]
        off += n_out
        out.append((W, b))
    assert off == p.size
    return out


def forward_np(net, X):
    """[(z^1, a^1), ..., (z^L, a^L)]: z^l = W^l a^{l-1} + b^l, a^l = f_l(z^l), one row per sample."""
    a = np.asarray(X, dtype=np.float64)
    layers = []
    for (W, b), act in zip(params_np(net), net.activations):
        z = a @ W.T + b
        a = act_np(act, z)
        layers.append((z, a))
    return layers


def targets_matrix(net, y):
    """y as the dense (n, n_L) float64 target rows the cost compares with."""
    y = np.asarray(y)
    m = net.sizes[-1]
    if net.loss == "cross_entropy" and y.ndim == 1:
        Y = np.zeros((y.shape[0], m))
        Y[np.arange(y.shape[0]), y.astype(int)] = 1
        return Y
    return np.asarray(y, dtype=np.float64).reshape(y.shape[0], m)


def per_sample_cost_np(net, X, y):
    """C_k for every sample, from the cost's formula (section 4 of the paper; fastbp.specs.losses docstring)."""
    layers = forward_np(net, X)
    z, a = layers[-1]
    Y = targets_matrix(net, y)
    if net.loss == "mse":
        return np.sum(0.5 * (a - Y) ** 2, axis=1)
    if net.loss == "squared":
        return np.sum((a - Y) ** 2, axis=1)
    if net.loss == "binary_cross_entropy":
        t = net.activations[-1].beta * z
        # -[y log a + (1-y) log(1-a)] with log a = -softplus(-t), log(1-a) = -softplus(t): exact for any t
        return np.sum(Y * np.logaddexp(0, -t) + (1 - Y) * np.logaddexp(0, t), axis=1)
    if net.loss == "cross_entropy":
        return -np.sum(Y * log_softmax(z, axis=1), axis=1)
    raise AssertionError(net.loss)


def backprop_np(net, X, y):
    """∇C of the mean cost, in the flat W1, b1, ..., WL, bL layout, by textbook backpropagation in NumPy."""
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    Y = targets_matrix(net, y)
    layers = forward_np(net, X)
    z, a = layers[-1]
    out = net.activations[-1]
    if net.loss == "cross_entropy":
        delta = a * Y.sum(axis=1, keepdims=True) - Y
    elif net.loss == "binary_cross_entropy":
        delta = out.beta * (a - Y)
    else:
        g = (1.0 if net.loss == "mse" else 2.0) * (a - Y)
        if out.name == "softmax":
            delta = a * (g - np.sum(a * g, axis=1, keepdims=True))
        else:
            delta = g * dact_np(out, z, a)
    delta = delta / n
    grads = []
    Wb = params_np(net)
    for l in range(len(Wb) - 1, -1, -1):
        a_prev = X if l == 0 else layers[l - 1][1]
        grads.append((delta.T @ a_prev, delta.sum(axis=0)))
        if l > 0:
            zp, ap = layers[l - 1]
            delta = (delta @ Wb[l][0]) * dact_np(net.activations[l - 1], zp, ap)
    return np.concatenate([np.concatenate([gW.ravel(), gb]) for gW, gb in reversed(grads)])


def kink_distance(net, X):
    """The smallest |z - kink| over every unit of every layer and sample (inf if no layer has a kink)."""
    best = np.inf
    for (z, _), act in zip(forward_np(net, X), net.activations):
        for k in kinks(act):
            best = min(best, float(np.min(np.abs(z - k))))
    return best


# --------------------------------------------------------------------------- data and networks


def make_targets(loss, n, n_out, rng, one_hot=False):
    """Random targets of the form each cost takes: labels / one-hot rows, 0..1 values, or reals."""
    if loss == "cross_entropy":
        labels = rng.integers(0, n_out, n)
        labels[: min(n, n_out)] = np.arange(min(n, n_out))  # every class present
        if not one_hot:
            return labels
        Y = np.zeros((n, n_out))
        Y[np.arange(n), labels] = 1
        return Y
    if loss == "binary_cross_entropy":
        return rng.integers(0, 2, (n, n_out)).astype(np.float64)
    return rng.standard_normal((n, n_out))


def identity_layer_net(n, output, loss=None, dtype="float64"):
    """A 1-layer Network [n, n] with W = I and b = 0, so that forward(X) = f(X) element by element."""
    net = fastbp.Network([n, n], output=output, loss=loss, dtype=dtype)
    net.weights(1)[...] = np.eye(n)
    net.biases(1)[...] = 0
    return net


def fd_input_grad(net, X, y, h=1e-6):
    """∂C_k/∂a^0_{kj} by central differences of each sample's own cost (the mean over its one row)."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    out = np.zeros_like(X)
    for k in range(X.shape[0]):
        for j in range(X.shape[1]):
            up, down = X[k : k + 1].copy(), X[k : k + 1].copy()
            up[0, j] += h
            down[0, j] -= h
            c_up = net.evaluate(up, y[k : k + 1])["loss"]
            c_down = net.evaluate(down, y[k : k + 1])["loss"]
            out[k, j] = (c_up - c_down) / (2 * h)
    return out


def assert_raises_naming(exc_type, argname, fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` raises ``exc_type`` whose message starts by naming ``argname`` ("argname: ...")."""
    with pytest.raises(exc_type) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert re.match(rf"{re.escape(argname)}(\[\d+\])?: ", msg), f"message does not name {argname!r}: {msg!r}"
    return msg


def openblas_threads():
    """The thread counts of the OpenBLAS libraries loaded in this process (threadpoolctl), as a set."""
    import threadpoolctl

    return {lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["internal_api"] == "openblas"}


def fit_on_threads(build, X, y, threads=(1, 2), **fit_kwargs):
    """The parameters of ``build()`` after ``fit(X, y, **fit_kwargs)`` with numba on each thread count."""
    import numba

    params = []
    before = numba.get_num_threads()
    try:
        for t in threads:
            numba.set_num_threads(t)
            net = build()
            net.fit(X, y, verbose=0, **fit_kwargs)
            params.append(net.params.copy())
    finally:
        numba.set_num_threads(before)
    return params


def assert_trains_as_alone(net, hist, alone, alone_hist):
    """``net`` trained as ``alone`` was, within rounding (float64): parameters, optimizer state, the per-epoch
    cost and accuracy, the update count (a team's or crew's training against one thread's)."""
    np.testing.assert_allclose(net.params, alone.params, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(net.state.slots, alone.state.slots, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(hist["loss"], alone_hist["loss"], rtol=1e-10)
    np.testing.assert_allclose(hist["accuracy"], alone_hist["accuracy"])
    assert net.state.step == alone.state.step


# --------------------------------------------------------------------------- the plateau rule, as PyTorch has it


def plateau_rates(values, lr, mode="min", factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel", cooldown=0,
                  min_lr=0.0, eps=1e-8):
    """The rate of each epoch (the first at ``lr``, then one after each of ``values``) when the epochs log
    ``values``, by the rule of PyTorch's ``torch.optim.lr_scheduler.ReduceLROnPlateau``, transcribed from its
    source (torch/optim/lr_scheduler.py, PyTorch 2.x: ``step``, ``_is_better``, ``_reduce_lr``, ``in_cooldown``),
    one parameter group. tests/test_plateau.py checks the transcription against torch where it is installed."""
    best = math.inf if mode == "min" else -math.inf  # mode_worse
    num_bad_epochs = cooldown_counter = 0
    rates = [lr]
    for current in values:
        current = float(current)
        if mode == "min" and threshold_mode == "rel":
            better = current < best * (1.0 - threshold)
        elif mode == "min":
            better = current < best - threshold
        elif threshold_mode == "rel":
            better = current > best * (threshold + 1.0)
        else:
            better = current > best + threshold
        if better:
            best, num_bad_epochs = current, 0
        else:
            num_bad_epochs += 1
        if cooldown_counter > 0:  # in cooldown: bad epochs are not counted
            cooldown_counter -= 1
            num_bad_epochs = 0
        if num_bad_epochs > patience:
            new_lr = max(lr * factor, min_lr)
            if lr - new_lr > eps:  # smaller changes are not made
                lr = new_lr
            cooldown_counter, num_bad_epochs = cooldown, 0
        rates.append(lr)
    return rates


# --------------------------------------------------------------------------- data files


def write_idx(path, arr, code=0x08):
    """``arr`` as an IDX file (big-endian header: type ``code``, its dimensions), gzipped if ``path`` ends .gz."""
    raw = bytes([0, 0, code, arr.ndim]) + b"".join(struct.pack(">I", s) for s in arr.shape) + arr.tobytes()
    if str(path).endswith(".gz"):
        with gzip.open(path, "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)


def make_mnist_dir(folder, naming="dash", gz=True, n=40, n_test=12, side=6, rng=None):
    """A tiny MNIST-style directory: uint8 images (n, side, side) and labels 0..9, train and t10k files named
    with dashes (train-images-idx3-ubyte) or dots (train-images.idx3-ubyte); returns {split: (images, labels)}."""
    rng = np.random.default_rng(5) if rng is None else rng
    folder.mkdir(parents=True, exist_ok=True)
    stem = {"dash": "{}-{}-idx{}-ubyte", "dot": "{}-{}.idx{}-ubyte"}[naming]
    suffix = ".gz" if gz else ""
    data = {}
    for split, count in (("train", n), ("t10k", n_test)):
        imgs = rng.integers(0, 256, (count, side, side), dtype=np.uint8)
        labs = rng.integers(0, 10, count).astype(np.uint8)
        write_idx(folder / (stem.format(split, "images", 3) + suffix), imgs)
        write_idx(folder / (stem.format(split, "labels", 1) + suffix), labs)
        data[split] = (imgs, labs)
    return data


# --------------------------------------------------------------------------- the command line, in-process


def cli_fails(capsys, *argv, names=()):
    """Run ``fastbp *argv`` in this process (``fastbp.cli.main``, whose output is what a user sees): exit 2 and
    one line ``fastbp: error: ...`` naming each of ``names``, no traceback. Returns the line."""
    from fastbp import cli

    code = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("fastbp: error: "), err
    assert "Traceback" not in err
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    return lines[0]


# --------------------------------------------------------------------------- fixtures


class Parallel:
    """Trains a network with teams and crews on, as fit does for a user on two cores or more (the suite turns
    them off), and again with them off; ``path`` is "team" or "crew", ``layers`` and ``batch_size`` a network
    and batch that take it (see ``policy.team_pays`` and ``policy.crew_pays``)."""

    def __init__(self, path, monkeypatch):
        self.path, self.monkeypatch = path, monkeypatch
        if path == "team":
            # 64 x 64 x 64: 262,144 multiply-adds in the largest product, past TEAM_FROM and below SERIAL_MACS
            self.layers, self.batch_size = [64, 64, 10], 64
        else:
            # 128 x 64 x 1024: CREW_FROM's 8.4 M multiply-adds; 1024 hidden units, room for 16 threads' parts
            self.layers, self.batch_size = [64, 1024, 10], 128
        # A crew takes a BLAS engine: where this machine's rule keeps the network in the compiled loops (an AVX2
        # host without a calibration), both runs force MKL, the crew's own products.
        from fastbp.engine.products import Blas, Mkl

        mm = policy.engine_for(self.layers, self.batch_size, fastbp.Layout(self.layers).n_params)
        self.force_mkl = path == "crew" and not isinstance(mm, (Blas, Mkl))
        self.choices = []
        real = policy.choose

        def spy(*args, **kwargs):
            choice = real(*args, **kwargs)
            self.choices.append(choice.parallel)
            return choice

        monkeypatch.setattr(policy, "choose", spy)

    def train(self, build, X, y, expect=None, **fit_kwargs):
        """``(net, history, alone, alone_history)``: ``build()`` fit on (X, y) with ``fit_kwargs`` with the
        parallel paths on, having taken ``expect`` (default this fixture's path), then a second ``build()`` with
        them off, having trained alone."""
        expect = self.path if expect is None else expect
        runs = []
        for on in (True, False):
            for env in (policy.TEAMS_ENV, policy.CREW_ENV):
                if on:
                    self.monkeypatch.delenv(env, raising=False)
                else:
                    self.monkeypatch.setenv(env, "0")
            del self.choices[:]
            net = build()
            with policy.force_engine("mkl") if self.force_mkl else contextlib.nullcontext():
                hist = net.fit(X, y, verbose=0, batch_size=self.batch_size, **fit_kwargs)
            assert self.choices and set(self.choices) == {expect if on else policy.ALONE}, (on, self.choices)
            runs += [net, hist]
        return tuple(runs)


@pytest.fixture(params=["team", "crew"])
def parallel(request, monkeypatch):
    """A Parallel for each path a user on two cores or more gets: a team (two threads share each batch of a small
    network) and a crew (each thread owns a part of every layer of a large one). Skipped where this machine
    cannot take the path at all: one thread, Numba's workqueue layer, no atomics; for a crew, no MKL."""
    import numba

    from fastbp._numba import atomic, mkl

    if numba.get_num_threads() < 2:
        pytest.skip("Numba has one thread here: fit never takes a team or a crew")
    if not policy._layer_ok() or not atomic.AVAILABLE:
        pytest.skip("Numba's threading layer here takes no parallel region from two threads at once")
    if request.param == "crew" and not mkl.available():
        pytest.skip('a crew needs MKL (pip install "fastbp[mkl]")')
    return Parallel(request.param, monkeypatch)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A trained model file (a [4, 5, 3] classifier, Adam, two epochs) and its arrays: ``(path, {name: array})``."""
    path = tmp_path_factory.mktemp("model") / "model.npz"
    rng = np.random.default_rng(11)
    net = fastbp.Network([4, 5, 3], seed=0)
    X = rng.standard_normal((30, 4))
    net.fit(X, rng.integers(0, 3, 30), epochs=2, optimizer="adam", verbose=0)
    net.save(path)
    with np.load(path) as z:
        arrays = dict(z)
    return path, arrays


@pytest.fixture(scope="session")
def digits_split():
    """The bundled digits, split 80/20 with seed 0: (X_train, X_test, y_train, y_test)."""
    X, y = fastbp.datasets.digits()
    return train_test_split(X, y, test_size=0.2, seed=0)


@pytest.fixture
def rng():
    """A fresh seeded generator per test, so each test sees the same numbers however it is selected."""
    return np.random.default_rng(1234)

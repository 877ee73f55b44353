"""Training: learning, float32 against float64, determinism, the NaN guard, and the paths of two cores or more.

XOR and the bundled digits are learned; the main fits run again in a team and in a crew (the ``parallel`` fixture),
as fit chooses them on two cores or more, and train as one thread does."""

import re

import numpy as np
import pytest

import fastbp
from conftest import assert_trains_as_alone

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
XOR_Y = np.array([0, 1, 1, 0], dtype=np.float64)


@pytest.fixture(scope="module")
def small_data():
    rng = np.random.default_rng(21)
    X = rng.standard_normal((96, 6))
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(np.int64) + (X[:, 3] > 1)  # 3 classes
    return X, y


# --------------------------------------------------------------------------- learning


def test_xor_is_learned():
    net = fastbp.Network([2, 4, 1], activation="sigmoid", output="sigmoid", loss="mse", seed=0)
    start = net.evaluate(XOR_X, XOR_Y)["loss"]
    hist = net.fit(XOR_X, XOR_Y, epochs=3000, batch_size=4, lr=5.0, verbose=0)
    out = net.forward(XOR_X)[:, 0]
    assert np.all((out >= 0.5) == (XOR_Y == 1)), out
    np.testing.assert_array_equal(net.predict(XOR_X), [0, 1, 1, 0])
    assert net.evaluate(XOR_X, XOR_Y)["accuracy"] == 1.0
    assert hist["loss"][-1] < 0.01 < start
    assert len(hist) == 3000 and net.epochs_trained == 3000


def test_xor_cannot_be_learned_without_a_hidden_nonlinearity():
    """The paper's point: identity hidden layers collapse to one linear map, which cannot separate XOR."""
    net = fastbp.Network([2, 4, 1], activation="identity", output="sigmoid", loss="mse", seed=0)
    net.fit(XOR_X, XOR_Y, epochs=3000, batch_size=4, lr=5.0, verbose=0)
    assert net.evaluate(XOR_X, XOR_Y)["accuracy"] <= 0.75


def test_digits_reach_95_percent(digits_split):
    X_train, X_test, y_train, y_test = digits_split
    net = fastbp.Network([64, 64, 10], activation="relu")
    before = net.evaluate(X_test, y_test)["accuracy"]
    hist = net.fit(X_train, y_train, lr=0.1, batch_size=32, epochs=30, verbose=0)
    acc = net.evaluate(X_test, y_test)["accuracy"]
    assert acc >= 0.95 > before
    assert hist["loss"][-1] < hist["loss"][0]
    assert np.mean(net.predict(X_test) == y_test) == pytest.approx(acc)


def test_each_step_is_plain_gradient_descent(small_data):
    """One full-batch epoch with lr is θ - lr ∇C (the paper's update), with ∇C from loss_and_grad."""
    X, y = small_data
    net = fastbp.Network([6, 5, 3], activation="tanh", dtype="float64", seed=1)
    theta = net.params.copy()
    _, grad = net.loss_and_grad(X, y)
    net.fit(X, y, epochs=1, batch_size=len(X), lr=0.3, verbose=0)
    np.testing.assert_allclose(net.params, theta - 0.3 * grad, rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------------------- float32 against float64


def test_float32_and_float64_start_from_the_same_params():
    n32 = fastbp.Network([6, 9, 5, 3], activation="tanh", dtype="float32", seed=8)
    n64 = fastbp.Network([6, 9, 5, 3], activation="tanh", dtype="float64", seed=8)
    assert n32.params.dtype == np.float32 and n64.params.dtype == np.float64
    np.testing.assert_array_equal(n32.params, n64.params.astype(np.float32))
    assert np.any(n64.params != n64.params.astype(np.float32))  # the float64 draws are not float32 numbers


@pytest.mark.parametrize("activation, loss", [("tanh", "cross_entropy"), ("sigmoid", "binary_cross_entropy"),
                                              ("relu", "mse")])
def test_float32_forward_and_gradient_agree_with_float64(small_data, activation, loss):
    X, y = small_data
    if loss != "cross_entropy":
        y = np.eye(3)[y]
    n32 = fastbp.Network([6, 8, 3], activation=activation, loss=loss, dtype="float32", seed=2)
    n64 = fastbp.Network([6, 8, 3], activation=activation, loss=loss, dtype="float64", seed=2)
    np.testing.assert_allclose(n32.forward(X), n64.forward(X), rtol=1e-5, atol=1e-6)
    l32, g32 = n32.loss_and_grad(X, y)
    l64, g64 = n64.loss_and_grad(X, y)
    np.testing.assert_allclose(l32, l64, rtol=1e-5)
    np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-6)


def test_float32_and_float64_train_alike(small_data):
    X, y = small_data
    n32 = fastbp.Network([6, 8, 3], activation="tanh", dtype="float32", seed=2)
    n64 = fastbp.Network([6, 8, 3], activation="tanh", dtype="float64", seed=2)
    h32 = n32.fit(X, y, epochs=5, batch_size=16, lr=0.1, verbose=0)
    h64 = n64.fit(X, y, epochs=5, batch_size=16, lr=0.1, verbose=0)
    assert not np.array_equal(n64.params, fastbp.Network([6, 8, 3], activation="tanh", dtype="float64",
                                                          seed=2).params)  # it did move
    np.testing.assert_allclose(n32.params, n64.params, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(h32["loss"], h64["loss"], rtol=1e-4)


# --------------------------------------------------------------------------- determinism


def _fitted(X, y, seed, **kw):
    net = fastbp.Network([6, 8, 3], activation="relu", seed=seed)
    net.fit(X, y, epochs=4, batch_size=10, lr=0.1, verbose=0, **kw)
    return net


def test_same_seed_same_params_bitwise(small_data):
    X, y = small_data
    a, b = _fitted(X, y, seed=5), _fitted(X, y, seed=5)
    assert np.array_equal(a.params, b.params)


def test_different_seeds_differ(small_data):
    X, y = small_data
    a, b = _fitted(X, y, seed=5), _fitted(X, y, seed=6)
    assert not np.array_equal(a.params, b.params)
    # the shuffling alone depends on the seed too: same initial params, different order
    c = fastbp.Network([6, 8, 3], activation="relu", seed=5)
    d = fastbp.Network([6, 8, 3], activation="relu", seed=6)
    d.params = c.params
    c.fit(X, y, epochs=2, batch_size=10, lr=0.1, verbose=0)
    d.fit(X, y, epochs=2, batch_size=10, lr=0.1, verbose=0)
    assert not np.array_equal(c.params, d.params)


def test_no_shuffle_is_deterministic_and_uses_the_row_order(small_data):
    X, y = small_data
    a = _fitted(X, y, seed=5, shuffle=False)
    b = _fitted(X, y, seed=5, shuffle=False)
    assert np.array_equal(a.params, b.params)
    c = fastbp.Network([6, 8, 3], activation="relu", seed=77)  # another seed: only the init differs ...
    c.params = fastbp.Network([6, 8, 3], activation="relu", seed=5).params
    c.fit(X, y, epochs=4, batch_size=10, lr=0.1, verbose=0, shuffle=False)
    assert np.array_equal(a.params, c.params)  # ... and without shuffling the seed no longer matters
    assert not np.array_equal(a.params, _fitted(X, y, seed=5).params)


def test_two_fits_continue_like_one(small_data):
    X, y = small_data
    a = _fitted(X, y, seed=5)
    b = fastbp.Network([6, 8, 3], activation="relu", seed=5)
    b.fit(X, y, epochs=1, batch_size=10, lr=0.1, verbose=0)
    b.fit(X, y, epochs=3, batch_size=10, lr=0.1, verbose=0)
    assert np.array_equal(a.params, b.params)


# --------------------------------------------------------------------------- NaN guard


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_absurd_lr_raises_and_restores_the_last_good_epoch(small_data, dtype):
    X, _ = small_data
    y = np.random.default_rng(0).standard_normal((len(X), 2))
    net = fastbp.Network([6, 8, 2], activation="identity", output="identity", loss="mse", dtype=dtype, seed=0)
    net.fit(X, y, epochs=2, batch_size=8, lr=0.01, verbose=0)
    before = net.params.copy()
    with pytest.raises(FloatingPointError) as info:
        net.fit(X, y, epochs=5, batch_size=8, lr=1e30, verbose=0)
    msg = str(info.value)
    assert re.search(r"\bepoch 3\b", msg), msg  # the first epoch of the second fit
    batch = re.search(r"\bbatch (\d+)\b", msg)
    assert batch and 1 <= int(batch.group(1)) < len(X) // 8, msg  # a later batch: batch 0's update blew up
    assert np.array_equal(net.params, before)
    assert net.epochs_trained == 2
    assert np.isfinite(net.evaluate(X, y)["loss"])


def test_nan_guard_in_the_first_epoch_restores_the_initial_params(small_data):
    X, _ = small_data
    y = np.random.default_rng(0).standard_normal((len(X), 2))
    net = fastbp.Network([6, 8, 2], activation="identity", output="identity", loss="mse", seed=0)
    initial = net.params.copy()
    with pytest.raises(FloatingPointError, match=r"epoch 1\b.*batch \d+"):
        net.fit(X, y, epochs=3, batch_size=8, lr=1e30, verbose=0)
    assert np.array_equal(net.params, initial) and net.epochs_trained == 0


def test_an_epoch_run_in_chunks_for_the_progress_bar_is_the_same_training(monkeypatch):
    """With a bar shown, long epochs run in chunks of batches (reported in between): the parameters,
    optimizer state and per-step schedule are bitwise those of one call per epoch."""
    from fastbp.training import single

    rng = np.random.default_rng(5)
    Xa = rng.standard_normal((300, 8)).astype(np.float32)
    ya = rng.integers(0, 3, 300)
    sched = fastbp.CosineLR(per="step")
    seen = []
    nets = []
    for chunked in (False, True):
        net = fastbp.Network([8, 6, 3], seed=1)
        if chunked:
            monkeypatch.setattr(single, "CHUNK_SECONDS", 1e-9)  # a chunk of one batch after each report
            monkeypatch.setattr(single.Progress, "shows_batches", property(lambda self: True))
            monkeypatch.setattr(single.Progress, "batches", lambda self, e, done, total: seen.append((e, done)))
        net.fit(Xa, ya, epochs=2, batch_size=32, optimizer=fastbp.Adam(lr=0.01), schedule=sched, verbose=0)
        nets.append(net)
    np.testing.assert_array_equal(nets[0].params, nets[1].params)
    np.testing.assert_array_equal(nets[0].state.slots, nets[1].state.slots)
    assert nets[0].history["lr"] == nets[1].history["lr"]
    np.testing.assert_allclose(nets[0].history["loss"], nets[1].history["loss"], rtol=1e-12)
    assert seen == [(e, d) for e in (1, 2) for d in range(1, 11)]  # 10 batches per epoch, each reported


# --------------------------------------------------------------------------- in a team and in a crew
# The suite trains alone (conftest.py turns teams and crews off); a user on two cores or more gets a team or a
# crew for networks that pay for one. The main fits again on each path (the ``parallel`` fixture), against the
# same fit alone: the same training within rounding (float64), epoch for epoch.


def _parallel_data(parallel, n=320, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, parallel.layers[0]))
    y = (X[:, :4] @ rng.standard_normal((4, parallel.layers[-1]))).argmax(axis=1)
    return X, y


def _parallel_net(parallel):
    return lambda: fastbp.Network(parallel.layers, activation="tanh", dtype="float64", seed=0)


def test_a_plain_fit_trains_as_alone(parallel):
    """fit's defaults (plain SGD): a team trains as one thread does. Plain SGD never takes a crew (its steps are
    folded into BLAS's products): with crews on it trains alone, as with them off."""
    X, y = _parallel_data(parallel)
    expect = "alone" if parallel.path == "crew" else None
    net, hist, alone, alone_hist = parallel.train(_parallel_net(parallel), X, y, expect=expect, epochs=3, lr=0.05)
    assert_trains_as_alone(net, hist, alone, alone_hist)
    assert not np.array_equal(net.params, _parallel_net(parallel)().params)


def test_validation_and_early_stopping_train_as_alone(parallel):
    """A validation split scored after each epoch and the stopping rule on it, the best epoch restored."""
    X, y = _parallel_data(parallel, 400)
    stop = dict(monitor="val_loss", patience=1, min_delta=0.02, restore_best=True)
    net, hist, alone, alone_hist = parallel.train(_parallel_net(parallel), X, y, epochs=40, validation_split=0.25,
                                                  optimizer="adam", lr=0.01, early_stopping=stop)
    assert 2 < len(alone_hist) < 40, "expected the rule to stop training"
    assert hist.epoch == alone_hist.epoch
    np.testing.assert_allclose(hist["val_loss"], alone_hist["val_loss"], rtol=1e-10)
    np.testing.assert_allclose(hist["val_accuracy"], alone_hist["val_accuracy"])
    assert_trains_as_alone(net, hist, alone, alone_hist)


def test_sample_weights_train_as_alone(parallel):
    X, y = _parallel_data(parallel)
    sw = np.random.default_rng(1).uniform(0.0, 2.0, len(X))
    sw[:40] = 0.0  # rows of weight 0 among them
    net, hist, alone, alone_hist = parallel.train(_parallel_net(parallel), X, y, epochs=3, sample_weight=sw,
                                                  optimizer=fastbp.SGD(lr=0.05, momentum=0.9))
    assert_trains_as_alone(net, hist, alone, alone_hist)


def test_adam_trains_as_alone(parallel):
    X, y = _parallel_data(parallel)
    net, hist, alone, alone_hist = parallel.train(_parallel_net(parallel), X, y, epochs=3,
                                                  optimizer=fastbp.Adam(lr=1e-3), l2=1e-3)
    assert_trains_as_alone(net, hist, alone, alone_hist)

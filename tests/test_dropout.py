"""Dropout: the masks' rate and scaling, the training step against a NumPy reference that applies the
same masks, bitwise reproducibility (dropout 0, resume across save/load, thread count), and no dropout
outside fit."""

import numpy as np
import pytest

import fastbp
from conftest import act_np, assert_raises_naming, dact_np, fit_on_threads, params_np
from fastbp.engine.kernels import dropout_mask


def test_masks_have_the_rate_and_the_inverted_scale():
    p = 0.3
    M = dropout_mask(12345, 0, 0, 1, 400, 250, p)
    assert set(np.unique(M)) == {0.0, 1.0 / (1.0 - p)}
    n = M.size
    dropped = np.count_nonzero(M == 0)
    assert abs(dropped - p * n) < 4 * np.sqrt(n * p * (1 - p))
    assert abs(M.mean() - 1.0) < 0.02  # inverted dropout keeps the expected activation
    # every unit, row, layer, batch, epoch and key gets its own draws
    assert 0.25 < (M[:, 0] == 0).mean() < 0.35 and 0.25 < (M[0] == 0).mean() < 0.35
    others = [dropout_mask(12345, 0, 0, 2, 400, 250, p), dropout_mask(12345, 0, 1, 1, 400, 250, p),
              dropout_mask(12345, 1, 0, 1, 400, 250, p), dropout_mask(12346, 0, 0, 1, 400, 250, p)]
    for other in others:
        agree = ((M == 0) == (other == 0)).mean()
        assert abs(agree - (p * p + (1 - p) * (1 - p))) < 0.01  # independent draws
    assert np.array_equal(M, dropout_mask(12345, 0, 0, 1, 400, 250, p))
    assert not dropout_mask(1, 0, 0, 0, 50, 50, 0.0).__eq__(0).any()


def _masked_step(net, X, Y, masks, lr):
    """θ - lr ∇C for mean cross-entropy of a softmax network whose layer inputs are multiplied by ``masks``
    (one per layer, None: no dropout), by backprop in NumPy (float64)."""
    Wb = params_np(net)
    inputs, layers = [], []
    a = X
    for l, ((W, b), act) in enumerate(zip(Wb, net.activations)):
        if masks[l] is not None:
            a = a * masks[l]
        inputs.append(a)
        z = a @ W.T + b
        a = act_np(act, z)
        layers.append((z, a))
    delta = (layers[-1][1] - Y) / X.shape[0]
    grads = []
    for l in range(len(Wb) - 1, -1, -1):
        grads.append((delta.T @ inputs[l], delta.sum(axis=0)))
        if l > 0:
            back = delta @ Wb[l][0]
            if masks[l] is not None:
                back = back * masks[l]
            zp, ap = layers[l - 1]
            delta = back * dact_np(net.activations[l - 1], zp, ap)
    flat = np.concatenate([np.concatenate([gW.ravel(), gb]) for gW, gb in reversed(grads)])
    return np.asarray(net.params, np.float64) - lr * flat


def test_training_steps_are_backprop_through_the_masks():
    """Two epochs of two batches each: every update is plain descent on the cost of the network whose
    layer inputs are multiplied by the masks of that (epoch, batch, layer)."""
    rates = [0.2, 0.5, 0.25]  # input, hidden 1, hidden 2
    net = fastbp.Network([6, 9, 7, 3], activation="tanh", dtype="float64", seed=3, dropout=rates[1:],
                         input_dropout=rates[0])
    rng = np.random.default_rng(0)
    X = rng.standard_normal((10, 6))
    y = rng.integers(0, 3, 10)
    Y = np.eye(3)[y]
    key = net.state.dropout_key
    want = net.params.copy()
    lr = 0.1
    ref = fastbp.Network.from_config({**net.get_config(), "dropout": 0.0, "input_dropout": 0.0})
    for epoch in range(2):
        for batch, rows in enumerate((slice(0, 6), slice(6, 10))):
            n = rows.stop - rows.start
            masks = [dropout_mask(key, epoch, batch, l, n, w, p) for l, (w, p) in enumerate(zip(net.sizes, rates))]
            ref.params = want
            want = _masked_step(ref, X[rows], Y[rows], masks, lr)
    net.fit(X, y, epochs=2, batch_size=6, lr=lr, shuffle=False, verbose=0)
    np.testing.assert_allclose(net.params, want, rtol=1e-12, atol=1e-14)


def test_dropout_zero_is_bitwise_no_dropout():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((50, 5)).astype(np.float32)
    y = rng.integers(0, 3, 50)
    nets = [fastbp.Network([5, 8, 6, 3]), fastbp.Network([5, 8, 6, 3], dropout=0.0, input_dropout=0.0),
            fastbp.Network([5, 8, 6, 3], dropout=[0.0, 0.0])]
    for net in nets:
        net.fit(X, y, epochs=2, batch_size=8, optimizer="adam", verbose=0)
    assert np.array_equal(nets[0].params, nets[1].params) and np.array_equal(nets[0].params, nets[2].params)
    with_dropout = fastbp.Network([5, 8, 6, 3], dropout=[0.0, 0.5])
    with_dropout.fit(X, y, epochs=2, batch_size=8, optimizer="adam", verbose=0)
    assert not np.array_equal(nets[0].params, with_dropout.params)


def test_no_dropout_outside_fit():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((30, 5))
    y = rng.integers(0, 3, 30)
    net = fastbp.Network([5, 8, 6, 3], dropout=0.5, input_dropout=0.3, dtype="float64")
    net.fit(X, y, epochs=1, batch_size=8, verbose=0)
    plain = fastbp.Network.from_config({**net.get_config(), "dropout": 0.0, "input_dropout": 0.0})
    plain.params = net.params
    assert np.array_equal(net.forward(X), plain.forward(X))
    assert np.array_equal(net.predict(X), plain.predict(X))
    assert net.evaluate(X, y) == plain.evaluate(X, y)
    la, ga = net.loss_and_grad(X, y)
    lb, gb = plain.loss_and_grad(X, y)
    assert la == lb and np.array_equal(ga, gb)
    assert np.array_equal(net.input_grad(X, y), plain.input_grad(X, y))
    # and the validation pass of fit does not drop either
    h = net.fit(X, y, epochs=1, batch_size=8, validation_data=(X, y), verbose=0)
    assert h["val_loss"][0] == pytest.approx(net.evaluate(X, y)["loss"], rel=1e-12)


def test_resume_across_save_and_load_is_bitwise(tmp_path):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((60, 5)).astype(np.float32)
    y = rng.integers(0, 3, 60)
    whole = fastbp.Network([5, 8, 6, 3], dropout=[0.3, 0.1], input_dropout=0.2, seed=7)
    whole.fit(X, y, epochs=4, batch_size=16, optimizer="adam", verbose=0)
    half = fastbp.Network([5, 8, 6, 3], dropout=[0.3, 0.1], input_dropout=0.2, seed=7)
    half.fit(X, y, epochs=2, batch_size=16, optimizer="adam", verbose=0)
    half.save(tmp_path / "m.npz")
    loaded = fastbp.load(tmp_path / "m.npz")
    assert loaded.dropout == [0.3, 0.1] and loaded.input_dropout == 0.2
    assert loaded.get_config() == whole.get_config()
    loaded.fit(X, y, epochs=2, batch_size=16, optimizer="adam", verbose=0)
    assert np.array_equal(loaded.params, whole.params)


def test_thread_count_does_not_change_training():
    """On a network that takes the parallel engine (as in test_engines.py's thread test), with dropout."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((300, 200)).astype(np.float32)
    y = rng.integers(0, 10, 300)
    params = fit_on_threads(lambda: fastbp.Network([200, 256, 64, 10], seed=0, dropout=0.2, input_dropout=0.1), X, y,
                            epochs=2, batch_size=100, lr=0.05)
    np.testing.assert_array_equal(params[0], params[1])


def test_sweep_population_with_dropout_is_fit():
    from fastbp.training import train_population

    rng = np.random.default_rng(6)
    X = rng.standard_normal((40, 5)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    configs = [{"dropout": 0.4}, {"dropout": [0.0, 0.3], "input_dropout": 0.1}, {}]
    fitted = []
    for c in configs:
        net = fastbp.Network([5, 8, 6, 3], seed=2, **c)
        net.fit(X, y, epochs=2, batch_size=8, verbose=0)
        fitted.append(net.params.copy())
    nets = [fastbp.Network([5, 8, 6, 3], seed=2, **c) for c in configs]
    Xc, Y = nets[0].check_data(X, y)
    sgd = fastbp.SGD(lr=0.1)
    train_population(nets, Xc, Y, 2, 8, [sgd] * 3, [fastbp.Constant()] * 3, [None] * 3)
    for net, want in zip(nets, fitted):
        assert np.array_equal(net.params, want)


def test_bad_dropout():
    assert_raises_naming(ValueError, "dropout", fastbp.Network, [3, 4, 2], dropout=1.0)
    assert_raises_naming(ValueError, "dropout", fastbp.Network, [3, 4, 2], dropout=-0.1)
    assert_raises_naming(TypeError, "dropout", fastbp.Network, [3, 4, 2], dropout="half")
    assert_raises_naming(ValueError, "dropout", fastbp.Network, [3, 4, 5, 2], dropout=[0.1])
    assert_raises_naming(ValueError, "dropout[1]", fastbp.Network, [3, 4, 5, 2], dropout=[0.1, 2])
    assert_raises_naming(ValueError, "input_dropout", fastbp.Network, [3, 4, 2], input_dropout=1.5)
    assert_raises_naming(TypeError, "input_dropout", fastbp.Network, [3, 4, 2], input_dropout=None)

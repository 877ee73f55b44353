"""Bad inputs at the library's boundary give a clean ValueError or TypeError that names the argument.

Each raises the right exception with a message that starts by naming the argument ("X: ...", "lr: ..."), before
anything is computed; values that do not fit the network's dtype are refused; arrays of other dtypes and layouts
are converted. tests/test_errors_random.py draws such inputs at random."""

import math

import numpy as np
import pytest

import fastbp
from conftest import assert_raises_naming
from fastbp.engine.plan import chunk_rows

RNG = np.random.default_rng(8)
X = RNG.standard_normal((12, 5))
LABELS = np.arange(12) % 10


@pytest.fixture
def clf():
    """10 classes, cross_entropy + softmax."""
    return fastbp.Network([5, 6, 10], activation="tanh", seed=0)


@pytest.fixture
def reg():
    """2 outputs, mse + identity."""
    return fastbp.Network([5, 6, 2], activation="tanh", loss="mse", seed=0)


@pytest.fixture
def bce():
    return fastbp.Network([5, 6, 3], activation="tanh", loss="binary_cross_entropy", seed=0)


def fit_fails(net, exc, argname, X, y, **kw):
    before = net.params.copy()
    assert_raises_naming(exc, argname, net.fit, X, y, verbose=0, **kw)
    assert np.array_equal(net.params, before) and net.epochs_trained == 0


# --------------------------------------------------------------------------- X and y


@pytest.mark.parametrize("method", ["fit", "evaluate", "loss_and_grad", "input_grad"])
def test_wrong_feature_count(clf, method):
    assert_raises_naming(ValueError, "X", getattr(clf, method), X[:, :4], LABELS)


@pytest.mark.parametrize("method", ["forward", "predict"])
def test_wrong_feature_count_forward(clf, method):
    msg = assert_raises_naming(ValueError, "X", getattr(clf, method), np.zeros((3, 6)))
    assert "5" in msg and "6" in msg  # what was expected and what was given


def test_length_mismatch(clf):
    fit_fails(clf, ValueError, "y", X, LABELS[:-1])


def test_nan_in_X(clf):
    bad = X.copy()
    bad[3, 2] = np.nan
    msg = assert_raises_naming(ValueError, "X", clf.fit, bad, LABELS)
    assert "(3, 2)" in msg  # where
    assert_raises_naming(ValueError, "X", clf.forward, bad)


@pytest.mark.parametrize("value, where", [(np.nan, (2999, 7)), (np.inf, (1500, 0)), (1e39, (0, 63))])
def test_non_finite_X_in_any_chunk_of_a_large_predict(value, where):
    # forward checks X chunk by chunk inside its pass (plan.chunk_rows: several chunks here): a bad value in
    # any chunk is refused with the message of the check at the boundary, and clean input gives NumPy's answer.
    net = fastbp.Network([64, 1000, 10], activation="relu", seed=0)
    X = RNG.standard_normal((3000, 64))
    assert chunk_rows(net.sizes, len(X)) < len(X) // 2
    W1, b1, W2, b2 = net.weights(1), net.biases(1), net.weights(2), net.biases(2)
    Z = np.maximum(X.astype(np.float32) @ W1.T + b1, 0) @ W2.T + b2
    P = np.exp(Z - Z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(net.forward(X), P / P.sum(axis=1, keepdims=True), rtol=1e-4, atol=1e-6)
    bad = X.copy()
    bad[where] = value
    msg = assert_raises_naming(ValueError, "X", net.predict, bad)
    assert str(where) in msg and ("does not fit in float32" in msg) == (value == 1e39)


def test_inf_in_X_float32(clf):
    bad = X.astype(np.float32)
    bad[0, 0] = -np.inf
    fit_fails(clf, ValueError, "X", bad, LABELS)


def test_inf_in_y(reg):
    y = RNG.standard_normal((12, 2))
    y[5, 1] = np.inf
    fit_fails(reg, ValueError, "y", X, y)


@pytest.mark.parametrize("bad_label", [10, -1])
def test_labels_out_of_range(clf, bad_label):
    y = LABELS.copy()
    y[4] = bad_label
    msg = assert_raises_naming(ValueError, "y", clf.fit, X, y)
    assert str(bad_label) in msg


def test_non_integer_labels(clf):
    y = LABELS.astype(float)
    y[2] = 1.5
    fit_fails(clf, ValueError, "y", X, y)


def test_float_labels_that_are_integers_are_fine(clf):
    np.testing.assert_allclose(clf.evaluate(X, LABELS.astype(float))["loss"], clf.evaluate(X, LABELS)["loss"])


def test_one_hot_of_the_wrong_width(clf):
    fit_fails(clf, ValueError, "y", X, np.eye(9)[LABELS % 9])


def test_empty_X(clf):
    assert_raises_naming(ValueError, "X", clf.fit, np.zeros((0, 5)), np.zeros(0, dtype=int))


def test_one_dimensional_X(clf):
    assert_raises_naming(ValueError, "X", clf.fit, X[0], LABELS[:1])
    assert_raises_naming(ValueError, "X", clf.forward, X[0])


def test_string_X(clf):
    assert_raises_naming(TypeError, "X", clf.fit, np.full((12, 5), "a"), LABELS)
    assert_raises_naming(TypeError, "X", clf.forward, [["1", "2", "3", "4", "5"]])


@pytest.mark.parametrize("y", [np.full((12, 3), 1.5), np.full((12, 3), -0.5)])
def test_bce_targets_outside_0_1(bce, y):
    fit_fails(bce, ValueError, "y", X, y)


def test_one_hot_rows_not_summing_to_1(clf):
    y = np.eye(10)[LABELS]
    y[7, 0] = 1.0  # row 7 now sums to 2
    msg = assert_raises_naming(ValueError, "y", clf.fit, X, y)
    assert "row 7" in msg


def test_validation_data_is_checked_too(clf):
    assert_raises_naming(ValueError, "validation_data[0]", clf.fit, X, LABELS, verbose=0,
                         validation_data=(X[:, :3], LABELS))


# --------------------------------------------------------------------------- fit settings


def test_batch_size_zero(clf):
    fit_fails(clf, ValueError, "batch_size", X, LABELS, batch_size=0)


def test_epochs_zero(clf):
    fit_fails(clf, ValueError, "epochs", X, LABELS, epochs=0)


@pytest.mark.parametrize("lr", [0, -1, math.nan, math.inf])
def test_bad_learning_rate(clf, lr):
    fit_fails(clf, ValueError, "lr", X, LABELS, lr=lr)


def test_non_integer_epochs(clf):
    fit_fails(clf, TypeError, "epochs", X, LABELS, epochs=2.5)


# --------------------------------------------------------------------------- the network's construction


def test_unknown_activation():
    assert_raises_naming(ValueError, "activation", fastbp.Network, [4, 5, 2], activation="swish")


def test_unknown_output_activation():
    assert_raises_naming(ValueError, "output", fastbp.Network, [4, 5, 2], output="swish")


def test_unknown_loss():
    assert_raises_naming(ValueError, "loss", fastbp.Network, [4, 5, 2], loss="hinge")


@pytest.mark.parametrize("dtype", ["float16", "int32", np.int64, "bogus"])
def test_unknown_dtype(dtype):
    assert_raises_naming(ValueError, "dtype", fastbp.Network, [4, 5, 2], dtype=dtype)


def test_numpy_dtypes_are_accepted():
    assert fastbp.Network([4, 2], dtype=np.float64).dtype == np.float64


def test_zero_width_layer():
    assert_raises_naming(ValueError, "layers", fastbp.Network, [4, 0, 2])


def test_single_entry_layers():
    assert_raises_naming(ValueError, "layers", fastbp.Network, [4])


def test_non_integer_width():
    assert_raises_naming(TypeError, "layers", fastbp.Network, [4, 2.5, 2])


def test_softmax_with_one_output_unit():
    assert_raises_naming(ValueError, "output", fastbp.Network, [4, 5, 1], output="softmax")


def test_cross_entropy_with_a_sigmoid_output():
    assert_raises_naming(ValueError, "loss", fastbp.Network, [4, 5, 3], output="sigmoid", loss="cross_entropy")


@pytest.mark.parametrize("output", ["softmax", "identity"])
def test_binary_cross_entropy_without_a_sigmoid_output(output):
    assert_raises_naming(ValueError, "loss", fastbp.Network, [4, 5, 3], output=output, loss="binary_cross_entropy")


def test_softmax_as_a_hidden_activation():
    assert_raises_naming(ValueError, "activation", fastbp.Network, [4, 5, 3], activation="softmax")


def test_one_activation_per_hidden_layer_count():
    assert_raises_naming(ValueError, "activation", fastbp.Network, [4, 5, 5, 3], activation=["tanh"])


# --------------------------------------------------------------------------- values the dtype cannot hold

_RNG = np.random.default_rng(11)


def test_targets_finite_in_float64_but_not_in_float32():
    net = fastbp.Network([2, 3, 1], loss="mse")
    with pytest.raises(ValueError, match=r"^y: .*1e\+39 does not fit in float32"):
        net.fit(np.zeros((4, 2)), np.full(4, 1e39), verbose=0)
    with pytest.raises(ValueError, match=r"^X: .*does not fit in float32"):
        net.forward(np.full((1, 2), -1e39))
    fastbp.Network([2, 3, 1], loss="mse", dtype="float64").fit(np.zeros((4, 2)), np.full(4, 1e39), verbose=0,
                                                                  lr=1e-80)


@pytest.mark.parametrize("value", [np.nan, np.inf, 1e39])
def test_non_finite_parameters_are_refused(value):
    net = fastbp.Network([2, 3, 2])
    before = net.params.copy()
    bad = before.astype(np.float64)
    bad[3] = value
    with pytest.raises(ValueError, match=r"^params: .*index \(3,\)"):
        net.params = bad
    np.testing.assert_array_equal(net.params, before)


def test_float16_targets_and_inputs_are_converted():
    net = fastbp.Network([2, 3, 2], loss="mse")
    X = _RNG.standard_normal((8, 2)).astype(np.float16)
    hist = net.fit(X, _RNG.random((8, 2)).astype(np.float16), epochs=1, verbose=0)
    assert len(hist) == 1
    clf = fastbp.Network([2, 3, 2])
    clf.fit(X, np.array([0, 1] * 4, dtype=np.float16), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="^y: "):
        clf.fit(X, np.full(8, np.inf, dtype=np.float16), verbose=0)


@pytest.mark.parametrize("batch_size", [2**63 - 1, 2**64])
def test_a_huge_batch_size_is_one_batch(batch_size):
    X = _RNG.standard_normal((10, 2))
    y = _RNG.standard_normal((10, 1))
    a = fastbp.Network([2, 3, 1], loss="mse")
    b = fastbp.Network([2, 3, 1], loss="mse")
    a.fit(X, y, batch_size=batch_size, epochs=2, verbose=0)
    b.fit(X, y, batch_size=10, epochs=2, verbose=0)
    np.testing.assert_array_equal(a.params, b.params)
    assert not np.array_equal(a.params, fastbp.Network([2, 3, 1], loss="mse").params)


# --------------------------------------------------------------------------- conversions


@pytest.fixture(scope="module")
def wide():
    """A float64 array whose columns 1, 3, 5, 7, 9 are the inputs: a strided, non-contiguous view."""
    return np.random.default_rng(3).standard_normal((40, 11))


@pytest.mark.parametrize("layout", ["column-slice", "fortran", "int", "list"])
def test_other_layouts_and_dtypes_are_converted(wide, layout):
    base = wide[:, 1:11:2]
    if layout == "int":
        base = np.round(base * 3)
    reference = np.ascontiguousarray(base, dtype=np.float32)
    given = {"column-slice": base, "fortran": np.asfortranarray(base),
             "int": base.astype(np.int64), "list": base.tolist()}[layout]
    if layout == "column-slice":
        assert not given.flags.c_contiguous
    y = np.arange(40) % 3
    a = fastbp.Network([5, 6, 3], activation="tanh", seed=1)
    b = fastbp.Network([5, 6, 3], activation="tanh", seed=1)
    assert np.array_equal(a.forward(given), b.forward(reference))
    assert a.evaluate(given, y) == b.evaluate(reference, y)
    assert np.array_equal(a.loss_and_grad(given, y)[1], b.loss_and_grad(reference, y)[1])
    a.fit(given, y, epochs=2, batch_size=8, lr=0.1, verbose=0)
    b.fit(reference, y, epochs=2, batch_size=8, lr=0.1, verbose=0)
    assert np.array_equal(a.params, b.params)


def test_read_only_inputs_train_as_writeable_ones_without_kernels_of_their_own():
    """A read-only X and sample weights (a memory map opened for reading, joblib's in a parallel search) give
    the parameters and outputs of writeable copies, and no compiled kernel takes a read-only array (Numba
    types them apart: every kernel would compile again for them)."""
    from numba.core import types
    from fastbp.engine import kernels

    rng = np.random.default_rng(5)
    X = rng.standard_normal((40, 5)).astype(np.float32)
    y = np.arange(40) % 3
    sw = rng.uniform(0.5, 2.0, 40)
    Xr, swr = X.copy(), sw.copy()
    Xr.setflags(write=False)
    swr.setflags(write=False)
    a = fastbp.Network([5, 6, 3], activation="tanh", seed=1)
    b = fastbp.Network([5, 6, 3], activation="tanh", seed=1)
    a.fit(Xr, y, sample_weight=swr, epochs=2, batch_size=8, lr=0.1, verbose=0)
    b.fit(X, y, sample_weight=sw, epochs=2, batch_size=8, lr=0.1, verbose=0)
    assert np.array_equal(a.params, b.params)
    assert np.array_equal(a.forward(Xr), b.forward(X))
    assert a.evaluate(Xr, y) == b.evaluate(X, y)
    for f in (kernels._train_epochs, kernels._predict, kernels._full_pass):  # what Python hands the data to
        for sig in f.signatures:
            assert not any(isinstance(t, types.Array) and not t.mutable for t in sig), (f.__name__, sig)


@pytest.mark.parametrize("layout", ["column-slice", "strided-2d", "fortran"])
def test_float_targets_in_other_layouts_are_converted(wide, layout):
    """The same promise for y (checks.py: 'arrays of other dtypes or memory layouts are converted')."""
    Xc = np.ascontiguousarray(wide[:, :5])
    if layout == "column-slice":  # e.g. y = table[:, -1] for one output unit
        net_out, given = 1, wide[:, -1]
    elif layout == "strided-2d":
        net_out, given = 2, wide[:, 5:9:2]
    else:
        net_out, given = 2, np.asfortranarray(wide[:, 5:7])
    reference = np.ascontiguousarray(given)
    net = fastbp.Network([5, 4, net_out], activation="tanh", loss="mse", dtype="float64", seed=1)
    assert net.evaluate(Xc, given) == net.evaluate(Xc, reference)

"""The flat parameter vector: W1, b1, ..., WL, bL, each W^l (n_l, n_{l-1}) row-major; views; the gradient's layout."""

import numpy as np
import pytest

import fastbp
from conftest import backprop_np, forward_np, make_targets

SIZES = [5, 7, 4, 3]


@pytest.fixture
def net():
    return fastbp.Network(SIZES, activation="tanh", output="identity", loss="mse", dtype="float64", seed=3)


def expected_blocks(sizes):
    """[(w_start, (n_l, n_{l-1}), b_start, n_l)] for the documented order W1, b1, W2, b2, ..."""
    blocks, off = [], 0
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        blocks.append((off, (n_out, n_in), off + n_out * n_in, n_out))
        off += n_out * n_in + n_out
    return blocks, off


def test_params_is_one_contiguous_vector_in_the_documented_order(net):
    blocks, total = expected_blocks(SIZES)
    p = net.params
    assert p.ndim == 1 and p.shape == (total,) and net.n_params == total
    assert p.flags.c_contiguous and p.dtype == np.float64
    # Fill the vector with its own indices: each block must then hold exactly its index range.
    p[...] = np.arange(total)
    for l, (w0, shape, b0, m) in enumerate(blocks, start=1):
        W, b = net.weights(l), net.biases(l)
        assert W.shape == shape and b.shape == (m,)
        np.testing.assert_array_equal(W, np.arange(w0, w0 + shape[0] * shape[1]).reshape(shape))  # row-major
        np.testing.assert_array_equal(b, np.arange(b0, b0 + m))


def test_weights_and_biases_are_views_both_ways(net):
    for l in range(1, len(SIZES)):
        W, b = net.weights(l), net.biases(l)
        assert np.shares_memory(W, net.params) and np.shares_memory(b, net.params)
        W[0, 1] = 42.0
        b[-1] = -7.0
        blocks, _ = expected_blocks(SIZES)
        w0, shape, b0, m = blocks[l - 1]
        assert net.params[w0 + 1] == 42.0  # W[0, 1] is element 1 of the row-major block
        assert net.params[b0 + m - 1] == -7.0


def test_the_kernels_read_the_same_layout(net, rng):
    """W^l a^{l-1} + b^l with W, b cut out of params by the documented layout is what forward computes."""
    net.params[...] = rng.uniform(-1, 1, net.n_params)  # non-zero biases too
    X = rng.standard_normal((6, SIZES[0]))
    np.testing.assert_allclose(net.forward(X), forward_np(net, X)[-1][1], rtol=1e-12, atol=1e-12)


def test_writing_into_params_changes_the_forward_output(net, rng):
    X = rng.standard_normal((4, SIZES[0]))
    before = net.forward(X)
    blocks, _ = expected_blocks(SIZES)
    _, _, b0, m = blocks[-1]
    net.params[b0 + 1] += 0.5  # b^L_2 with an identity output moves output unit 2 by exactly 0.5
    after = net.forward(X)
    np.testing.assert_allclose(after[:, 1] - before[:, 1], 0.5, rtol=1e-12)
    np.testing.assert_array_equal(np.delete(after, 1, axis=1), np.delete(before, 1, axis=1))
    net.weights(1)[...] = 0.0  # through the view: the first layer now ignores its input
    out = net.forward(X)
    assert np.allclose(out, out[0])


def test_params_setter_copies_into_the_same_array(net):
    p = net.params
    net.params = np.ones(net.n_params)
    assert net.params is p and np.all(p == 1)
    with pytest.raises(ValueError, match="params"):
        net.params = np.ones(net.n_params + 1)


def test_gradient_has_the_params_layout(net, rng):
    net.params[...] = rng.uniform(-1, 1, net.n_params)
    X = rng.standard_normal((8, SIZES[0]))
    y = make_targets("mse", 8, SIZES[-1], rng)
    loss, grad = net.loss_and_grad(X, y)
    assert grad.shape == net.params.shape and grad.dtype == net.params.dtype
    ref = backprop_np(net, X, y)
    blocks, _ = expected_blocks(SIZES)
    for w0, shape, b0, m in blocks:
        size = shape[0] * shape[1]
        np.testing.assert_allclose(grad[w0 : w0 + size].reshape(shape), ref[w0 : w0 + size].reshape(shape),
                                   rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(grad[b0 : b0 + m], ref[b0 : b0 + m], rtol=1e-10, atol=1e-13)
    # and net.weights / net.biases cut the gradient the same way
    gW2 = net.layout.weights(grad, 2)
    assert gW2.shape == (SIZES[2], SIZES[1])


@pytest.mark.parametrize("bad, exc", [(0, ValueError), (len(SIZES), ValueError), (-1, ValueError), ("1", TypeError),
                                      (1.0, TypeError), (True, TypeError)])
@pytest.mark.parametrize("method", ["weights", "biases"])
def test_bad_layer_numbers(net, method, bad, exc):
    with pytest.raises(exc, match=r"^l: "):
        getattr(net, method)(bad)


def test_layer_numbers_run_1_to_L(net):
    assert net.weights(1).shape == (7, 5)
    assert net.weights(len(SIZES) - 1).shape == (3, 4)
    assert net.weights(np.int64(2)).shape == (4, 7)

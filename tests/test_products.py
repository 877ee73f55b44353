"""The three matrix products of fastbp/engine/products.py against NumPy, on every engine.

Bitwise independent of the thread count on the compiled loops; a layer's descent step (folded into the product
on BLAS); the gather's prefetch."""

import numpy as np
import pytest

from fastbp._numba import mkl as _mkl
from fastbp.engine.kernels import _descend_layer
from fastbp.engine.products import Blas, Loops, Mkl, matmul_nn, matmul_nt, matmul_tn

RNG = np.random.default_rng(0)
SHAPES = [(3, 5, 2), (32, 64, 32), (127, 300, 33), (65, 511, 129), (128, 784, 256)]
needs_mkl = pytest.mark.skipif(not _mkl.available(), reason="mkl (libmkl_rt) is not installed")
# MKL on two threads for every product, and on the calling thread (as in a population).
MKL = [pytest.param(Mkl(0, 2, 0), marks=needs_mkl, id="mkl"),
       pytest.param(Mkl(0, 1, 0), marks=needs_mkl, id="mkl-one-thread")]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, k, m", SHAPES)
@pytest.mark.parametrize("mm", [pytest.param(None, id="one-core"), pytest.param(Loops(2), id="loops"),
                                pytest.param(Blas(0), id="openblas"), *MKL])
def test_products_match_numpy(dtype, n, k, m, mm):
    A = RNG.standard_normal((n, k)).astype(dtype)
    W = RNG.standard_normal((m, k)).astype(dtype)
    D = RNG.standard_normal((n, m)).astype(dtype)
    Z, E, G = np.empty((n, m), dtype), np.empty((n, k), dtype), np.empty((m, k), dtype)
    matmul_nt(A, W, Z, mm)
    matmul_nn(D, W, E, mm)
    matmul_tn(D, A, G, mm)
    tol = {"rtol": 1e-4, "atol": 1e-4 * np.sqrt(k)} if dtype == np.float32 else {"rtol": 1e-10, "atol": 1e-10}
    np.testing.assert_allclose(Z, A.astype(np.float64) @ W.T.astype(np.float64), **tol)
    np.testing.assert_allclose(E, D.astype(np.float64) @ W.astype(np.float64), **tol)
    np.testing.assert_allclose(G, D.T.astype(np.float64) @ A.astype(np.float64), **tol)


@pytest.mark.parametrize("n, k, m", SHAPES[1:])
def test_split_over_threads_is_bitwise_the_same(n, k, m):
    A = RNG.standard_normal((n, k)).astype(np.float32)
    W = RNG.standard_normal((m, k)).astype(np.float32)
    D = RNG.standard_normal((n, m)).astype(np.float32)
    results = []
    for mm in (None, *(Loops(threads) for threads in (1, 2, 3))):
        Z, E, G = np.empty((n, m), np.float32), np.empty((n, k), np.float32), np.empty((m, k), np.float32)
        matmul_nt(A, W, Z, mm)
        matmul_nn(D, W, E, mm)
        matmul_tn(D, A, G, mm)
        results.append((Z, E, G))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, k, m", SHAPES)
@pytest.mark.parametrize("mm", [pytest.param(None, id="one-core"), pytest.param(Loops(2), id="loops"),
                                pytest.param(Blas(0), id="openblas"), pytest.param(Blas(1 << 30), id="openblas-small"),
                                *MKL, pytest.param(Mkl(1 << 30, 2, 0), marks=needs_mkl, id="mkl-small")])
def test_descent_step_of_a_layer(dtype, n, k, m, mm):
    """W ← W - η Dᵀ A: in one BLAS call (α = -η, β = 1) where mm gives the product to BLAS, else in two steps."""
    A = RNG.standard_normal((n, k)).astype(dtype)
    D = RNG.standard_normal((n, m)).astype(dtype)
    W = RNG.standard_normal((m, k)).astype(dtype)
    want = W.astype(np.float64) - 0.05 * (D.T.astype(np.float64) @ A.astype(np.float64))
    _descend_layer(D, A, W, np.empty_like(W), 0.05, mm)
    tol = {"rtol": 1e-4, "atol": 1e-5 * np.sqrt(n)} if dtype == np.float32 else {"rtol": 1e-10, "atol": 1e-12}
    np.testing.assert_allclose(W, want, **tol)


def test_prefetch_rows_reads_any_layout_and_changes_nothing():
    """The gather's prefetch is a hint: it compiles for contiguous, strided, Fortran-ordered, empty and
    one-column arrays of either dtype, and leaves them bitwise as they were."""
    from fastbp._numba.prefetch import prefetch_rows

    base = RNG.standard_normal((40, 70))
    arrays = [base.astype(np.float32), base, base[::3, ::2], np.asfortranarray(base), base[:, :0], base[:, :1],
              base[:0]]
    for X in arrays:
        before = X.copy()
        idx = np.arange(X.shape[0])[::-1].copy()
        prefetch_rows(X, idx)
        prefetch_rows(X, idx[:0])
        np.testing.assert_array_equal(X, before)

"""The three products against NumPy, on every engine, and bitwise independent of the thread count."""

import types

import numba
import numpy as np
import pytest

import fastbp
from fastbp import _mkl, calibration, matmul
from conftest import fit_on_threads
from fastbp.kernels import _descend_layer
from fastbp.matmul import Blas, Loops, Mkl, engine_for, matmul_nn, matmul_nt, matmul_tn

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

def test_fit_is_bitwise_the_same_on_one_and_two_threads():
    X = RNG.standard_normal((300, 200)).astype(np.float32)
    y = RNG.integers(0, 10, 300)
    params = fit_on_threads(lambda: fastbp.Network([200, 256, 64, 10], seed=0), X, y, epochs=2, batch_size=100,
                            lr=0.05)
    np.testing.assert_array_equal(params[0], params[1])


@pytest.fixture(params=["avx2", "avx512"])
def host(request, monkeypatch):
    """The engine choice as it is made on an AVX2 and on an AVX-512 host."""
    features = {"avx2": True, "avx512f": request.param == "avx512"}
    monkeypatch.setattr(matmul, "ll", types.SimpleNamespace(get_host_cpu_features=lambda: features))
    matmul.blas_from.cache_clear()
    calibration.rule.cache_clear()
    yield request.param
    matmul.blas_from.cache_clear()
    calibration.rule.cache_clear()


def test_engine_choice_of_the_built_in_rule(host):
    avx512 = host == "avx512"
    assert calibration.rule().entry is None
    assert engine_for([2, 4, 2], 4, 0, threads=2) is None
    # OpenBLAS's AVX-512 kernels beat the loops from a few k multiply-adds on, its AVX2 ones on large products
    # only; BLAS then takes every product from its smallest on (one core in the loops under it).
    blas = Blas(1 << 12 if avx512 else 1 << 21)
    assert engine_for([64, 32, 10], 32, 0, threads=2) == (blas if avx512 else None)
    assert engine_for([784, 256, 128, 10], 128, 10**5, threads=2) == (blas if avx512 else Loops(2))
    assert engine_for([784, 2048, 2048, 10], 256, 10**6, threads=2) == blas


def test_small_networks_compile_for_one_core(host):
    # None: every product and the update on one core, so the kernels are compiled without BLAS or threads.
    assert fastbp.Network([2, 4, 2])._matmul_config(4) is None
    assert (fastbp.Network([64, 32, 10])._matmul_config(32) is None) == (host == "avx2")
    assert isinstance(fastbp.Network([784, 2048, 2048, 10])._matmul_config(256), Blas)
    mnist = fastbp.Network([784, 256, 128, 10])
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(2)
        assert mnist._matmul_config(128) == (Blas(1 << 12) if host == "avx512" else Loops(2))
        # Small products but enough parameters for a split update: not one core.
        assert fastbp.Network([1000, 100, 10])._matmul_config(8) is not None
        numba.set_num_threads(1)
        assert (mnist._matmul_config(128) is None) == (host == "avx2")
    finally:
        numba.set_num_threads(before)



def test_a_population_never_runs_a_parallel_engine(host):
    # Trained beside others on one core: BLAS only where fit takes it and its products stay on the calling thread.
    def population(sizes, rows):
        return matmul.population_engine(sizes, rows, fastbp.Layout(sizes).n_params)

    mm = population([64, 32, 10], 32)
    assert (mm is None) if host == "avx2" else isinstance(mm, Blas)
    assert population([784, 256, 128, 10], 128) is None
    assert population([784, 2048, 2048, 10], 256) is None


@pytest.mark.parametrize("host", ["avx512"], indirect=True)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_plain_descent_inside_the_backward_pass_is_the_update_rule(host, dtype):
    """On BLAS, plain SGD steps each layer inside the backward pass (64→32 folded into the product, 32→3
    in two steps); a clip_norm that never clips takes the separate update: the same networks come out."""
    X = RNG.standard_normal((256, 64))
    y = RNG.integers(0, 3, 256)
    nets = []
    for clip in (None, 1e30):
        net = fastbp.Network([64, 32, 3], dtype=dtype, seed=0)
        assert net._matmul_config(32) == Blas(1 << 12)
        net.fit(X, y, epochs=3, batch_size=32, lr=0.1, clip_norm=clip, verbose=0)
        nets.append(net)
    tol = {"rtol": 1e-4, "atol": 1e-6} if dtype == "float32" else {"rtol": 1e-12, "atol": 1e-14}
    np.testing.assert_allclose(nets[0].params, nets[1].params, **tol)
    assert not np.array_equal(nets[0].params, fastbp.Network([64, 32, 3], dtype=dtype, seed=0).params)


def test_prefetch_rows_reads_any_layout_and_changes_nothing():
    """The gather's prefetch is a hint: it compiles for contiguous, strided, Fortran-ordered, empty and
    one-column arrays of either dtype, and leaves them bitwise as they were."""
    from fastbp._prefetch import prefetch_rows

    base = RNG.standard_normal((40, 70))
    arrays = [base.astype(np.float32), base, base[::3, ::2], np.asfortranarray(base), base[:, :0], base[:, :1],
              base[:0]]
    for X in arrays:
        before = X.copy()
        idx = np.arange(X.shape[0])[::-1].copy()
        prefetch_rows(X, idx)
        prefetch_rows(X, idx[:0])
        np.testing.assert_array_equal(X, before)

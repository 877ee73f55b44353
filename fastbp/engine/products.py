"""The three matrix products of backpropagation, for every size.

Per layer and batch: the forward Z = A Wᵀ, the weight gradient G = Dᵀ A and
the input gradient E = D W. They go to a BLAS on views (no copies of
transposes): OpenBLAS through ``np.dot``, or Intel MKL's gemm called from the
compiled code (_numba/mkl.py); or, where a BLAS call costs more in set-up than in
arithmetic (which depends on the size and on the CPU's BLAS kernels), run in
register-blocked loops compiled here: each inner loop is over a contiguous
axis, so LLVM vectorises it, and the blocking gives every loaded value several
multiply-adds.

``fastmath`` allows re-association only (no assumptions about NaN or Inf), so
the summation order differs from BLAS's but is fixed: results are
deterministic for a given shape.
"""

import functools
import itertools
from typing import NamedTuple

import numba
import numpy as np
from llvmlite import binding as ll
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic, overload, typeof_impl

from .._numba import mkl as _mkl

# The fold of plain SGD into OpenBLAS's weight-gradient product calls Numba's own gemm wrapper
# (numba_xxgemm) through helpers that are not public API (pyproject bounds Numba to the tested versions).
# Without them, OpenBLAS networks take the product and the step apart: the same rule, one pass more.
try:
    from numba.core import cgutils
    from numba.np.linalg import check_blas_return, ensure_blas, get_blas_kind

    _XXGEMM = ll.address_of_symbol("numba_xxgemm") is not None
except ImportError:
    _XXGEMM = False

# Cached code that calls a parallel kernel refers to the thread pool's symbols
# (allocate_sched, do_scheduling); loading it before any parallel function has
# run fails with "Symbol not found" unless the pool is started first, which
# get_num_threads does.
numba.get_num_threads()

_FM = {"reassoc", "contract", "nsz"}

# Sizes at which products change behaviour; engine/policy.py chooses engines from them. ``policy.engine_for``
# follows this machine's calibration (calibration.py: ``fastbp calibrate`` measures every engine) and, until there
# is one, the built-in rule below, from measurements on 2-core machines
# (docs/performance.md). On AVX2 the compiled loops reach 25-40 GFLOP/s on one
# core and 50-70 split over two; a BLAS call pays for its set-up on small
# products (12-15 GFLOP/s below ~0.5 M multiply-adds) and wins on large ones
# through cache blocking (60-70 GFLOP/s from ~100 M). On AVX-512 OpenBLAS runs
# its SkylakeX kernels, which have a small-matrix path and beat the loops from
# ~4 k multiply-adds on (64-32-10 at batch 32: 8.9 against 12.0 µs per batch;
# 784-256-128-10 at batch 128: 917 against 1,238).
# A parallel region costs a few µs when the other core is free and far more
# when it is busy, so products below SERIAL_MACS stay on one core. Mixing the
# two thread pools in one batch loop is ruinous (each spins while the other
# works), so a network uses one engine throughout, chosen from its largest
# product: the compiled loops (one core below SERIAL_MACS, ``threads`` cores
# above), or one BLAS (OpenBLAS or MKL) for every product from the threshold
# on, the smaller ones on one core in the loops.
SERIAL_MACS = 1 << 21
# Per host: (largest product from which a network uses BLAS, smallest product BLAS then takes).
BLAS_FROM = {"avx2": (1 << 26, SERIAL_MACS), "avx512": (1 << 12, 1 << 12)}
# OpenBLAS computes a product of up to 65536 x 4 multiply-adds on the calling thread (its threading
# threshold), so it can run inside a parallel loop without waking its own threads.
BLAS_ONE_THREAD_MACS = 1 << 18


def host_features():
    """The host CPU's features as LLVM names them (``avx512f``, ...)."""
    return ll.get_host_cpu_features()


@functools.cache
def blas_from():
    """This host's entry of BLAS_FROM."""
    return BLAS_FROM["avx512" if host_features().get("avx512f") else "avx2"]


def largest_product(sizes, rows):
    """Multiply-adds of the largest of a layer's products for ``rows`` samples."""
    return max(rows * a * b for a, b in itertools.pairwise(sizes))


class Loops(NamedTuple):
    """``mm`` of the compiled loops, split over ``threads`` cores from SERIAL_MACS on."""

    threads: int


class Blas(NamedTuple):
    """``mm`` of BLAS, for every product of at least ``smallest`` multiply-adds (one core in the loops below)."""

    smallest: int


class Mkl(NamedTuple):
    """``mm`` of Intel MKL (the ``mkl`` extra), for every product of at least ``smallest`` multiply-adds (one
    core in the loops below), on ``threads`` of MKL's threads from ``parallel`` multiply-adds on, on the
    calling thread below (MKL's own choice of threads wakes them for products too small to gain)."""

    smallest: int
    threads: int
    parallel: int


@typeof_impl.register(Mkl)
def _typeof_mkl(val, c):
    # Compiled code calls MKL through symbols registered when the library is loaded: load it before a kernel
    # that takes an Mkl (compiled now or loaded from the cache) can be linked.
    _mkl.library()
    return typeof_impl.dispatch(tuple)(val, c)


# A flat update of at least this many parameters is split over the threads (see optimizers._update).
PAR_UPDATE_MIN = 1 << 16

@njit(cache=True, error_model="numpy", fastmath=_FM)
def _small_nt(A, W, Z):
    """Z = A Wᵀ: A (n, k), W (m, k). Dot products over the contiguous k, a 2×4 block of Z at once."""
    n, k = A.shape
    m = W.shape[0]
    zero = Z.dtype.type(0.0)
    n2 = n - n % 2
    m4 = m - m % 4
    for i in range(0, n2, 2):
        for j in range(0, m4, 4):
            s0 = s1 = s2 = s3 = t0 = t1 = t2 = t3 = zero
            for p in range(k):
                a = A[i, p]
                b = A[i + 1, p]
                w0 = W[j, p]
                w1 = W[j + 1, p]
                w2 = W[j + 2, p]
                w3 = W[j + 3, p]
                s0 += a * w0
                s1 += a * w1
                s2 += a * w2
                s3 += a * w3
                t0 += b * w0
                t1 += b * w1
                t2 += b * w2
                t3 += b * w3
            Z[i, j] = s0
            Z[i, j + 1] = s1
            Z[i, j + 2] = s2
            Z[i, j + 3] = s3
            Z[i + 1, j] = t0
            Z[i + 1, j + 1] = t1
            Z[i + 1, j + 2] = t2
            Z[i + 1, j + 3] = t3
        for j in range(m4, m):
            s = t = zero
            for p in range(k):
                s += A[i, p] * W[j, p]
                t += A[i + 1, p] * W[j, p]
            Z[i, j] = s
            Z[i + 1, j] = t
    for i in range(n2, n):
        for j in range(m):
            s = zero
            for p in range(k):
                s += A[i, p] * W[j, p]
            Z[i, j] = s


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _small_nn(D, W, E):
    """E = D W: D (n, m), W (m, k). Rows of E built from four rows of W at a time, two rows of D at once."""
    n, m = D.shape
    k = W.shape[1]
    m4 = m - m % 4
    n2 = n - n % 2
    for i in range(0, n2, 2):
        for p in range(k):
            E[i, p] = 0
            E[i + 1, p] = 0
        for j in range(0, m4, 4):
            a0 = D[i, j]
            a1 = D[i, j + 1]
            a2 = D[i, j + 2]
            a3 = D[i, j + 3]
            b0 = D[i + 1, j]
            b1 = D[i + 1, j + 1]
            b2 = D[i + 1, j + 2]
            b3 = D[i + 1, j + 3]
            for p in range(k):
                w0 = W[j, p]
                w1 = W[j + 1, p]
                w2 = W[j + 2, p]
                w3 = W[j + 3, p]
                E[i, p] += (a0 * w0 + a1 * w1) + (a2 * w2 + a3 * w3)
                E[i + 1, p] += (b0 * w0 + b1 * w1) + (b2 * w2 + b3 * w3)
        for j in range(m4, m):
            a0 = D[i, j]
            b0 = D[i + 1, j]
            for p in range(k):
                E[i, p] += a0 * W[j, p]
                E[i + 1, p] += b0 * W[j, p]
    for i in range(n2, n):
        for p in range(k):
            E[i, p] = 0
        for j in range(m):
            a0 = D[i, j]
            for p in range(k):
                E[i, p] += a0 * W[j, p]


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _small_tn(D, A, G):
    """G = Dᵀ A: D (n, m), A (n, k). Rows of G accumulated from four samples at a time."""
    n, m = D.shape
    k = A.shape[1]
    n4 = n - n % 4
    for j in range(m):
        for p in range(k):
            G[j, p] = 0
    for i in range(0, n4, 4):
        for j in range(m):
            d0 = D[i, j]
            d1 = D[i + 1, j]
            d2 = D[i + 2, j]
            d3 = D[i + 3, j]
            for p in range(k):
                G[j, p] += (d0 * A[i, p] + d1 * A[i + 1, p]) + (d2 * A[i + 2, p] + d3 * A[i + 3, p])
    for i in range(n4, n):
        for j in range(m):
            d0 = D[i, j]
            for p in range(k):
                G[j, p] += d0 * A[i, p]


# Split over threads, every output element is still computed by the same loop
# in the same order as on one core (rows are split at even boundaries, so the
# two-row blocks line up): results are bitwise the same for any thread count.


@njit(cache=True, error_model="numpy")
def _row_bounds(n, t, T):
    """Rows [r0, r1) of part t of T, cut at even rows."""
    pairs = (n + 1) // 2
    return min(n, 2 * (t * pairs // T)), min(n, 2 * ((t + 1) * pairs // T))


_NT, _NN, _TN = 0, 1, 2


# One parallel kernel serves the three products: each parfor costs ~1.5 s of
# first compile, and the slices it hands out have the same types for all three.
@njit(cache=True, error_model="numpy", parallel=True)
def _par(kind, X, W, Out, T):
    for t in prange(T):
        if kind == _TN:  # G = Dᵀ A split over the rows of G (the columns of D)
            m = X.shape[1]
            c0, c1 = t * m // T, (t + 1) * m // T
            _small_tn(X[:, c0:c1], W, Out[c0:c1])
        else:
            r0, r1 = _row_bounds(X.shape[0], t, T)
            if kind == _NT:
                _small_nt(X[r0:r1], W, Out[r0:r1])
            else:
                _small_nn(X[r0:r1], W, Out[r0:r1])


# ``mm`` is ``None`` (one core, the compiled loops), ``Loops`` or ``Blas``, and
# its type picks the code: Numba resolves ``mm is None`` before typing
# (dead-branch pruning) and the overloads below by type, so a network compiles
# only its own engine: no BLAS calls for the loops, no parallel region for BLAS
# or one core (each parallel loop costs ~1.5 s of first compile).


def _is(mm, cls):
    """Whether the Numba type ``mm`` is that of the namedtuple class ``cls`` (Loops or Blas)."""
    return isinstance(mm, types.BaseNamedTuple) and mm.instance_class is cls


def _serial(mm, macs, parts):
    """Whether a product of ``macs`` multiply-adds, splittable into ``parts``, runs on one core in the loops."""


def _is_blas(mm):
    """Whether the Numba type ``mm`` is that of a BLAS engine (Blas or Mkl)."""
    return _is(mm, Blas) or _is(mm, Mkl)


@overload(_serial)
def _serial_impl(mm, macs, parts):
    if _is_blas(mm):
        return lambda mm, macs, parts: macs < mm.smallest
    return lambda mm, macs, parts: macs < SERIAL_MACS or mm.threads < 2 or parts < 2


# Each engine's product under a name of its own, not as lambdas of one overload: Numba names a compiled
# function by its qualified name, its argument types and a counter of the process, and cached code
# carries its callees as link-once definitions that the loader merges by name. Two lambdas of one scope
# (the same qualified name) taking the same types, compiled in different processes, could meet under
# one name, and a kernel from the cache then ran the other product (np.dot's shape error, or silently
# the wrong product where the shapes agree).
def _nt_mkl(X, W, Out, mm):
    _mkl_product(_NO, _TR, X, W, 1.0, 0.0, Out, mm)


def _nn_mkl(X, W, Out, mm):
    _mkl_product(_NO, _NO, X, W, 1.0, 0.0, Out, mm)


def _tn_mkl(X, W, Out, mm):
    _mkl_product(_TR, _NO, X, W, 1.0, 0.0, Out, mm)


def _nt_openblas(X, W, Out, mm):
    np.dot(X, W.T, Out)


def _nn_openblas(X, W, Out, mm):
    np.dot(X, W, Out)


def _tn_openblas(X, W, Out, mm):
    np.dot(X.T, W, Out)


def _nt_loops(X, W, Out, mm):
    _par(np.int64(_NT), X, W, Out, min(mm.threads, X.shape[0]))


def _nn_loops(X, W, Out, mm):
    _par(np.int64(_NN), X, W, Out, min(mm.threads, X.shape[0]))


def _tn_loops(X, W, Out, mm):
    _par(np.int64(_TN), X, W, Out, min(mm.threads, X.shape[1]))


_PRODUCTS = {_NT: (_nt_mkl, _nt_openblas, _nt_loops), _NN: (_nn_mkl, _nn_openblas, _nn_loops),
             _TN: (_tn_mkl, _tn_openblas, _tn_loops)}


def _engine(kind):
    """The product ``kind`` on mm's engine, when it does not run on one core: BLAS on views, or ``_par``."""

    def run(X, W, Out, mm):
        pass

    on_mkl, on_openblas, on_loops = _PRODUCTS[kind]

    @overload(run)
    def run_impl(X, W, Out, mm):
        return on_mkl if _is(mm, Mkl) else on_openblas if _is(mm, Blas) else on_loops

    return run


_NO, _TR = _mkl.NO_TRANS, _mkl.TRANS
_INT32 = (1 << 31) - 1


@njit(cache=True, error_model="numpy")
def _rows_ok(X):
    """The leading dimension of X for a row-major gemm, or 0 if X cannot be passed (a strided row)."""
    if X.strides[1] != X.itemsize and X.shape[1] > 1:
        return 0
    ld = max(X.strides[0] // X.itemsize, X.shape[1], 1)
    return ld if ld <= _INT32 else 0


@njit(cache=True, error_model="numpy")
def _mkl_product(ta, tb, X, W, alpha, beta, Out, mm):
    """Out ← alpha · op(X) op(W) + beta · Out by MKL on mm's threads (op: transposed for _TR), with beta 0
    and alpha 1 (a product) or beta 1 (the folded descent step); the compiled loops where an operand's
    rows are strided or a size exceeds MKL's 32-bit integers."""
    m, n = Out.shape
    k = X.shape[0] if ta == _TR else X.shape[1]
    lx, lw, lo = _rows_ok(X), _rows_ok(W), _rows_ok(Out)
    if lx == 0 or lw == 0 or lo == 0 or max(m, n, k) > _INT32:
        if ta == _TR:
            if beta == 0.0:
                _small_tn(X[:, :], W, Out)
            else:
                G = np.empty_like(Out)
                _small_tn(X[:, :], W, G)
                Out += alpha * G
        elif tb == _TR:
            _small_nt(X, W, Out)
        else:
            _small_nn(X, W, Out)
        return
    before = _mkl.set_num_threads_local(mm.threads if m * n * k >= mm.parallel else 1)
    _mkl.gemm(ta, tb, m, n, k, alpha, X, lx, W, lw, beta, Out, lo)
    _mkl.set_num_threads_local(before)


_nt_engine, _nn_engine, _tn_engine = _engine(_NT), _engine(_NN), _engine(_TN)


@njit(cache=True, error_model="numpy")
def matmul_nt(A, W, Z, mm=None):
    """Z = A Wᵀ (the forward product)."""
    if mm is None or _serial(mm, A.shape[0] * A.shape[1] * W.shape[0], A.shape[0]):
        _small_nt(A, W, Z)
    else:
        _nt_engine(A, W, Z, mm)


@njit(cache=True, error_model="numpy")
def matmul_nn(D, W, E, mm=None):
    """E = D W (the input gradient)."""
    if mm is None or _serial(mm, D.shape[0] * D.shape[1] * W.shape[1], D.shape[0]):
        _small_nn(D, W, E)
    else:
        _nn_engine(D, W, E, mm)


@njit(cache=True, error_model="numpy")
def matmul_tn(D, A, G, mm=None):
    """G = Dᵀ A (the weight gradient)."""
    if mm is None or _serial(mm, D.shape[0] * D.shape[1] * A.shape[1], D.shape[1]):
        _small_tn(D[:, :], A, G)  # typed as _par's column slices are: one compiled version, not two
    else:
        _tn_engine(D, A, G, mm)


# The weight-gradient product folded into plain gradient descent, W ← W - η Dᵀ A: one BLAS call with
# α = -η and β = 1 accumulates into W, where G = Dᵀ A and a separate θ ← θ - η g would zero G, write it and
# read it back (on 784-256-128-10 at batch 32, a tenth of the batch).


@intrinsic
def _gemm_tn_acc(typingctx, D, A, C, alpha):
    """C += alpha · Dᵀ A through Numba's BLAS: D (n, m), A (n, k), C (m, k), all C-contiguous."""
    arrays = (D, A, C)
    if not all(isinstance(t, types.Array) and t.ndim == 2 and t.layout == "C" and t.dtype == C.dtype
               for t in arrays) or not isinstance(alpha, types.Float):
        return None
    ensure_blas()

    def codegen(context, builder, sig, args):
        d, a, c = (context.make_array(t)(context, builder, v) for t, v in zip(sig.args[:3], args[:3]))
        n, m = cgutils.unpack_tuple(builder, d.shape)
        k = cgutils.unpack_tuple(builder, a.shape)[1]
        dtype = sig.args[2].dtype
        al = cgutils.alloca_once_value(builder, context.cast(builder, args[3], sig.args[3], dtype))
        be = cgutils.alloca_once_value(builder, context.get_constant(dtype, 1.0))
        char, void_p, intp = ir.IntType(8), ir.IntType(8).as_pointer(), cgutils.intp_t
        fnty = ir.FunctionType(ir.IntType(32), [char, char, char, intp, intp, intp, void_p, void_p, intp,
                                                 void_p, intp, void_p, void_p, intp])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxgemm")
        # Row-major C (m, k) is column-major Cᵀ (k, m) = Aᵀ D: A as stored ('n'), D transposed ('t').
        res = builder.call(fn, (ir.Constant(char, ord(get_blas_kind(dtype))), ir.Constant(char, ord("n")),
                                ir.Constant(char, ord("t")), k, m, n, builder.bitcast(al, void_p),
                                builder.bitcast(a.data, void_p), k, builder.bitcast(d.data, void_p), m,
                                builder.bitcast(be, void_p), builder.bitcast(c.data, void_p), k))
        check_blas_return(context, builder, res)
        return context.get_dummy_value()

    return types.void(D, A, C, alpha), codegen


def _blas_folds(mm):
    """Whether this engine folds plain gradient descent into the weight-gradient product (BLAS only)."""


def _folds(mm):
    """Whether the engine of Numba type ``mm`` folds the descent step into the product."""
    return _is(mm, Mkl) or (_is(mm, Blas) and _XXGEMM)


@overload(_blas_folds)
def _blas_folds_impl(mm):
    folds = _folds(mm)
    return lambda mm: folds


def fold_descent(D, A, W, lr, mm):
    """W ← W - lr · Dᵀ A in one BLAS call (α = -lr, β = 1) if ``mm`` gives this product to BLAS; whether
    it did (if not, the caller takes the product and the step apart)."""


def _tn_acc(D, A, W, alpha, mm):
    """W += alpha · Dᵀ A on mm's BLAS."""


@overload(_tn_acc)
def _tn_acc_impl(D, A, W, alpha, mm):
    if _is(mm, Mkl):
        return lambda D, A, W, alpha, mm: _mkl_product(_TR, _NO, D, A, alpha, 1.0, W, mm)
    return lambda D, A, W, alpha, mm: _gemm_tn_acc(D, A, W, alpha)


@overload(fold_descent)
def _fold_descent_impl(D, A, W, lr, mm):
    if not _folds(mm):
        return lambda D, A, W, lr, mm: False

    def fold(D, A, W, lr, mm):
        if _serial(mm, D.shape[0] * D.shape[1] * A.shape[1], D.shape[1]):
            return False
        _tn_acc(D, A, W, -lr, mm)
        return True

    return fold

"""A software prefetch from compiled code: ``prefetch_rows(X, idx)`` asks the CPU to start loading rows
``idx`` of X into its caches and returns at once, so that a later gather of those rows finds them there.

The training epoch gathers each batch's rows of X and Y at random (a permutation): on a large X every row
is a cache miss, and the batch loop waits for them. Prefetched one batch ahead, those loads overlap the
previous batch's products instead. It is a hint only: results never depend on it.

The intrinsic uses Numba's code-generation helpers (``numba.core.cgutils``, the context's array model), which
are not public API: where they are missing or no longer compile, ``prefetch_rows`` does nothing (checked once at
import, so that a new Numba cannot break the training kernels that call it).
"""

import numpy as np
from numba import njit, types
from numba.extending import intrinsic
from llvmlite import ir

try:
    from numba.core import cgutils
except ImportError:  # pragma: no cover - a Numba without them: no prefetch
    cgutils = None

# Bytes per cache line on x86-64 (and on most other CPUs): one prefetch per line of a row.
_LINE = 64


if cgutils is not None:

    @intrinsic
    def _prefetch_at(typingctx, arr, i, j):
        """Prefetch the cache line holding arr[i, j], for reading."""
        if not (isinstance(arr, types.Array) and arr.ndim == 2 and isinstance(i, types.Integer)
                and isinstance(j, types.Integer)):
            return None

        def codegen(context, builder, sig, args):
            aryty = sig.args[0]
            ary = context.make_array(aryty)(context, builder, args[0])
            idx = [context.cast(builder, v, t, types.intp) for v, t in zip(args[1:], sig.args[1:])]
            ptr = cgutils.get_item_pointer2(context, builder, data=ary.data,
                                            shape=cgutils.unpack_tuple(builder, ary.shape),
                                            strides=cgutils.unpack_tuple(builder, ary.strides),
                                            layout=aryty.layout, inds=idx, wraparound=False)
            i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                                "llvm.prefetch.p0")
            # read (0), temporal locality 2 (prefetcht1: the L2, not the L1), data cache (1)
            builder.call(fn, [builder.bitcast(ptr, i8p), ir.Constant(i32, 0), ir.Constant(i32, 2),
                              ir.Constant(i32, 1)])
            return context.get_dummy_value()

        return types.void(arr, i, j), codegen

    @njit(cache=True, error_model="numpy")
    def prefetch_rows(X, idx):
        """Prefetch rows ``idx`` of the 2-D array X (a hint: no effect on any result)."""
        n = X.shape[1]
        if n == 0:
            return
        step = max(1, _LINE // X.itemsize)
        for t in range(idx.shape[0]):
            r = idx[t]
            for j in range(0, n, step):
                _prefetch_at(X, r, j)
            _prefetch_at(X, r, n - 1)  # a row that does not start on a line boundary ends on one more line


@njit(cache=True, error_model="numpy")
def _no_prefetch(X, idx):
    """What ``prefetch_rows`` is where this Numba lacks the helpers it needs: nothing."""


if cgutils is None:  # pragma: no cover
    prefetch_rows = _no_prefetch
else:
    try:
        prefetch_rows(np.zeros((1, 1), np.float32), np.zeros(1, np.int64))
    except Exception:  # pragma: no cover - a Numba whose internals changed: training without the hint
        prefetch_rows = _no_prefetch

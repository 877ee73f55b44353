"""Atomic operations on an int64 array from compiled code, for the two threads of a team (team.py).

Numba has no atomics of its own; these intrinsics emit LLVM's (``load atomic`` with acquire ordering,
``cmpxchg`` and ``atomicrmw add`` with acquire-release), so that what a thread wrote before it publishes a
counter is seen by the thread that reads the counter after it, on any CPU LLVM targets. ``spin_pause``
is the CPU's hint for a busy-wait loop where it has one (x86's ``pause``), else nothing.

They use Numba's code-generation helpers (``numba.core.cgutils``, the context's array model), which are
not public API: ``AVAILABLE`` says whether they compiled in this Numba (checked once at import); where not,
training never forms a team (training.py), and these are never called.
"""

import numpy as np
from llvmlite import binding as ll
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

try:
    from numba.core import cgutils
except ImportError:  # pragma: no cover - a Numba without them: no teams
    cgutils = None

_X86 = ll.get_process_triple().split("-")[0] in ("x86_64", "i386", "i686")


def _counter(context, builder, aryty, ary, i, ity):
    """The pointer to int64 element i of the 1-D array ``ary``."""
    a = context.make_array(aryty)(context, builder, ary)
    i = context.cast(builder, i, ity, types.intp)
    return cgutils.get_item_pointer(context, builder, aryty, a, [i], wraparound=False)


def _is_counters(arr, *ints):
    return (isinstance(arr, types.Array) and arr.ndim == 1 and arr.dtype == types.int64
            and all(isinstance(t, types.Integer) for t in ints))


if cgutils is not None:

    @intrinsic
    def load_acquire(typingctx, arr, i):
        """arr[i], read atomically; what was written before a release of arr[i] is visible after it."""
        if not _is_counters(arr, i):
            return None

        def codegen(context, builder, sig, args):
            p = _counter(context, builder, sig.args[0], args[0], args[1], sig.args[1])
            return builder.load_atomic(p, "acquire", 8)

        return types.int64(arr, i), codegen

    @intrinsic
    def compare_and_swap(typingctx, arr, i, old, new):
        """arr[i] = new if it is ``old`` (atomically); whether it was."""
        if not _is_counters(arr, i, old, new):
            return None

        def codegen(context, builder, sig, args):
            p = _counter(context, builder, sig.args[0], args[0], args[1], sig.args[1])
            old = context.cast(builder, args[2], sig.args[2], types.int64)
            new = context.cast(builder, args[3], sig.args[3], types.int64)
            return builder.extract_value(builder.cmpxchg(p, old, new, "acq_rel", "acquire"), 1)

        return types.boolean(arr, i, old, new), codegen

    @intrinsic
    def fetch_add(typingctx, arr, i, v):
        """arr[i] += v (atomically, releasing what was written before); the value before."""
        if not _is_counters(arr, i, v):
            return None

        def codegen(context, builder, sig, args):
            p = _counter(context, builder, sig.args[0], args[0], args[1], sig.args[1])
            return builder.atomic_rmw("add", p, context.cast(builder, args[2], sig.args[2], types.int64), "acq_rel")

        return types.int64(arr, i, v), codegen

    @intrinsic
    def spin_pause(typingctx):
        """The CPU's hint that this is a busy-wait loop (x86: ``pause``); elsewhere nothing."""

        def codegen(context, builder, sig, args):
            if _X86:
                fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                    "llvm.x86.sse2.pause")
                builder.call(fn, [])
            return context.get_dummy_value()

        return types.void(), codegen

    @njit(cache=True)
    def _self_test(c):
        ok = compare_and_swap(c, 0, 0, 5) and not compare_and_swap(c, 0, 0, 6)
        before = fetch_add(c, 1, 2)
        spin_pause()
        return ok and before == 0 and load_acquire(c, 0) == 5 and load_acquire(c, 1) == 2


def _available():
    if cgutils is None:  # pragma: no cover
        return False
    try:
        return bool(_self_test(np.zeros(2, np.int64)))
    except Exception:  # pragma: no cover - a Numba whose internals changed: training without teams
        return False


AVAILABLE = _available()

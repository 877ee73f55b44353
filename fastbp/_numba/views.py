"""``rows_view(buf, off, rows, m)``: the C-contiguous (rows, m) view of ``buf[off : off + rows * m]`` of a
1-D C-contiguous array, and ``flat_view(arr)``, the 1-D view of a C-contiguous array, built in place by
compiled code.

The training kernels view their flat buffers (parameters, per-layer work space) as 2-D blocks a dozen times
per batch. ``buf[a:b].reshape((rows, m))`` does that through a call into Numba's C helper
``numba_attempt_nocopy_reshape`` each time, which on a small network is a visible part of the batch; a
contiguous slice needs no such search, only its shape and strides written.

The intrinsic uses Numba's code-generation helpers (the context's array model, ``populate_array``), which
are not public API: where they are missing or no longer compile, ``rows_view`` is the slice and reshape
(checked once at import, as ``_prefetch`` does). The caller guarantees ``0 <= off`` and
``off + rows * m <= buf.size``: there is no bounds check.
"""

import numpy as np
from numba import njit, types
from numba.extending import intrinsic, overload


@njit(cache=True, error_model="numpy", inline="always")
def _reshaped(buf, off, rows, m):
    """What ``rows_view`` is for a non-contiguous ``buf``, or where this Numba lacks the helpers it needs."""
    return buf[off : off + rows * m].reshape((rows, m))


@njit(cache=True, error_model="numpy", inline="always")
def _reshaped_flat(arr):
    """What ``flat_view`` is for a non-contiguous ``arr``, or where this Numba lacks the helpers it needs."""
    return arr.reshape(arr.size)


try:
    from numba.core import cgutils
    from numba.core.imputils import impl_ret_borrowed
    from numba.np.arrayobj import populate_array
except ImportError:  # pragma: no cover - a Numba without them
    cgutils = None


if cgutils is not None:

    @intrinsic
    def _view2d(typingctx, buf, off, rows, m):
        if not (isinstance(buf, types.Array) and buf.ndim == 1 and buf.layout == "C"
                and all(isinstance(t, types.Integer) for t in (off, rows, m))):
            return None
        retty = buf.copy(ndim=2, layout="C")

        def codegen(context, builder, sig, args):
            src = context.make_array(sig.args[0])(context, builder, args[0])
            o, r, k = (context.cast(builder, v, t, types.intp) for v, t in zip(args[1:], sig.args[1:]))
            out = context.make_array(sig.return_type)(context, builder)
            itemsize = src.itemsize
            populate_array(out, data=builder.gep(src.data, [o]), shape=cgutils.pack_array(builder, [r, k]),
                           strides=cgutils.pack_array(builder, [builder.mul(k, itemsize), itemsize]),
                           itemsize=itemsize, meminfo=src.meminfo, parent=src.parent)
            # A view shares its base's memory: it takes a reference, as slicing does.
            return impl_ret_borrowed(context, builder, sig.return_type, out._getvalue())

        return retty(buf, off, rows, m), codegen

    @intrinsic
    def _flat1d(typingctx, arr):
        if not (isinstance(arr, types.Array) and arr.layout == "C"):
            return None
        retty = arr.copy(ndim=1, layout="C")

        def codegen(context, builder, sig, args):
            src = context.make_array(sig.args[0])(context, builder, args[0])
            out = context.make_array(sig.return_type)(context, builder)
            populate_array(out, data=src.data, shape=cgutils.pack_array(builder, [src.nitems]),
                           strides=cgutils.pack_array(builder, [src.itemsize]), itemsize=src.itemsize,
                           meminfo=src.meminfo, parent=src.parent)
            return impl_ret_borrowed(context, builder, sig.return_type, out._getvalue())

        return retty(arr), codegen

    def _flat(arr):
        return _reshaped_flat(arr)

    @overload(_flat, inline="always")
    def _flat_impl(arr):
        if isinstance(arr, types.Array) and arr.layout == "C":
            return lambda arr: _flat1d(arr)
        return lambda arr: _reshaped_flat(arr)

    @njit(cache=True, error_model="numpy", inline="always")
    def flat_view(arr):
        """The 1-D view of all of ``arr`` (built in place where C-contiguous)."""
        return _flat(arr)

    def _rows_view(buf, off, rows, m):
        return _reshaped(buf, off, rows, m)

    @overload(_rows_view, inline="always")
    def _rows_view_impl(buf, off, rows, m):
        if isinstance(buf, types.Array) and buf.ndim == 1 and buf.layout == "C":
            return lambda buf, off, rows, m: _view2d(buf, off, rows, m)
        return lambda buf, off, rows, m: _reshaped(buf, off, rows, m)

    @njit(cache=True, error_model="numpy", inline="always")
    def rows_view(buf, off, rows, m):
        """The (rows, m) view of ``buf[off : off + rows * m]`` (``buf`` 1-D; built in place where C-contiguous)."""
        return _rows_view(buf, off, rows, m)

    try:
        _probe = np.arange(6, dtype=np.float32)
        if not (np.array_equal(rows_view(_probe, 2, 2, 2), _probe[2:6].reshape((2, 2)))
                and np.array_equal(flat_view(_probe.reshape((2, 3))), _probe)):  # pragma: no cover
            raise RuntimeError("rows_view")
    except Exception:  # pragma: no cover - a Numba whose internals changed
        rows_view, flat_view = _reshaped, _reshaped_flat
else:  # pragma: no cover
    rows_view, flat_view = _reshaped, _reshaped_flat

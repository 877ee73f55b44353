"""The in-place 2-D and 1-D views of flat buffers that the kernels take (fastbp/_numba/views.py)."""

import numpy as np
import pytest
from numba import njit

from fastbp._numba import views as _views
from fastbp._numba.views import flat_view, rows_view


@njit(cache=True)
def _views_of(buf, off, rows, m):
    V = rows_view(buf, off, rows, m)
    F = flat_view(V)
    V[0, 0] = -1  # a view, not a copy: the write reaches buf
    return V, F


def test_views_are_the_intrinsics_on_this_numba():
    """The fallback (slice and reshape) is for a Numba whose internals changed, not this one."""
    assert rows_view is not _views._reshaped and flat_view is not _views._reshaped_flat


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("off, rows, m", [(0, 3, 4), (5, 2, 7), (11, 1, 1), (12, 0, 3)])
def test_views_match_slice_and_reshape(dtype, off, rows, m):
    buf = np.arange(40, dtype=dtype)
    ref = buf[off : off + rows * m].reshape((rows, m)).copy()
    V, F = _views_of(buf, off, rows, m)
    if rows:
        ref[0, 0] = -1
        assert buf[off] == -1
    assert V.shape == (rows, m) and V.flags.c_contiguous and V.dtype == dtype
    np.testing.assert_array_equal(V, ref)
    np.testing.assert_array_equal(F, ref.reshape(-1))
    assert np.shares_memory(V, buf) or rows == 0
    del buf  # the views hold the memory: reading them after the base is gone is safe
    np.testing.assert_array_equal(V, ref)

"""The optimizer's step over the flat parameter vector, on the engine's threads where it pays.

The rule itself, element by element, is the spec's (specs/optimizers.py: ``_rule``); here it is run over the
whole vector or a part of it, split over the threads of the engine that the products have just left.
"""

from numba import njit, prange
from numba.extending import overload

from ..specs.optimizers import _clip_scale, _rule, _slot
from .products import PAR_UPDATE_MIN, Loops, Mkl, _is

__all__ = ["_update", "_update_part"]


# From products.PAR_UPDATE_MIN parameters on the update is split over the threads: Adam's sqrt and division
# make it compute-bound (~250 µs for mnist's 235k parameters on one core, a tenth of a batch), and each
# element's arithmetic is the same whatever the split, so the result is bitwise the same.


@njit(cache=True, error_model="numpy")
def _update(params, grad, state, code, hyper, lr, step, clip, mm=None):
    """One step of the rule ``code`` with learning rate ``lr`` (already scheduled).

    ``mm`` as for the products (products.py): ``None`` is one core; with the
    compiled loops on several threads (``Loops``) or MKL (``Mkl``), a large update
    is split over those threads; beside OpenBLAS (``Blas``) it stays on one core.
    """
    _update_part(params, grad, _slot(state, 0, params), _slot(state, 1, params), code, hyper, lr, step,
                 _clip_scale(grad, clip), 0.0, mm)


@njit(cache=True, error_model="numpy")
def _update_part(params, grad, s0, s1, code, hyper, lr, step, c, decay, mm=None):
    """``_update`` of a part of the parameters (its state rows ``s0``, ``s1``, or empty) with the gradient
    already scaled by ``c``, each element's gradient taken as grad + decay · θ (the L2 penalty's, added
    as the rule reads it: the same arithmetic as adding it to ``grad`` first)."""
    if mm is None or not _split_rule(params, grad, s0, s1, code, hyper, lr, step, c, decay, mm):
        _rule(params, grad, s0, s1, code, hyper, lr, step, c, decay)


def _split_rule(params, grad, s0, s1, code, hyper, lr, step, c, decay, mm):
    """Run the rule split over mm's threads if it pays; whether it did."""


@overload(_split_rule)
def _split_rule_impl(params, grad, s0, s1, code, hyper, lr, step, c, decay, mm):
    # The loops' threads, or MKL's beside them: fastbp puts MKL on Numba's own pool where there is one to
    # share (TBB beside Numba's TBB layer, GNU OpenMP beside its omp layer; _numba/mkl.py), so the update's threads
    # are those MKL's products have just left (beside Numba's workqueue layer the two pools are apart).
    # OpenBLAS's own threads keep spinning after a product: there the update stays on one core.
    if _is(mm, Loops) or _is(mm, Mkl):
        def split(params, grad, s0, s1, code, hyper, lr, step, c, decay, mm):
            if mm.threads < 2 or params.shape[0] < PAR_UPDATE_MIN:
                return False
            _par_rule(params, grad, s0, s1, code, hyper, lr, step, c, decay, mm.threads)
            return True

        return split
    return lambda params, grad, s0, s1, code, hyper, lr, step, c, decay, mm: False


@njit(cache=True, error_model="numpy", parallel=True)
def _par_rule(params, grad, s0, s1, code, hyper, lr, step, c, decay, T):
    n = params.shape[0]
    for t in prange(T):
        lo = (t * n // T) // 16 * 16  # part edges on 64-byte lines
        hi = n if t == T - 1 else ((t + 1) * n // T) // 16 * 16
        _rule(params[lo:hi], grad[lo:hi], s0[lo:hi], s1[lo:hi], code, hyper, lr, step, c, decay)

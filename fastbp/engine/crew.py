"""A large network's batches shared out by units: each thread owns a part of every layer.

On BLAS's own threads (docs/performance.md), each product of a large network is split over the
cores by the BLAS, and everything between the products runs on the calling thread: the activations read
columns another core just wrote, and the optimizer's update reads weights and gradients that sit in the
other core's cache (MKL) or runs on one core beside the BLAS's spinning threads (OpenBLAS). In a crew, T
threads each own part k of every layer's units (``kernels._unit_part``): their columns of z, a and δ, their
rows of W, of its gradient and of the optimizer's state. Each runs its part of every step on one core, its
products on one MKL thread. Per batch, 3L phases of T parts each:

- forward, per hidden layer l: z[:, part] = a^{l-1} W[part]ᵀ + b[part], a[:, part] = f(z[:, part]);
- the output layer by rows of the batch: the part's rows of z^L, a^L, the cost and the output δ (softmax
  needs whole rows);
- per layer l > 0 from the top: (a) δ^{l-1}[:, part] = (δ^l W[:, part]) ⊙ f'(z^{l-1}[:, part]), then
  (b) ∂C/∂W[part] = δ^l[:, part]ᵀ a^{l-1} and ∂C/∂b[part] = Σ_rows δ^l[:, part];
- ∂C/∂W^1[part]; then the cost judged, the update of the part's rows, and its rows of the next batch gathered.

So weights, gradients and optimizer state stay in their core's cache, and the update and the gather run on
every core. A phase waits only for every part of the phase it reads from (``_after``): a forward layer for
the one before, a δ for the δ above, a weight gradient for the output rows, the update for the last δ
(every part has read the weights it changes). A thread claims its part's next phase (a compare-and-swap on
that part's counter) once it is ready; a ready part left unclaimed longer than a part takes (its thread
descheduled, or never started: the pool busy) is taken by another thread, which from then on takes that
part at once until its own thread claims one again. So no thread waits on a thread that is not there, and a
lone thread trains the network alone. A part's arithmetic does not depend on the thread that runs it, so
the result does not depend on the threads (bitwise, tests); it depends on the number of parts, and differs
from ``kernels._train_epochs`` only in the order of sums over parts (the batch's cost, Σ‖W‖²) and in the
products' blocks, within rounding. Where an epoch ends, part 0 also does what ``_train_epochs`` does between
epochs (outputs, the stopping rule, the copy an undone epoch goes back to).

Needs MKL (the ``mkl`` extra: one thread per call, from several threads at once); not for dropout (masks
drawn per row of the whole batch), a clip bound (the whole gradient's norm first), plain gradient descent
(folded into BLAS's products, where a crew did not pay) or several networks at once (a population already
has a core per network); ``pays`` decides.
"""

import concurrent.futures
import math
import os
import threading
from typing import NamedTuple

import numpy as np
from numba import njit

from .._numba import mkl as _mkl
from .._numba.atomic import compare_and_swap, fetch_add, load_acquire, spin_pause
from .._numba.views import flat_view, rows_view
from ..specs.activations import _act_backward, _activate
from .kernels import (_SQ_LANES, _add_decay, _batch_cost, _biases, _block, _block_offset, _end_epoch, _gather_rows,
                      _keep, _l2_in_update, _put_back, _sum_sq, _unit_part, _update_units, _weights)
from ..specs.losses import _output_delta
from .products import _rows_ok
from ..specs.schedules import _scheduled_lr

__all__ = ["Crew", "crew_buffers", "train_epochs"]

# Counters (int64), each on a cache line of its own: per part k its next phase to claim (at _LINE k) and the
# phases it has done (at _LINE (T + k)), then a stop (at _LINE 2T).
_LINE = 8
# Shared float64 values: per part (Σ w C, weight right) of its rows and its Σ‖W‖² (two slots, by the batch
# count's parity: a part writes the next batch's while the others may still read this one's); then the
# running epoch's summed cost and weight right, the learning rate, and the call's result (epochs completed,
# non-finite batch or -1, whether the rule stopped).
_PER_PART = 4
_LOSS, _RIGHT, _LR, _RAN, _BAD, _HALT, _SHARED = range(7)
# Pause hints a thread spins through with another's part ready and unclaimed before it takes the part:
# far longer than a thread takes to claim a part it is waiting for, far shorter than a time slice.
_PATIENCE = 1 << 14


class Crew(NamedTuple):
    """A crew's shared ``counters`` (int64) and ``values`` (float64), and a second set of batch buffers ``Xb``,
    ``Yb``, ``wb`` (as ``plan.Work``'s): odd batches are gathered there, so that a thread gathering the next
    batch never writes rows another thread still reads. Its threads work in the run's buffers otherwise."""

    counters: np.ndarray
    values: np.ndarray
    Xb: np.ndarray
    Yb: np.ndarray
    wb: np.ndarray


def crew_buffers(work, threads):
    """A Crew of ``threads`` threads beside the run's work buffers ``work``."""
    return Crew(np.zeros(_LINE * (2 * threads + 1), np.int64), np.zeros(_PER_PART * threads + _SHARED),
                np.empty_like(work.Xb), np.empty_like(work.Yb), np.empty_like(work.wb))


def train_epochs(params, state, data, epochs, net, work, rule, rec, crew):
    """``kernels._train_epochs`` (the same arguments and results) by a crew (``crew_buffers``) of as many threads
    as it was made for; ``net`` and ``work`` are the run's (the crew calls MKL itself, whatever ``net.mm``). This
    thread is one of them; the others come from a pool of fastbp's own (see ``_helpers``)."""
    T = crew.counters.shape[0] // (2 * _LINE)
    crew.counters[:] = 0
    crew.values[:] = 0.0
    crew.values[_PER_PART * T + _RAN] = epochs.perms.shape[0]
    crew.values[_PER_PART * T + _BAD] = -1.0
    args = (params, state, data, epochs, net, work, rule, rec, crew)
    helpers = [_helpers(T - 1).submit(_member, k, *args) for k in range(1, T)]
    try:
        _member(0, *args)
    finally:
        # A helper not started yet would find every task claimed: it is not waited for. One that started
        # finishes the task it holds (the call's buffers are reset by the next call only after that).
        for h in helpers:
            if not h.cancel():
                h.result()
    v = crew.values[_PER_PART * T:]
    return int(v[_RAN]), int(v[_BAD]), bool(v[_HALT])


def kernel(net):
    """(the compiled function ``train_epochs`` calls, the Net it takes) for the Net ``net``."""
    return _member, net


_pool = None
_pool_lock = threading.Lock()


def _helpers(n):
    """A pool of at least ``n`` threads that run crews' members beside the calling thread.

    Python threads calling the compiled member (which releases the GIL), not a parallel region of Numba's:
    the call graph under a parallel loop is compiled once more for its gufunc (a crew's first compile took
    75 s in a ``prange``; 24 s now, against 18 s for the network alone). A thread of this pool that is late or
    busy (fits in several threads at once) only lets the calling thread take its parts (see the module's
    docstring)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool._max_workers < n:
            _pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, n), thread_name_prefix="fastbp-crew")
        return _pool


def _forget_pool():
    """In a forked child: the parent's pool threads are not there (a crew would run on its calling thread alone)."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


@njit(cache=True, error_model="numpy", nogil=True)
def _member(me, params, state, data, epochs, net, work, rule, rec, crew):
    """One thread of the crew: runs its own part of each phase, and a part left unclaimed (see the module's
    docstring), until every task is claimed or the call stops."""
    counters = crew.counters
    T = _threads(crew)
    n_batches = _n_batches(epochs)
    L = net.sizes.shape[0] - 1
    total = 2 + epochs.perms.shape[0] * n_batches * 3 * L  # the start, 3L phases per batch, the end
    stopped = 2 * T * _LINE
    acc = np.empty(_SQ_LANES)
    before = _mkl.set_num_threads_local(1)
    away = np.zeros(T, np.int64)  # per part: the phase after the one this thread last took of it (0: none)
    waited = 0
    while load_acquire(counters, stopped) == 0:
        part = me
        p = _ready(counters, me, T, L, total)
        if p < 0:
            # Not this thread's turn: another part ready and unclaimed, taken once it has waited too long, or at
            # once if this thread took that part last time (its own thread is not there).
            part = -1
            for k in range(T):
                if k != me and part < 0:
                    p = _ready(counters, k, T, L, total)
                    if p >= 0:
                        part = k
            if part < 0:
                if _all_claimed(counters, T, total):
                    break  # their holders finish them
                waited = 0
                spin_pause()
                continue
            waited += 1
            if not (away[part] == p or waited > _PATIENCE):
                spin_pause()
                continue
        if compare_and_swap(counters, _LINE * part, p, p + 1):
            _task(p, part, params, state, data, epochs, net, work, rule, rec, crew, acc)
            fetch_add(counters, _LINE * (T + part), 1)
            if part != me:
                away[part] = p + 1
            waited = 0
    _mkl.set_num_threads_local(before)


@njit(cache=True, error_model="numpy", inline="always")
def _threads(crew):
    """The crew's thread count (its counters: two lines per part, one for the stop)."""
    return crew.counters.shape[0] // (2 * _LINE)


@njit(cache=True, error_model="numpy", inline="always")
def _n_batches(epochs):
    return (epochs.perms.shape[1] + epochs.batch_size - 1) // epochs.batch_size


@njit(cache=True, error_model="numpy", inline="always")
def _ready(counters, k, T, L, total):
    """The phase of part k that may start now (its last one done and not claimed again, and every part done with
    the phase it depends on, ``_after``), or -1."""
    p = load_acquire(counters, _LINE * k)
    if p >= total or load_acquire(counters, _LINE * (T + k)) != p:
        return -1
    d = _after(p, L, total)
    for j in range(T):
        if load_acquire(counters, _LINE * (T + j)) <= d:
            return -1
    return p


@njit(cache=True, error_model="numpy", inline="always")
def _after(p, L, total):
    """The phase every part must have done before phase p starts (-1: none). Per batch (3L phases): the hidden
    layers' forward parts, each after the one before; the output rows after the last; per layer l from the
    top, its δ below (a) after the output rows (l = L - 1) or the δ part above, and its weight gradient (b)
    after the output rows; the first layer's weight gradient after the output rows; the update after the last
    δ (every part has read the weights it updates) and the gather with it. A batch's first phase after the
    batch before; the call's end after all."""
    if p == 0:
        return -1
    if p == total - 1:
        return p - 1
    P = 3 * L
    j = (p - 1) % P
    base = p - j  # the batch's first phase
    if j == 0:
        return base - 1
    if j <= L - 1:
        return p - 1
    if j == P - 1:  # the update: after the last δ part (the output rows where there is no hidden layer)
        return base + (3 * L - 4 if L > 1 else 0)
    if j == P - 2:  # the first layer's weight gradient
        return base + L - 1
    i = j - L
    if i % 2 == 0 and i > 0:  # δ below layer L - 1 - i/2: after the δ part above
        return p - 2
    return base + L - 1  # the output rows


@njit(cache=True, error_model="numpy")
def _all_claimed(counters, T, total):
    for k in range(T):
        if load_acquire(counters, _LINE * k) < total:
            return False
    return True


@njit(cache=True, error_model="numpy", inline="always")
def _batch(perms, q, n_batches, batch_size):
    """(epoch, batch, its rows of the order) of batch q of the call."""
    e = q // n_batches
    b = q % n_batches
    start = b * batch_size
    return e, b, perms[e, start : min(start + batch_size, perms.shape[1])]


@njit(cache=True, error_model="numpy", inline="always")
def _buffers(work, crew, q):
    """Batch q's buffers (inputs, targets, sample weights): the work's for even q, the crew's for odd."""
    if q % 2 == 0:
        return work.Xb, work.Yb, work.wb
    return crew.Xb, crew.Yb, crew.wb


@njit(cache=True, error_model="numpy")
def _weight_sum(sw, idx):
    """The batch's total sample weight (its rows' count without weights), summed in one order by every part."""
    if sw.shape[0] == 0:
        return float(idx.shape[0])
    s = 0.0
    for i in range(idx.shape[0]):
        s += sw[idx[i]]
    return s


@njit(cache=True, error_model="numpy")
def _gather_part(data, epochs, q, k, T, Xb, Yb, wb):
    """Part k of T of batch q's rows into its buffers (unlike ``_train_epoch``, without prefetching the next
    batch's: here it made no difference, docs/performance.md)."""
    X, Y, sw = data
    _, _, idx = _batch(epochs.perms, q, _n_batches(epochs), epochs.batch_size)
    r0 = k * idx.shape[0] // T
    r1 = (k + 1) * idx.shape[0] // T
    _gather_rows(X, Y, idx[r0:r1], rows_view(flat_view(Xb), r0 * X.shape[1], r1 - r0, X.shape[1]),
                 rows_view(flat_view(Yb), r0 * Y.shape[1], r1 - r0, Y.shape[1]))
    if sw.shape[0] > 0:
        for i in range(r0, r1):
            wb[i] = sw[idx[i]]


@njit(cache=True, error_model="numpy", inline="always")
def _sq_slot(k, q):
    """Where part k keeps Σ‖W‖² of its rows as batch q starts."""
    return _PER_PART * k + 2 + q % 2


@njit(cache=True, error_model="numpy", inline="always")
def _task(p, k, params, state, data, epochs, net, work, rule, rec, crew, acc):
    """Part k of phase p (see the module's docstring)."""
    sw, perms, batch_size = data.sw, epochs.perms, epochs.batch_size
    T = _threads(crew)
    n_batches = _n_batches(epochs)
    values = crew.values
    L = net.sizes.shape[0] - 1
    n = perms.shape[1]
    shared = _PER_PART * T
    batches = perms.shape[0] * n_batches
    if p == 0:  # the call's start: the first batch's rows, Σ‖W‖² of the part's rows, the epoch's start
        _gather_part(data, epochs, 0, k, T, work.Xb, work.Yb, work.wb)
        values[_sq_slot(k, 0)] = _sum_sq_part(params, net, k, T, acc) if rule.l2 != 0.0 else 0.0
        if k == 0:
            _start_epoch(0, params, state, rec.saved, values, shared, rule, epochs.epoch0)
        return
    if p == 1 + batches * 3 * L:  # the call's end: what follows the last epoch
        if k == 0 and _end_epoch(perms.shape[0] - 1, values[shared + _LOSS], values[shared + _RIGHT],
                                 values[shared + _LR], n, params, rec):
            values[shared + _HALT] = 1.0
        return
    P = 3 * L
    q = (p - 1) // P
    j = (p - 1) % P
    e, b, idx = _batch(perms, q, n_batches, batch_size)
    if k == 0 and b == 0 and j == 0 and e > 0:  # between epochs e - 1 and e
        if _end_epoch(e - 1, values[shared + _LOSS], values[shared + _RIGHT], values[shared + _LR], n, params, rec):
            values[shared + _RAN] = e
            values[shared + _HALT] = 1.0
            fetch_add(crew.counters, 2 * T * _LINE, 1)
            return
        _start_epoch(e, params, state, rec.saved, values, shared, rule, epochs.epoch0)
    rows = idx.shape[0]
    wsum = _weight_sum(sw, idx)
    Xb, Yb, wb = _buffers(work, crew, q)
    if wsum == 0.0:  # nothing to learn from: no cost, no update; the next batch's rows still come
        if j == P - 1:
            values[_sq_slot(k, q + 1)] = values[_sq_slot(k, q)]
            if q + 1 < batches:
                _gather_part(data, epochs, q + 1, k, T, *_buffers(work, crew, q + 1))
        return
    fused = _l2_in_update(rule)
    A0 = Xb[:rows]
    if j < L - 1:
        _forward_part(j, k, T, params, net, work, A0)
    elif j == L - 1:
        w = wb[:rows] if sw.shape[0] > 0 else wb[:0]
        c, ok = _output_part(k, T, params, net, work, A0, Yb, w, wsum)
        values[_PER_PART * k] = c
        values[_PER_PART * k + 1] = ok
    elif j < P - 2:  # back through layer l: the δ of part k's units below (a), the gradient of its units here (b)
        l = L - 1 - (j - L) // 2
        if (j - L) % 2 == 0:
            _delta_part(l, k, T, params, net, work, A0)
        else:
            _weight_grad(l, k, T, params, net, work, A0, rule.l2 / wsum, fused)
    elif j == P - 2:  # the first layer's gradient
        _weight_grad(0, k, T, params, net, work, A0, rule.l2 / wsum, fused)
    else:  # the batch's end: the cost judged, the part's update, the next rows
        step = epochs.step0 + e * n_batches + b
        lr = values[shared + _LR]
        if rule.per_step:
            lr = _scheduled_lr(rule.sched_code, rule.sched_p, rule.lr, step)
        c, ok, sq = 0.0, 0.0, 0.0
        for t in range(T):
            c += values[_PER_PART * t]
            ok += values[_PER_PART * t + 1]
            sq += values[_sq_slot(t, q)]
        c, ok = _batch_cost(c, ok, rows, wsum, sw.shape[0] > 0, rule.l2, sq)
        if not math.isfinite(c):  # the epoch is undone, and the call stops before this batch's update
            if k == 0:
                _put_back(rec.saved, params, state)
                rec.loss[e] = values[shared + _LOSS]
                values[shared + _RAN] = e
                values[shared + _BAD] = b
                fetch_add(crew.counters, 2 * T * _LINE, 1)
            return
        if k == 0:
            values[shared + _LOSS] += c
            values[shared + _RIGHT] += ok
            values[shared + _LR] = lr
        values[_sq_slot(k, q + 1)] = _update_units(params, work.grad, state, net, rule, lr, step + 1,
                                                   rule.l2 / wsum if fused else 0.0, acc, k, T, None)
        if q + 1 < batches:
            _gather_part(data, epochs, q + 1, k, T, *_buffers(work, crew, q + 1))


@njit(cache=True, error_model="numpy")
def _start_epoch(e, params, state, saved, values, shared, rule, epoch0):
    """What ``_train_epochs`` does as epoch e starts: the copy an undone epoch goes back to, the sums zeroed,
    the epoch's learning rate."""
    _keep(params, state, saved)
    values[shared + _LOSS] = 0.0
    values[shared + _RIGHT] = 0.0
    values[shared + _LR] = _scheduled_lr(rule.sched_code, rule.sched_p, rule.lr, epoch0 + e)


@njit(cache=True, error_model="numpy")
def _sum_sq_part(params, net, k, T, acc):
    """Σ‖W‖² of part k's rows of every layer."""
    sq = 0.0
    for l in range(net.sizes.shape[0] - 1):
        lo, hi = _unit_part(net.sizes, l, k, T, params.itemsize)
        sq += _sum_sq(_unit_rows(params, net, l, lo, hi).ravel(), acc)
    return sq


@njit(cache=True, error_model="numpy")
def _forward_part(l, k, T, params, net, work, A0):
    """Hidden layer l, part k's units: z = a^{l-1} Wᵀ + b, a = f(z)."""
    sizes, cap, rows = net.sizes, work.cap, A0.shape[0]
    lo, hi = _unit_part(sizes, l, k, T, params.itemsize)
    a_in = A0 if l == 0 else _block(work.Ab, sizes, l - 1, cap, rows)
    _product(_NO, _TR, a_in, _unit_rows(params, net, l, lo, hi), 1.0, 0.0,
             _block(work.Zb, sizes, l, cap, rows)[:, lo:hi])
    # Row by row, each a contiguous (1, m) view: a loop over a block of columns (a strided view) does not
    # vectorise, and these are the kernels the whole batch's pass compiles.
    b = params[net.b_off[l] + lo : net.b_off[l] + hi]
    off, n = _block_offset(sizes, l, cap), sizes[l + 1]
    for i in range(rows):
        o = off + i * n + lo
        _activate(rows_view(work.Zb, o, 1, hi - lo), rows_view(work.Ab, o, 1, hi - lo), b, net.acts[l],
                  net.act_p[l, 0], net.act_p[l, 1])


@njit(cache=True, error_model="numpy")
def _output_part(k, T, params, net, work, A0, Yb, w0, wsum):
    """The output layer for part k's rows of the batch (its targets in the batch buffer ``Yb``, sample weights
    ``w0`` or empty): z, a, the output δ; (Σ w C, weight right) of those rows."""
    sizes, cap, rows = net.sizes, work.cap, A0.shape[0]
    l = sizes.shape[0] - 2
    r0 = k * rows // T
    r1 = (k + 1) * rows // T
    n = sizes[l + 1]
    o = _block_offset(sizes, l, cap) + r0 * n  # the part's rows, C-contiguous views: the whole batch's kernels
    Z = rows_view(work.Zb, o, r1 - r0, n)
    A = rows_view(work.Ab, o, r1 - r0, n)
    _product(_NO, _TR, (A0 if l == 0 else _block(work.Ab, sizes, l - 1, cap, rows))[r0:r1], _weights(params, net, l),
             1.0, 0.0, Z)
    _activate(Z, A, _biases(params, net, l), net.acts[l], net.act_p[l, 0], net.act_p[l, 1])
    return _output_delta(Z, A, rows_view(flat_view(Yb), r0 * Yb.shape[1], r1 - r0, Yb.shape[1]),
                         rows_view(work.Db, o, r1 - r0, n),
                         net.loss_code, net.acts[l], net.act_p[l, 0], net.act_p[l, 1], 1.0 / wsum, net.acc_mode,
                         w0[r0:r1] if w0.shape[0] else w0)


@njit(cache=True, error_model="numpy")
def _delta_part(l, k, T, params, net, work, A0):
    """Back through layer l > 0: δ^{l-1} = (δ^l W) ⊙ f'(z^{l-1}) of part k's units of layer l - 1."""
    sizes, cap, rows = net.sizes, work.cap, A0.shape[0]
    lo, hi = _unit_part(sizes, l - 1, k, T, params.itemsize)
    _product(_NO, _NO, _block(work.Db, sizes, l, cap, rows), _weights(params, net, l)[:, lo:hi], 1.0, 0.0,
             _block(work.Db, sizes, l - 1, cap, rows)[:, lo:hi])
    off, n = _block_offset(sizes, l - 1, cap), sizes[l]
    for i in range(rows):  # row by row, as in _forward_part
        o = off + i * n + lo
        _act_backward(rows_view(work.Db, o, 1, hi - lo), rows_view(work.Zb, o, 1, hi - lo),
                      rows_view(work.Ab, o, 1, hi - lo), net.acts[l - 1], net.act_p[l - 1, 0], net.act_p[l - 1, 1])


@njit(cache=True, error_model="numpy")
def _weight_grad(l, k, T, params, net, work, A0, decay, fused):
    """∂C/∂W and ∂C/∂b of part k's units of layer l (the L2 penalty's decay · W added where the update does not
    add it)."""
    sizes, cap, rows = net.sizes, work.cap, A0.shape[0]
    lo, hi = _unit_part(sizes, l, k, T, params.itemsize)
    gW = _unit_rows(work.grad, net, l, lo, hi)
    _product(_TR, _NO, _block(work.Db, sizes, l, cap, rows)[:, lo:hi],
             A0 if l == 0 else _block(work.Ab, sizes, l - 1, cap, rows), 1.0, 0.0, gW)
    _bias_grad_part(work.Db, _block_offset(sizes, l, cap), sizes[l + 1], lo, hi, rows,
                    work.grad[net.b_off[l] + lo : net.b_off[l] + hi])
    if decay != 0.0 and not fused:
        _add_decay(gW, _unit_rows(params, net, l, lo, hi), decay)


@njit(cache=True, error_model="numpy")
def _bias_grad_part(Db, off, n, lo, hi, rows, gb):
    """``kernels._bias_grad`` of units lo..hi of the layer whose δ block starts at ``off`` (n units a row)."""
    gb[:] = 0
    for i in range(rows):
        row = Db[off + i * n + lo : off + i * n + hi]
        for j in range(hi - lo):
            gb[j] += row[j]


@njit(cache=True, error_model="numpy", inline="always")
def _unit_rows(flat, net, l, lo, hi):
    """Rows lo..hi of layer l's W in the flat vector ``flat`` (parameters or gradient), C-contiguous."""
    n_in = net.sizes[l]
    return rows_view(flat, net.w_off[l] + lo * n_in, hi - lo, n_in)


_NO, _TR = _mkl.NO_TRANS, _mkl.TRANS


@njit(cache=True, error_model="numpy")
def _product(ta, tb, X, W, alpha, beta, Out):
    """Out ← alpha · op(X) op(W) + beta · Out (op: transposed for _TR) by MKL on the calling thread (the member
    set MKL's thread count there to 1). Every operand here is a block of rows or columns of a C-contiguous
    array (unit stride along a row), and ``pays`` checked that sizes fit MKL's 32-bit integers."""
    m, n = Out.shape
    if m == 0 or n == 0:
        return
    k = X.shape[0] if ta == _TR else X.shape[1]
    _mkl.gemm(ta, tb, m, n, k, alpha, X, _rows_ok(X), W, _rows_ok(W), beta, Out, _rows_ok(Out))

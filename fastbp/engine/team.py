"""Two threads share each batch of a small network's training: a team.

A network whose products run on one core (the compiled loops, or OpenBLAS on the calling thread) leaves
the second core idle. Cutting each batch into two row blocks and running their forward and backward
passes on two threads halves that work, but a parallel region per batch costs more than a small batch
takes: the pool's sleeping thread has to be woken each time (docs/performance.md). A team instead is one
parallel region of two threads for a whole call of epochs, each running ``_member``, and they take the
call's tasks in order:

- per batch, tasks ``3q`` and ``3q + 1``: row block 0 and 1 of batch q (its first half of rows, then the
  rest): gather, forward pass, cost and output δ, backward pass into the block's own gradient;
- task ``3q + 2``: the batch's end: the two gradients summed in a fixed order, the cost judged and the
  optimizer's update (``kernels``' helpers, as ``_train_epoch`` runs them), and after an epoch's last
  batch what ``_train_epochs`` does after an epoch (outputs, the stopping rule).

A thread claims the next task (a compare-and-swap on a shared counter) only once every task it depends on
is done (a second counter: a block needs the batch before it finished, the batch's end needs both
blocks), so it never waits holding a task: a thread that finds itself waiting longer than a task takes
(its partner descheduled, another process on the other core) leaves, and the partner, who holds the task
waited for, does the rest alone. A thread that never arrives (the pool busy) leaves the whole call to the
other. Each task's arithmetic does not depend on the thread that runs it, so the result does not depend
on the threads: bitwise the same on one thread and two (tests). It differs from ``_train_epochs`` only in
the order of each batch's gradient sums (two partial sums added), within rounding.

Not for dropout (its masks are drawn per row of the whole batch) or several networks at once (a
population already has a core per network); policy.py decides where a team pays.
"""

import math
from typing import NamedTuple

import numpy as np
from numba import njit, prange

from . import plan
from .._numba.atomic import compare_and_swap, fetch_add, load_acquire, spin_pause
from .kernels import (_NO_DROP, _SQ_LANES, _backward, _batch_cost, _end_epoch, _forward, _gather_rows, _keep,
                      _l2_in_update, _loss_delta, _member_work, _put_back, _sum_sq_weights, _update_decayed,
                      _with_engine)
from .update import _update
from ..specs.schedules import _scheduled_lr

__all__ = ["Team", "team_buffers", "train_epochs"]

MEMBERS = 2
# Counters (int64), each on a cache line of its own: the next task to claim, the tasks done, a stop.
_TICKET, _DONE, _STOPPED, _COUNTERS = 0, 8, 16, 24
# Shared float64 values: per block (cost, weight right) at 2k, 2k + 1; the batch's total weight; the running
# epoch's summed cost and weight right, the L2 penalty's Σ‖W‖² (-1: not known), the learning rate; the call's
# result (epochs completed, non-finite batch or -1, whether the rule stopped).
_WSUM, _LOSS, _RIGHT, _SQ, _LR, _RAN, _BAD, _HALT, _VALUES = 4, 5, 6, 7, 8, 9, 10, 11, 12
# Pause hints a thread spins through waiting for its partner's task before it leaves the team: far longer
# than a small network's task, far shorter than a time slice of the scheduler.
_PATIENCE = 1 << 14


class Team(NamedTuple):
    """A team's buffers: ``works``, each block's work buffers (``plan.work`` with ``lead=(2,)``: gathered rows,
    z, a, δ and gradient per block), and the shared ``counters`` (int64) and ``values`` (float64)."""

    works: plan.Work
    counters: np.ndarray
    values: np.ndarray


def team_buffers(sizes, n_params, dtype, cap, weights):
    """A Team for batches of up to ``cap`` rows of a network of widths ``sizes`` (``weights``: with sample weights)."""
    half = (cap + 1) // 2
    return Team(plan.work(sizes, n_params, dtype, half, batch=True, grad=True, lead=(MEMBERS,), weights=weights),
                np.zeros(_COUNTERS, np.int64), np.zeros(_VALUES))


def train_epochs(params, state, data, epochs, net, work, rule, rec, team):
    """``kernels._train_epochs`` (the same arguments and results) by a team: ``work`` gives the summed
    gradient's buffer, ``team`` the rest (``team_buffers``); ``rule`` has no dropout."""
    # Set and read here, not in the compiled function around its parallel loop: Numba forwarded a value
    # stored before the loop to a load after it, missing the threads' stores in between.
    team.counters[:] = 0
    team.values[[_RAN, _BAD, _HALT]] = epochs.perms.shape[0], -1.0, 0.0
    _train_epochs(params, state, data, epochs, _with_engine(net, None), net.mm, work.grad, rule, rec, team.works,
                  team.counters, team.values)
    return int(team.values[_RAN]), int(team.values[_BAD]), bool(team.values[_HALT])


def kernel(net):
    """(the compiled function ``train_epochs`` calls, the engine's argument of it) for the Net ``net``."""
    return _train_epochs, net.mm


# The members run in a prange of two on Numba's pool, whose threads wait on their own cores between
# parallel regions (a helper thread of fastbp's own, woken per call, was often put on the waker's core
# and the two spun there; docs/performance.md). Numba's parallel loops take a namedtuple across their
# boundary only where none of its fields is one: the engine goes apart from the Net, the Team's buffers
# apart from it.
@njit(cache=True, error_model="numpy", parallel=True)
def _train_epochs(params, state, data, epochs, net, mm, grad, rule, rec, works, counters, values):
    for k in prange(MEMBERS):
        _member(params, state, data, epochs, _with_engine(net, mm), grad, rule, rec, works, counters, values)


# Its tasks are inlined into it in Numba's IR (Numba compiles each called function as a library of its own
# and generates its machine code again inside its caller: docs/performance.md, first compile); it is not
# inlined into the parallel loop, where Numba's parallel passes slowed digits' epochs by 70 %.
@njit(cache=True, error_model="numpy")
def _member(params, state, data, epochs, net, grad, rule, rec, works, counters, values):
    """One thread of the team: claims tasks in order until none is left, the call stops, or it has waited
    too long for its partner (see the module's docstring)."""
    perms = epochs.perms
    n_batches = (perms.shape[1] + epochs.batch_size - 1) // epochs.batch_size
    total = 3 * perms.shape[0] * n_batches
    acc = np.empty(_SQ_LANES)
    waited = 0
    while load_acquire(counters, _STOPPED) == 0:
        t = load_acquire(counters, _TICKET)
        if t >= total:
            break
        if load_acquire(counters, _DONE) < t - t % 3 + (t % 3 == 2) * 2:
            spin_pause()
            waited += 1
            if waited > _PATIENCE:
                break
            continue
        if not compare_and_swap(counters, _TICKET, t, t + 1):
            continue
        waited = 0
        q = t // 3
        if t % 3 < 2:
            _block(q, t % 3, params, data, epochs, net, rule, works, values)
        elif _end_batch(q, params, state, data, epochs, net, grad, rule, rec, works, values, acc):
            fetch_add(counters, _STOPPED, 1)
        fetch_add(counters, _DONE, 1)


@njit(cache=True, error_model="numpy", inline="always")
def _rows(n, q, n_batches, batch_size):
    """(epoch, batch, first row, rows) of batch q of a call over orders of n rows."""
    b = q % n_batches
    start = b * batch_size
    return q // n_batches, b, start, min(batch_size, n - start)


@njit(cache=True, error_model="numpy", inline="always")
def _block(q, k, params, data, epochs, net, rule, works, values):
    """Row block k of batch q: its rows gathered, forward pass, cost and output δ (the batch's weighted mean)
    and backward pass into block k's gradient, the L2 penalty's gradient added in block 0 where the update
    does not add it; (Σ w C, weight right) into the shared values, block 0 also the batch's total weight."""
    X, Y, sw = data
    perms, batch_size = epochs.perms, epochs.batch_size
    n_batches = (perms.shape[1] + batch_size - 1) // batch_size
    e, _, start, rows = _rows(perms.shape[1], q, n_batches, batch_size)
    idx = perms[e, start : start + rows]
    half = (rows + 1) // 2
    r0, r1 = (0, half) if k == 0 else (half, rows)
    weighted = sw.shape[0] > 0
    wsum = float(rows)
    if weighted:  # the whole batch's, the same sum in both blocks
        wsum = 0.0
        for i in range(rows):
            wsum += sw[idx[i]]
    if k == 0:
        values[_WSUM] = wsum
    values[2 * k] = 0.0
    values[2 * k + 1] = 0.0
    if wsum == 0.0 or r1 == r0:  # nothing to learn from (the batch's end skips it), or an empty block
        return
    work = _member_work(works, k)
    m = r1 - r0
    A0, Y0 = work.Xb[:m], work.Yb[:m]
    w0 = work.wb[:m] if weighted else work.wb[:0]
    if weighted:
        for i in range(m):
            w0[i] = sw[idx[r0 + i]]
    _gather_rows(X, Y, idx[r0:r1], A0, Y0)
    _forward(params, A0, net, work)
    c, ok = _loss_delta(Y0, net, work, m, 1.0 / wsum, w0)
    decay = rule.l2 / wsum if k == 0 and not _l2_in_update(rule) else 0.0
    _backward(params, work.grad, A0, net, work, A0[:0], want_param_grad=True, want_input_grad=False, descend=False,
              lr=0.0, decay=decay, drop=_NO_DROP)
    values[2 * k] = c
    values[2 * k + 1] = ok


@njit(cache=True, error_model="numpy", inline="always")
def _end_batch(q, params, state, data, epochs, net, grad, rule, rec, works, values, acc):
    """The end of batch q (both blocks done): as ``_train_epoch`` ends a batch and ``_train_epochs`` an epoch;
    whether the call stops here (a non-finite cost, the epoch undone; or the stopping rule)."""
    sw, perms, batch_size = data.sw, epochs.perms, epochs.batch_size
    n = perms.shape[1]
    n_batches = (n + batch_size - 1) // batch_size
    e, b, _, rows = _rows(n, q, n_batches, batch_size)
    if b == 0:
        _keep(params, state, rec.saved)
        values[_LOSS] = 0.0
        values[_RIGHT] = 0.0
        values[_SQ] = -1.0
        values[_LR] = _scheduled_lr(rule.sched_code, rule.sched_p, rule.lr, epochs.epoch0 + e)
    wsum = values[_WSUM]
    if wsum != 0.0:
        sq = values[_SQ]
        if rule.l2 != 0.0 and sq < 0.0:
            sq = _sum_sq_weights(params, net, acc)
        c, ok = _batch_cost(values[0] + values[2], values[1] + values[3], rows, wsum, sw.shape[0] > 0, rule.l2,
                             sq)
        if not math.isfinite(c):
            _put_back(rec.saved, params, state)
            rec.loss[e] = values[_LOSS]
            values[_RAN] = e
            values[_BAD] = b
            return True
        values[_LOSS] += c
        values[_RIGHT] += ok
        step = epochs.step0 + e * n_batches + b
        if rule.per_step:
            values[_LR] = _scheduled_lr(rule.sched_code, rule.sched_p, rule.lr, step)
        g0, g1 = works.grad[0], works.grad[1]
        if rows > 1:
            for i in range(grad.shape[0]):
                grad[i] = g0[i] + g1[i]
        else:
            for i in range(grad.shape[0]):
                grad[i] = g0[i]
        values[_SQ] = -1.0
        if _l2_in_update(rule):
            values[_SQ] = _update_decayed(params, grad, state, net, rule, values[_LR], step + 1, rule.l2 / wsum, acc)
        else:
            _update(params, grad, state, rule.opt_code, rule.hyper, values[_LR], step + 1, rule.clip, net.mm)
    if b == n_batches - 1 and _end_epoch(e, values[_LOSS], values[_RIGHT], values[_LR], n, params, rec):
        values[_RAN] = e + 1
        values[_HALT] = 1.0
        return True
    return False

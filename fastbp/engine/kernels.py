"""Compiled forward pass, reverse-mode backward pass and the fused training epoch.

Everything here sees arrays, scalars and the three namedtuples of plan.py:

- ``params``/``grad``: the flat vectors (see layout.py); W^l is viewed as
  (n_l, n_{l-1}) row-major, so the batch forward is Z = A W^T (+ b);
- ``net`` (``plan.Net``): the layout, each layer's activation code and
  parameters, the cost, and ``mm``, the engine the products run on: None (one
  core, the compiled loops), ``Loops(threads)`` or ``Blas(smallest)`` (products.py);
- ``work`` (``plan.Work``): buffers made once per call and reused by every
  batch; ``Zb``, ``Ab``, ``Db`` hold z, a and δ = ∂C/∂z of every layer for up
  to ``work.cap`` rows, layer after layer;
- ``rule`` (``plan.Rule``): the optimizer, its hyperparameters and the schedule.

Rows are samples: a batch is a (rows, n_l) block per layer, and the three
products per layer (forward, weight gradient, input gradient) go through
products.py: BLAS on views for large ones, compiled loops for small ones.
"""

import math

import numpy as np
from numba import njit, prange

from .._numba.prefetch import prefetch_rows
from .._numba.views import flat_view, rows_view
from ..specs.activations import _act_backward, _activate
from ..common.checks import all_finite
from ..specs.losses import _output_delta
from .products import _blas_folds, fold_descent, matmul_nn, matmul_nt, matmul_tn
from ..specs.optimizers import OPT_ADAMW, _plain_descent, _sgd_step, _slot
from .update import _update, _update_part
from .plan import Net, Rule, Work
from ..specs.schedules import _scheduled_lr


@njit(cache=True, error_model="numpy", inline="always")
def _block(buf, sizes, l, cap, rows):
    """The (rows, n_{l+1}) block of layer l (0-based) in a per-layer work buffer."""
    return rows_view(buf, _block_offset(sizes, l, cap), rows, sizes[l + 1])


@njit(cache=True, error_model="numpy", inline="always")
def _block_offset(sizes, l, cap):
    """Where layer l's block starts in a per-layer work buffer of ``cap`` rows."""
    off = 0
    for k in range(1, l + 1):
        off += sizes[k]
    return off * cap


@njit(cache=True, error_model="numpy", inline="always")
def _weights(params, net, l):
    n_in = net.sizes[l]
    n_out = net.sizes[l + 1]
    return rows_view(params, net.w_off[l], n_out, n_in)


@njit(cache=True, error_model="numpy", inline="always")
def _biases(params, net, l):
    return params[net.b_off[l] : net.b_off[l] + net.sizes[l + 1]]


@njit(cache=True, error_model="numpy", inline="always")
def _input_block(buf, sizes, l, cap, rows):
    """The (rows, n_l) block of the input of layer l (0-based: l = 0 is the network's input) in a
    dropout buffer (work.Mb, work.Tb)."""
    off = 0
    for k in range(l):
        off += sizes[k]
    off *= cap
    return rows_view(buf, off, rows, sizes[l])


# splitmix64's constants (Steele, Lea & Flood 2014): a counter-based generator, so a mask depends
# only on its key and counters, not on threads or on how many numbers were drawn before.
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_U53 = 1.0 / 9007199254740992.0  # 2**-53


@njit(cache=True, error_model="numpy")
def _mix(z):
    """splitmix64's finaliser: a bijection of uint64 whose output bits each depend on all input bits."""
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@njit(cache=True, error_model="numpy")
def _dropout_stream(key, epoch, batch):
    """The stream of the masks of one batch of one epoch (both from 0) of the network of dropout ``key``."""
    s = _mix(key + _GOLDEN * np.uint64(epoch + 1))
    return _mix(s + _GOLDEN * np.uint64(batch + 1))


@njit(cache=True, error_model="numpy")
def _layer_stream(stream, layer):
    """The stream of the masks of the input of layer ``layer`` (0: the network's input) in a batch's stream."""
    return _mix(stream + _GOLDEN * np.uint64(layer + 1))


@njit(cache=True, error_model="numpy")
def _dropout(a, p, stream, M, T):
    """Inverted dropout of the activations ``a`` (rows, n) at rate p: unit j of row i is kept when the
    uniform number of counter i·n + j of ``stream`` is ≥ p; M gets each unit's factor (0, or
    1/(1-p) if kept) and T = a ⊙ M, what the next layer takes."""
    n = a.shape[1]
    keep = M.dtype.type(1.0 / (1.0 - p))
    zero = M.dtype.type(0.0)
    for i in range(a.shape[0]):
        c = np.uint64(i * n)
        for j in range(n):
            u = float(_mix(stream + _GOLDEN * (c + np.uint64(j))) >> np.uint64(11)) * _U53
            m = keep if u >= p else zero
            M[i, j] = m
            T[i, j] = a[i, j] * m


def dropout_mask(key, epoch, batch, layer, rows, n, p):
    """The mask (0 or 1/(1-p), float64, (rows, n)) that training draws for the input of layer ``layer``
    (0: the network's input) in batch ``batch`` of epoch ``epoch`` (both from 0) of a network whose
    dropout key is ``key``: what tests compare with a written-out reference."""
    M = np.empty((rows, n))
    _mask_into(M, np.uint64(key), epoch, batch, layer, p)
    return M


@njit(cache=True, error_model="numpy")
def _mask_into(M, key, epoch, batch, layer, p):
    # All in compiled code: a uint64 that comes back to Python and goes in again is typed int64.
    _dropout(np.ones(M.shape), p, _layer_stream(_dropout_stream(key, epoch, batch), layer), M, np.empty(M.shape))


# The dropout rates of a pass without dropout.
_NO_DROP = np.zeros(0)


@njit(cache=True, error_model="numpy", inline="always")
def _dropping(work, drop, l):
    """Whether the input of layer l is dropped out (training with masks and a rate > 0)."""
    return work.Mb.shape[0] > 0 and drop.shape[0] > l and drop[l] > 0.0


@njit(cache=True, error_model="numpy")
def _forward(params, A0, net, work):
    """z^l = W^l a^{l-1} + b^l, a^l = f_l(z^l) for every layer; returns a^L (a view into work.Ab)."""
    return _forward_dropout(params, A0, net, work, _NO_DROP, np.uint64(0))


@njit(cache=True, error_model="numpy", inline="always")
def _forward_dropout(params, A0, net, work, drop, stream):
    """``_forward`` with the input of each layer l dropped out at rate ``drop[l]`` (where > 0 and the work
    has mask buffers), its masks drawn from ``stream`` (``_dropout_stream`` of the epoch and batch)."""
    rows = A0.shape[0]
    a = A0
    for l in range(net.sizes.shape[0] - 1):
        if _dropping(work, drop, l):
            M = _input_block(work.Mb, net.sizes, l, work.cap, rows)
            T = _input_block(work.Tb, net.sizes, l, work.cap, rows)
            _dropout(a, drop[l], _layer_stream(stream, l), M, T)
            a = T
        Z = _block(work.Zb, net.sizes, l, work.cap, rows)
        A = _block(work.Ab, net.sizes, l, work.cap, rows)
        matmul_nt(a, _weights(params, net, l), Z, net.mm)
        _activate(Z, A, _biases(params, net, l), net.acts[l], net.act_p[l, 0], net.act_p[l, 1])
        a = A
    return a


@njit(cache=True, error_model="numpy")
def _bias_grad(D, gb):
    """∂C/∂b = Σ over the batch's rows of δ, into gb."""
    gb[:] = 0
    for i in range(D.shape[0]):
        for j in range(D.shape[1]):
            gb[j] += D[i, j]


@njit(cache=True, error_model="numpy")
def _descend_layer(D, a_prev, W, gW, lr, mm):
    """W ← W - lr · Dᵀ a_prev: folded into one BLAS call where ``mm`` gives the product to BLAS, else
    gW = Dᵀ a_prev, then the update's own step; ``gW`` is work space of W's shape."""
    if not fold_descent(D, a_prev, W, lr, mm):
        matmul_tn(D, a_prev, gW, mm)
        _sgd_step(flat_view(W), flat_view(gW), lr)


@njit(cache=True, error_model="numpy")
def _backward(params, grad, A0, net, work, dA0, want_param_grad, want_input_grad, descend, lr, decay, drop):
    """Reverse mode from δ^L (already in work.Db) down to the input.

    Per layer: ∂C/∂a^{l-1} = δ W, which times f'_{l-1}(z) is the δ of the
    layer below (the paper's chain rule), ∂C/∂W = δᵀ a^{l-1} and ∂C/∂b = Σ_rows δ.
    With ``descend``, each layer then takes its gradient-descent step
    θ ← θ - lr ∇C right away (after δ W has used the old W), folded into the
    weight-gradient product where BLAS runs it; ``grad`` is then work space.
    ``decay`` adds the L2 penalty's gradient decay · W to ∂C/∂W (0: none); with ``descend``, W is
    first scaled by 1 - lr · decay, so that the folded step is W - lr (Dᵀ a + decay W).
    Where ``drop`` dropped a layer's input out (see ``_forward_dropout``), the layer saw the masked
    activations: its weight gradient takes them, and δ W goes through the mask to the layer below.
    """
    rows = A0.shape[0]
    sizes, cap, mm = net.sizes, work.cap, net.mm
    for l in range(sizes.shape[0] - 2, -1, -1):
        D = _block(work.Db, sizes, l, cap, rows)
        W = _weights(params, net, l)
        if l > 0:
            Dp = _block(work.Db, sizes, l - 1, cap, rows)
            matmul_nn(D, W, Dp, mm)
            if _dropping(work, drop, l):
                _scale_by(Dp, _input_block(work.Mb, sizes, l, cap, rows))
            _act_backward(Dp, _block(work.Zb, sizes, l - 1, cap, rows), _block(work.Ab, sizes, l - 1, cap, rows),
                          net.acts[l - 1], net.act_p[l - 1, 0], net.act_p[l - 1, 1])
        elif want_input_grad:
            matmul_nn(D, W, dA0, mm)
        if want_param_grad:
            a_prev = A0 if l == 0 else _block(work.Ab, sizes, l - 1, cap, rows)
            if _dropping(work, drop, l):
                a_prev = _input_block(work.Tb, sizes, l, cap, rows)
            gW = _weights(grad, net, l)
            gb = _biases(grad, net, l)
            _bias_grad(D, gb)
            if descend:
                if decay != 0.0:
                    _scale_weights(W, 1.0 - lr * decay)
                _descend_layer(D, a_prev, W, gW, lr, mm)
                _sgd_step(_biases(params, net, l), gb, lr)
            else:
                matmul_tn(D, a_prev, gW, mm)
                if decay != 0.0:
                    _add_decay(gW, W, decay)


@njit(cache=True, error_model="numpy")
def _scale_by(D, M):
    """D ⊙= M."""
    for i in range(D.shape[0]):
        for j in range(D.shape[1]):
            D[i, j] *= M[i, j]


@njit(cache=True, error_model="numpy")
def _scale_weights(W, f):
    """W ← f · W (the L2 penalty's shrinking before a folded descent step)."""
    c = W.dtype.type(f)
    for i in range(W.shape[0]):
        for j in range(W.shape[1]):
            W[i, j] *= c


@njit(cache=True, error_model="numpy")
def _add_decay(gW, W, decay):
    """gW += decay · W: the gradient of the L2 penalty (decay/2)·‖W‖²."""
    d = gW.dtype.type(decay)
    for i in range(W.shape[0]):
        for j in range(W.shape[1]):
            gW[i, j] += d * W[i, j]


@njit(cache=True, error_model="numpy")
def _sum_sq_weights(params, net, acc):
    """Σ‖W‖² over the layers' weights (not the biases), in float64; ``acc``: ``_sum_sq``'s scratch."""
    total = 0.0
    for l in range(net.sizes.shape[0] - 1):
        off = net.w_off[l]
        total += _sum_sq(params[off : off + net.sizes[l + 1] * net.sizes[l]], acc)
    return total


_SQ_LANES = 64


@njit(cache=True, error_model="numpy")
def _sum_sq(v, acc):
    """Σ v², in float64, over 64 running sums kept in ``acc`` (float64, _SQ_LANES; made once per call of
    the epoch, as this runs per batch): with one sum (a chain of dependent additions) or eight, this pass
    (the L2 penalty's cost) did not vectorise, and took 3× as long."""
    acc[:] = 0.0
    n = v.shape[0] - v.shape[0] % _SQ_LANES
    for i in range(0, n, _SQ_LANES):
        for k in range(_SQ_LANES):
            x = float(v[i + k])
            acc[k] += x * x
    total = acc.sum()
    for i in range(n, v.shape[0]):
        total += float(v[i]) * float(v[i])
    return total


@njit(cache=True, error_model="numpy", inline="always")
def _loss_delta(Y, net, work, rows, scale, w):
    """Output delta of the last layer into work.Db for the target rows Y of weights w (empty: all 1);
    returns (weighted summed cost, weight of the rows classified right)."""
    L = net.sizes.shape[0] - 1
    return _output_delta(_block(work.Zb, net.sizes, L - 1, work.cap, rows),
                         _block(work.Ab, net.sizes, L - 1, work.cap, rows), Y,
                         _block(work.Db, net.sizes, L - 1, work.cap, rows), net.loss_code, net.acts[L - 1],
                         net.act_p[L - 1, 0], net.act_p[L - 1, 1], scale, net.acc_mode, w)


# Inlined into its callers (_train_epochs, _train_population) in Numba's IR: Numba compiles each called
# function as a whole library of its own and generates its machine code again inside every caller, and
# the epoch is the largest (docs/performance.md, first compile).
@njit(cache=True, error_model="numpy", inline="always")
def _train_epoch(params, state, X, Y, sw, perm, batch_size, epoch_idx, step0, net, work, rule):
    """One epoch of mini-batch training over the rows ``perm`` of X, Y with sample weights ``sw``
    (float64; empty: none).

    Each batch: gather its rows of X, Y and sw into work.Xb, work.Yb and work.wb,
    forward, cost and output delta (the weighted mean over the batch, Σ w C / Σ w,
    plus the L2 penalty (l2/2)·Σ‖W‖² / Σ w), backward, then the
    optimizer's update with the scheduled learning rate (per step: from the
    update count ``step0 + b``; per epoch: from ``epoch_idx``); plain SGD on
    BLAS takes its step inside the backward pass instead (see ``_backward``).
    ``state`` is the optimizer's (slots, n_params) state. Returns (Σ over
    batches of rows × the batch's cost, Σ over batches of rows × the batch's
    weighted accuracy: divided by the epoch's rows, the mean cost and accuracy as
    scikit-learn's MLP reports them, and without weights the summed cost and the
    count of rows right; the index of the first batch whose cost was not finite
    or -1; the last learning rate used). On a non-finite cost the epoch stops
    before that batch's update; a batch whose weights are all zero is skipped.
    """
    n = perm.shape[0]
    loss_sum = 0.0
    correct = 0.0
    weighted = sw.shape[0] > 0
    lr = _scheduled_lr(rule.sched_code, rule.sched_p, rule.lr, epoch_idx)
    # Plain gradient descent steps each layer inside the backward pass where BLAS runs the products.
    descend = _blas_folds(net.mm) and _plain_descent(rule.opt_code, rule.hyper, rule.clip)
    fused = not descend and _l2_in_update(rule)
    sq = -1.0  # Σ‖W‖² of the current weights where the last update gave it, else -1
    acc = np.empty(_SQ_LANES)  # its running sums
    dummy = work.Xb[:0]
    for bi in range((n + batch_size - 1) // batch_size):
        start = bi * batch_size
        rows = min(batch_size, n - start)
        idx = perm[start : start + rows]
        A0 = work.Xb[:rows]
        Y0 = work.Yb[:rows]
        w0 = work.wb[:rows]
        wsum = float(rows)
        if weighted:
            wsum = 0.0
            for i in range(rows):
                w0[i] = sw[idx[i]]
                wsum += w0[i]
            if wsum == 0.0:  # nothing to learn from: no cost, no update
                continue
        _gather_rows(X, Y, idx, A0, Y0)
        if start + rows < n:  # the next batch's rows start loading while this one computes
            nxt = perm[start + rows : start + rows + batch_size]
            prefetch_rows(X, nxt)
            prefetch_rows(Y, nxt)
        _forward_dropout(params, A0, net, work, rule.drop, _dropout_stream(rule.drop_key, epoch_idx, bi))
        c, ok = _loss_delta(Y0, net, work, rows, 1.0 / wsum, w0)
        decay = rule.l2 / wsum
        if rule.l2 != 0.0 and sq < 0.0:
            sq = _sum_sq_weights(params, net, acc)
        c, ok = _batch_cost(c, ok, rows, wsum, weighted, rule.l2, sq)
        if not math.isfinite(c):
            return loss_sum, correct, bi, lr
        loss_sum += c
        correct += ok
        if rule.per_step:
            lr = _scheduled_lr(rule.sched_code, rule.sched_p, rule.lr, step0 + bi)
        _backward(params, work.grad, A0, net, work, dummy, want_param_grad=True, want_input_grad=False,
                  descend=descend, lr=lr, decay=0.0 if fused else decay, drop=rule.drop)
        sq = -1.0
        if fused:
            sq = _update_decayed(params, work.grad, state, net, rule, lr, step0 + bi + 1, decay, acc)
        elif not descend:
            _update(params, work.grad, state, rule.opt_code, rule.hyper, lr, step0 + bi + 1, rule.clip, net.mm)
    return loss_sum, correct, -1, lr


@njit(cache=True, error_model="numpy")
def _gather_rows(X, Y, idx, A0, Y0):
    """Rows ``idx`` of X and Y into A0 and Y0: the targets with the inputs, so that their cache misses overlap."""
    for i in range(idx.shape[0]):
        r = idx[i]
        for j in range(Y.shape[1]):
            Y0[i, j] = Y[r, j]
        for j in range(X.shape[1]):
            A0[i, j] = X[r, j]


@njit(cache=True, error_model="numpy", inline="always")
def _l2_in_update(rule):
    """Whether the L2 penalty's gradient is added where the update reads the gradient, and its cost taken from
    the update's Σ‖W‖² (``_update_decayed``), where no step is folded into a product: not for AdamW (its update
    shrinks θ before it reads it) nor under a clip bound (which needs the full gradient first)."""
    return rule.l2 != 0.0 and rule.clip <= 0.0 and rule.opt_code != OPT_ADAMW


@njit(cache=True, error_model="numpy")
def _batch_cost(c, ok, rows, wsum, weighted, l2, sq):
    """A batch's cost and weight right as its epoch sums them, from its Σ w C and weight right: the L2
    penalty (l2/2)·Σ‖W‖² (``sq``) added to the cost, and with sample weights the batch's weighted mean
    counted for its ``rows`` (without, the sums as they are: a mean over the epoch's rows follows)."""
    if l2 != 0.0:
        c += 0.5 * l2 * sq
    if weighted:
        c *= rows / wsum
        ok *= rows / wsum
    return c, ok


@njit(cache=True, error_model="numpy")
def _update_decayed(params, grad, state, net, rule, lr, step, decay, acc):
    """The optimizer's update (no clipping) with the L2 penalty's gradient decay · W added to each weight
    as the rule reads it, layer by layer, not in a pass of its own; returns Σ‖W‖² of the new weights (the
    next batch's penalty), each layer's taken right after its update while its weights are in cache, in
    ``_sum_sq_weights``' order (so the same bits)."""
    return _update_units(params, grad, state, net, rule, lr, step, decay, acc, 0, 1, net.mm)


@njit(cache=True, error_model="numpy", inline="always")
def _unit_part(sizes, l, k, T, itemsize):
    """Part k of T of layer l's units, (first, end). A hidden layer's parts are cut on 64-byte lines of a row of
    its z (two threads writing their columns of it never share a line), the last part taking the rest; the
    output layer's evenly (its z is written by rows, its rows of W are lines apart)."""
    n = sizes[l + 1]
    line = max(1, 64 // itemsize) if l < sizes.shape[0] - 2 else 1
    lo = (k * n // T) // line * line
    hi = n if k == T - 1 else ((k + 1) * n // T) // line * line
    return lo, hi


@njit(cache=True, error_model="numpy", inline="always")
def _update_units(params, grad, state, net, rule, lr, step, decay, acc, k, T, mm):
    """``_update_decayed`` of part k of T of every layer's units (``_unit_part``: their rows of W and
    entries of b, and the optimizer state's), split over ``mm``'s threads as ``_update_part`` splits (None:
    one core); returns Σ‖W‖² of those rows where the rule has an L2 penalty (else 0)."""
    s0 = _slot(state, 0, params)
    s1 = _slot(state, 1, params)
    sq = 0.0
    for l in range(net.sizes.shape[0] - 1):
        lo, hi = _unit_part(net.sizes, l, k, T, params.itemsize)
        a = net.w_off[l] + lo * net.sizes[l]
        b = net.w_off[l] + hi * net.sizes[l]
        _update_part(params[a:b], grad[a:b], s0[a:b], s1[a:b], rule.opt_code, rule.hyper, lr, step, 1.0, decay, mm)
        if rule.l2 != 0.0:
            sq += _sum_sq(params[a:b], acc)
        a = net.b_off[l] + lo
        b = net.b_off[l] + hi
        _update_part(params[a:b], grad[a:b], s0[a:b], s1[a:b], rule.opt_code, rule.hyper, lr, step, 1.0, 0.0, mm)
    return sq


# The stopping rule of ``_train_epochs``: a float64 vector of these fields (training/single.py fills it from an
# EarlyStopping and reads it back). MONITOR: 0 none, 1 the epoch's mean cost, 2 its accuracy; MAXIMISE: 1 if
# a larger value is better; BEST: the best value so far (NaN: none yet); WAIT: epochs since the last
# improvement by more than MIN_DELTA; ANY: 1 if the best value follows every improvement (scikit-learn's rule).
STOP_MONITOR, STOP_MAXIMISE, STOP_PATIENCE, STOP_MIN_DELTA, STOP_BEST, STOP_WAIT, STOP_ANY, STOP_SIZE = range(8)


@njit(cache=True, error_model="numpy")
def _judge(stop, value):
    """EarlyStopping.update inside compiled code: records ``value`` in ``stop``; returns (is_best, should_stop)."""
    best = stop[STOP_BEST]
    if stop[STOP_MAXIMISE] != 0.0:
        improved = math.isnan(best) or value > best + stop[STOP_MIN_DELTA]
        better = value > best
    else:
        improved = math.isnan(best) or value < best - stop[STOP_MIN_DELTA]
        better = value < best
    if improved:
        stop[STOP_BEST] = value
        stop[STOP_WAIT] = 0.0
        return True, False
    if stop[STOP_ANY] != 0.0 and better:
        stop[STOP_BEST] = value
    stop[STOP_WAIT] += 1.0
    return False, stop[STOP_WAIT] > stop[STOP_PATIENCE]


@njit(cache=True, error_model="numpy")
def _train_epochs(params, state, data, epochs, net, work, rule, rec):
    """Epochs ``epochs.epoch0``, ``epoch0 + 1``, ... of ``_train_epoch``, one per row of ``epochs.perms``, in one
    call (what ``training.fit`` runs when nothing needs Python between epochs), each continuing the update count
    where the last stopped: bitwise the parameters of the same epochs run one call at a time.

    After each epoch the stopping rule ``rec.stop`` (see STOP_*; MONITOR 0: none) judges its mean cost or
    accuracy; where it says stop, the call returns after that epoch. ``rec.saved`` (the size of params and
    of state, flattened) keeps the start of the running epoch: an epoch whose cost stops being finite is
    undone, parameters and optimizer state put back. ``rec.best`` (params' size, or empty) receives the
    parameters of each epoch the rule calls best. Per epoch run, ``rec.loss``, ``rec.correct``, ``rec.lr``
    get what ``_train_epoch`` returns and ``rec.chosen`` whether the rule called it best (an undone epoch:
    ``rec.loss`` only, its cost before the non-finite batch).

    Returns (epochs completed, the index of the non-finite batch of the next epoch or -1, whether the rule
    stopped training).
    """
    perms, batch_size = epochs.perms, epochs.batch_size
    n = perms.shape[1]
    n_batches = (n + batch_size - 1) // batch_size
    for e in range(perms.shape[0]):
        _keep(params, state, rec.saved)
        loss, correct, bad, lr = _train_epoch(params, state, data.X, data.Y, data.sw, perms[e], batch_size,
                                              epochs.epoch0 + e, epochs.step0 + e * n_batches, net, work, rule)
        if bad >= 0:
            _put_back(rec.saved, params, state)
            rec.loss[e] = loss
            return e, bad, False
        if _end_epoch(e, loss, correct, lr, n, params, rec):
            return e + 1, -1, True
    return perms.shape[0], -1, False


@njit(cache=True, error_model="numpy")
def _keep(params, state, saved):
    """The start of an epoch into ``saved`` (parameters, then the optimizer state flattened): what
    ``_put_back`` returns to where the epoch's cost stops being finite."""
    p = params.shape[0]
    _copy(params, saved[:p])
    _copy(state.reshape(state.size), saved[p:])


@njit(cache=True, error_model="numpy")
def _put_back(saved, params, state):
    p = params.shape[0]
    _copy(saved[:p], params)
    _copy(saved[p:], state.reshape(state.size))


@njit(cache=True, error_model="numpy")
def _end_epoch(e, loss, correct, lr, n, params, rec):
    """After epoch ``e`` of a call (``_train_epochs``) of ``n`` rows: its outputs written, the stopping rule's
    judgement of it (the parameters copied to ``rec.best`` where it is the best); whether the rule says stop."""
    rec.loss[e] = loss
    rec.correct[e] = correct
    rec.lr[e] = lr
    rec.chosen[e] = False
    stop = rec.stop
    if stop[STOP_MONITOR] == 0.0:
        return False
    is_best, halt = _judge(stop, (loss if stop[STOP_MONITOR] == 1.0 else correct) / n)
    rec.chosen[e] = is_best
    if is_best and rec.best.shape[0] > 0:
        _copy(params, rec.best)
    return halt


@njit(cache=True, error_model="numpy")
def _copy(src, dst):
    """dst[:] = src for two vectors of the same length: an element loop, since Numba's array assignment
    compiles its shape-mismatch message (string formatting) into every caller, seconds of first compile."""
    for i in range(dst.shape[0]):
        dst[i] = src[i]


# Numba's parallel loops take a namedtuple across their boundary only when none of its fields is itself a
# namedtuple: the population kernels take the engine apart from ``net`` (whose ``mm`` is None there) and
# build each member's tuples inside the loop.


@njit(cache=True, error_model="numpy")
def _with_engine(net, mm):
    return Net(net.sizes, net.w_off, net.b_off, net.acts, net.act_p, net.loss_code, net.acc_mode, mm)


@njit(cache=True, error_model="numpy")
def _member_work(works, t):
    """Member t's Work from a population's stacked buffers (plan.work with ``lead=(k,)``)."""
    return Work(works.cap, works.Xb[t], works.Yb[t], works.wb[t], works.Zb[t], works.Ab[t], works.Db[t],
                works.grad[t], works.Mb[t], works.Tb[t])


@njit(cache=True, error_model="numpy")
def _member_rule(rules, t):
    """Member t's Rule from a population's Rule of arrays."""
    return Rule(rules.opt_code[t], rules.hyper[t], rules.lr[t], rules.clip[t], rules.sched_code[t],
                rules.sched_p[t], rules.per_step[t], rules.l2[t], rules.drop[t], rules.drop_key[t])


# The population's kernels take plain arrays across their parallel loop: Numba's parfor passes did not carry
# Data and Turn into the inlined epoch (no stores reached the outputs, or the compile failed).
@njit(cache=True, error_model="numpy", parallel=True)
def _train_population(P, S, X, Y, sw, perms, counts, active, batch_size, epoch_idx, steps, net, works, rules, mm,
                      out_loss, out_correct, out_bad, out_lr):
    """One epoch of every active network of a population, side by side: network t is row t of P, S,
    steps, of every array of ``works`` and ``rules`` (a Rule of arrays), and of the outputs; it trains
    on the rows ``perms[t, :counts[t]]`` of X, Y in that order (``plan.Turn`` names these arrays).

    Each network runs the single-network ``_train_epoch`` on one core: ``mm``
    is ``None`` (the compiled loops) or a BLAS engine whose products are too small
    for BLAS's own threads, never a parallel one (see ``policy.population_engine``),
    so a network trained here is bitwise the one ``Network.fit`` gives where
    fit takes the same code.
    """
    for t in prange(P.shape[0]):
        if active[t]:
            loss, correct, bad, lr = _train_epoch(P[t], S[t], X, Y, sw, perms[t, : counts[t]], batch_size, epoch_idx,
                                                  steps[t], _with_engine(net, mm), _member_work(works, t),
                                                  _member_rule(rules, t))
            out_loss[t] = loss
            out_correct[t] = correct
            out_bad[t] = bad
            out_lr[t] = lr


@njit(cache=True, error_model="numpy")
def _full_pass(params, X, Y, sw, net, work, want_param_grad, grad, want_input_grad, dX):
    """Cost (and gradients) over all rows of X with sample weights sw (float64; empty: none), in chunks
    of the buffers' capacity.

    With ``want_param_grad``, ``grad`` receives ∇C of the weighted mean cost
    Σ w C / Σ w over all rows (work.grad is the per-chunk space). With
    ``want_input_grad``, ``dX`` receives each sample's own ∂C_k/∂a^0. Returns
    (Σ w C, weight of the rows classified right).
    """
    n = X.shape[0]
    cap = work.cap
    wsum = float(n)
    if sw.shape[0] > 0:
        wsum = 0.0
        for i in range(n):
            wsum += sw[i]
    scale = 1.0 if want_input_grad else 1.0 / wsum
    if want_param_grad:
        grad[:] = 0
    loss_sum = 0.0
    correct = 0.0
    for start in range(0, n, cap):
        rows = min(cap, n - start)
        A0 = X[start : start + rows]
        _forward(params, A0, net, work)
        c, ok = _loss_delta(Y[start : start + rows], net, work, rows, scale, sw[start : start + rows])
        loss_sum += c
        correct += ok
        if want_param_grad or want_input_grad:
            _backward(params, work.grad, A0, net, work, dX[start : start + rows], want_param_grad=want_param_grad,
                      want_input_grad=want_input_grad, descend=False, lr=0.0, decay=0.0, drop=_NO_DROP)
            if want_param_grad:
                for i in range(grad.shape[0]):
                    grad[i] += work.grad[i]
    return loss_sum, correct


@njit(cache=True, error_model="numpy")
def _predict(params, X, out, net, work, check):
    """out = a^L for every row of X, in chunks of the buffers' capacity, the last layer's activations
    written straight into ``out``. With ``check``, each chunk of X is first checked for NaN and Inf
    (while it comes into the cache for its first product: the caller then skips a pass of its own over
    X); returns the first row of the first chunk that holds one (``out`` is then incomplete), or -1."""
    n = X.shape[0]
    cap = work.cap
    n0 = X.shape[1]
    flat = X.reshape(X.size)
    L = net.sizes.shape[0] - 1
    for start in range(0, n, cap):
        rows = min(cap, n - start)
        if check and not all_finite(flat[start * n0 : (start + rows) * n0]):
            return start
        a = X[start : start + rows]
        for l in range(L):
            Z = _block(work.Zb, net.sizes, l, work.cap, rows)
            A = out[start : start + rows] if l == L - 1 else _block(work.Ab, net.sizes, l, work.cap, rows)
            matmul_nt(a, _weights(params, net, l), Z, net.mm)
            _activate(Z, A, _biases(params, net, l), net.acts[l], net.act_p[l, 0], net.act_p[l, 1])
            a = A
    return -1


@njit(cache=True, error_model="numpy", parallel=True)
def _evaluate_population(P, X, Y, sw, bounds, active, net, works, mm, out_loss, out_correct):
    """Σ w C and the weight of the rows right of every active network of a population on its rows
    ``bounds[t, 0]:bounds[t, 1]`` of the Data ``data`` (row t of P is network t: a cross-validation fold
    validates on its own rows) into ``out_loss[t]``, ``out_correct[t]``; ``net`` and ``mm`` as for
    ``_train_population``."""
    no_grad = np.zeros(0, dtype=P.dtype)
    no_dX = np.zeros((0, X.shape[1]), dtype=P.dtype)
    for t in prange(P.shape[0]):
        if active[t]:
            a, b = bounds[t, 0], bounds[t, 1]
            loss, correct = _full_pass(P[t], X[a:b], Y[a:b], sw[a:b] if sw.shape[0] > 0 else sw[0:0],
                                       _with_engine(net, mm), _member_work(works, t), False, no_grad, False, no_dX)
            out_loss[t] = loss
            out_correct[t] = correct

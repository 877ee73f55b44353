"""Compiled forward pass, reverse-mode backward pass and the fused training epoch.

Everything here sees arrays, scalars and the three namedtuples of plan.py:

- ``params``/``grad``: the flat vectors (see layout.py); W^l is viewed as
  (n_l, n_{l-1}) row-major, so the batch forward is Z = A W^T (+ b);
- ``net`` (``plan.Net``): the layout, each layer's activation code and
  parameters, the cost, and ``mm``, the engine the products run on: None (one
  core, the compiled loops), ``Loops(threads)`` or ``Blas(smallest)`` (matmul.py);
- ``work`` (``plan.Work``): buffers made once per call and reused by every
  batch; ``Zb``, ``Ab``, ``Db`` hold z, a and δ = ∂C/∂z of every layer for up
  to ``work.cap`` rows, layer after layer;
- ``rule`` (``plan.Rule``): the optimizer, its hyperparameters and the schedule.

Rows are samples: a batch is a (rows, n_l) block per layer, and the three
products per layer (forward, weight gradient, input gradient) go through
matmul.py: BLAS on views for large ones, compiled loops for small ones.
"""

import math

import numpy as np
from numba import njit, prange

from .activations import _act_backward, _activate
from .losses import _output_delta
from .matmul import _blas_folds, fold_descent, matmul_nn, matmul_nt, matmul_tn
from .optimizers import _plain_descent, _sgd_step, _update
from .plan import Net, Rule, Work
from .schedules import _scheduled_lr


@njit(cache=True, error_model="numpy")
def _block(buf, sizes, l, cap, rows):
    """The (rows, n_{l+1}) block of layer l (0-based) in a per-layer work buffer."""
    off = 0
    for k in range(1, l + 1):
        off += sizes[k]
    off *= cap
    m = sizes[l + 1]
    return buf[off : off + rows * m].reshape((rows, m))


@njit(cache=True, error_model="numpy")
def _weights(params, net, l):
    n_in = net.sizes[l]
    n_out = net.sizes[l + 1]
    return params[net.w_off[l] : net.w_off[l] + n_out * n_in].reshape((n_out, n_in))


@njit(cache=True, error_model="numpy")
def _biases(params, net, l):
    return params[net.b_off[l] : net.b_off[l] + net.sizes[l + 1]]


@njit(cache=True, error_model="numpy")
def _forward(params, A0, net, work):
    """z^l = W^l a^{l-1} + b^l, a^l = f_l(z^l) for every layer; returns a^L (a view into work.Ab)."""
    rows = A0.shape[0]
    a = A0
    for l in range(net.sizes.shape[0] - 1):
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
        _sgd_step(W.reshape(W.size), gW.reshape(gW.size), lr)


@njit(cache=True, error_model="numpy")
def _backward(params, grad, A0, net, work, dA0, want_param_grad, want_input_grad, descend, lr):
    """Reverse mode from δ^L (already in work.Db) down to the input.

    Per layer: ∂C/∂a^{l-1} = δ W, which times f'_{l-1}(z) is the δ of the
    layer below (the paper's chain rule), ∂C/∂W = δᵀ a^{l-1} and ∂C/∂b = Σ_rows δ.
    With ``descend``, each layer then takes its gradient-descent step
    θ ← θ - lr ∇C right away (after δ W has used the old W), folded into the
    weight-gradient product where BLAS runs it; ``grad`` is then work space.
    """
    rows = A0.shape[0]
    sizes, cap, mm = net.sizes, work.cap, net.mm
    for l in range(sizes.shape[0] - 2, -1, -1):
        D = _block(work.Db, sizes, l, cap, rows)
        W = _weights(params, net, l)
        if l > 0:
            Dp = _block(work.Db, sizes, l - 1, cap, rows)
            matmul_nn(D, W, Dp, mm)
            _act_backward(Dp, _block(work.Zb, sizes, l - 1, cap, rows), _block(work.Ab, sizes, l - 1, cap, rows),
                          net.acts[l - 1], net.act_p[l - 1, 0], net.act_p[l - 1, 1])
        elif want_input_grad:
            matmul_nn(D, W, dA0, mm)
        if want_param_grad:
            a_prev = A0 if l == 0 else _block(work.Ab, sizes, l - 1, cap, rows)
            gW = _weights(grad, net, l)
            gb = _biases(grad, net, l)
            _bias_grad(D, gb)
            if descend:
                _descend_layer(D, a_prev, W, gW, lr, mm)
                _sgd_step(_biases(params, net, l), gb, lr)
            else:
                matmul_tn(D, a_prev, gW, mm)


@njit(cache=True, error_model="numpy")
def _loss_delta(Y, net, work, rows, scale):
    """Output delta of the last layer into work.Db for the target rows Y; returns (summed cost, correct count)."""
    L = net.sizes.shape[0] - 1
    return _output_delta(_block(work.Zb, net.sizes, L - 1, work.cap, rows),
                         _block(work.Ab, net.sizes, L - 1, work.cap, rows), Y,
                         _block(work.Db, net.sizes, L - 1, work.cap, rows), net.loss_code, net.acts[L - 1],
                         net.act_p[L - 1, 0], net.act_p[L - 1, 1], scale, net.acc_mode)


@njit(cache=True, error_model="numpy")
def _train_epoch(params, state, X, Y, perm, batch_size, epoch_idx, step0, net, work, rule):
    """One epoch of mini-batch training over the rows ``perm`` of X, Y.

    Each batch: gather its rows of X and Y into work.Xb and work.Yb, forward,
    cost and output delta (averaged over the batch), backward, then the
    optimizer's update with the scheduled learning rate (per step: from the
    update count ``step0 + b``; per epoch: from ``epoch_idx``); plain SGD on
    BLAS takes its step inside the backward pass instead (see ``_backward``).
    ``state`` is the optimizer's (slots, n_params) state. Returns (summed cost,
    correct count, index of the first batch whose cost was not finite or -1,
    the last learning rate used); on a non-finite cost the epoch stops before
    that batch's update.
    """
    n = perm.shape[0]
    n0 = net.sizes[0]
    m = Y.shape[1]
    loss_sum = 0.0
    correct = 0
    lr = _scheduled_lr(rule.sched_code, rule.sched_p, rule.lr, epoch_idx)
    # Plain gradient descent steps each layer inside the backward pass where BLAS runs the products.
    descend = _blas_folds(net.mm) and _plain_descent(rule.opt_code, rule.hyper, rule.clip)
    dummy = work.Xb[:0]
    for bi in range((n + batch_size - 1) // batch_size):
        start = bi * batch_size
        rows = min(batch_size, n - start)
        idx = perm[start : start + rows]
        A0 = work.Xb[:rows]
        Y0 = work.Yb[:rows]
        for i in range(rows):  # the targets with the inputs: their cache misses overlap
            r = idx[i]
            for j in range(m):
                Y0[i, j] = Y[r, j]
            for j in range(n0):
                A0[i, j] = X[r, j]
        _forward(params, A0, net, work)
        c, ok = _loss_delta(Y0, net, work, rows, 1.0 / rows)
        if not math.isfinite(c):
            return loss_sum, correct, bi, lr
        loss_sum += c
        correct += ok
        if rule.per_step:
            lr = _scheduled_lr(rule.sched_code, rule.sched_p, rule.lr, step0 + bi)
        _backward(params, work.grad, A0, net, work, dummy, True, False, descend, lr)
        if not descend:
            _update(params, work.grad, state, rule.opt_code, rule.hyper, lr, step0 + bi + 1, rule.clip, net.mm)
    return loss_sum, correct, -1, lr


# Numba's parallel loops take a namedtuple across their boundary only when none of its fields is itself a
# namedtuple: the population kernels take the engine apart from ``net`` (whose ``mm`` is None there) and
# build each member's tuples inside the loop.


@njit(cache=True, error_model="numpy")
def _with_engine(net, mm):
    return Net(net.sizes, net.w_off, net.b_off, net.acts, net.act_p, net.loss_code, net.acc_mode, mm)


@njit(cache=True, error_model="numpy")
def _member_work(works, t):
    """Member t's Work from a population's stacked buffers (plan.work with ``lead=(k,)``)."""
    return Work(works.cap, works.Xb[t], works.Yb[t], works.Zb[t], works.Ab[t], works.Db[t], works.grad[t])


@njit(cache=True, error_model="numpy")
def _member_rule(rules, t):
    """Member t's Rule from a population's Rule of arrays."""
    return Rule(rules.opt_code[t], rules.hyper[t], rules.lr[t], rules.clip[t], rules.sched_code[t],
                rules.sched_p[t], rules.per_step[t])


@njit(cache=True, error_model="numpy", parallel=True)
def _train_population(P, S, X, Y, perms, counts, active, batch_size, epoch_idx, steps, net, works, rules, mm,
                      out_loss, out_correct, out_bad, out_lr):
    """One epoch of every active network of a population, side by side: network t is row t of P, S,
    steps, of every array of ``works`` and ``rules`` (a Rule of arrays), and of the outputs; it trains
    on the rows ``perms[t, :counts[t]]`` of X, Y in that order.

    Each network runs the single-network ``_train_epoch`` on one core: ``mm``
    is ``None`` (the compiled loops) or a BLAS engine whose products are too small
    for BLAS's own threads, never a parallel one (see ``matmul.population_engine``),
    so a network trained here is bitwise the one ``Network.fit`` gives where
    fit takes the same code.
    """
    for t in prange(P.shape[0]):
        if active[t]:
            loss, correct, bad, lr = _train_epoch(P[t], S[t], X, Y, perms[t, : counts[t]], batch_size, epoch_idx,
                                                  steps[t],
                                                  _with_engine(net, mm), _member_work(works, t),
                                                  _member_rule(rules, t))
            out_loss[t] = loss
            out_correct[t] = correct
            out_bad[t] = bad
            out_lr[t] = lr


@njit(cache=True, error_model="numpy")
def _full_pass(params, X, Y, net, work, want_param_grad, grad, want_input_grad, dX):
    """Cost (and gradients) over all rows of X, in chunks of the buffers' capacity.

    With ``want_param_grad``, ``grad`` receives ∇C of the mean cost over all
    rows (work.grad is the per-chunk space). With ``want_input_grad``, ``dX``
    receives each sample's own ∂C_k/∂a^0. Returns (summed cost, correct count).
    """
    n = X.shape[0]
    cap = work.cap
    scale = 1.0 if want_input_grad else 1.0 / n
    if want_param_grad:
        grad[:] = 0
    loss_sum = 0.0
    correct = 0
    for start in range(0, n, cap):
        rows = min(cap, n - start)
        A0 = X[start : start + rows]
        _forward(params, A0, net, work)
        c, ok = _loss_delta(Y[start : start + rows], net, work, rows, scale)
        loss_sum += c
        correct += ok
        if want_param_grad or want_input_grad:
            _backward(params, work.grad, A0, net, work, dX[start : start + rows], want_param_grad, want_input_grad,
                      False, 0.0)
            if want_param_grad:
                for i in range(grad.shape[0]):
                    grad[i] += work.grad[i]
    return loss_sum, correct


@njit(cache=True, error_model="numpy")
def _predict(params, X, out, net, work):
    """out = a^L for every row of X, in chunks of the buffers' capacity."""
    n = X.shape[0]
    cap = work.cap
    m = out.shape[1]
    for start in range(0, n, cap):
        rows = min(cap, n - start)
        AL = _forward(params, X[start : start + rows], net, work)
        for i in range(rows):
            for j in range(m):
                out[start + i, j] = AL[i, j]


@njit(cache=True, error_model="numpy", parallel=True)
def _evaluate_population(P, X, Y, vstart, vstop, active, net, works, mm, out_loss, out_correct):
    """Summed cost and correct count of every active network of a population on its rows
    ``vstart[t]:vstop[t]`` of X, Y (row t of P is network t: a cross-validation fold validates on its
    own rows); ``net`` and ``mm`` as for ``_train_population``."""
    no_grad = np.zeros(0, dtype=P.dtype)
    no_dX = np.zeros((0, X.shape[1]), dtype=P.dtype)
    for t in prange(P.shape[0]):
        if active[t]:
            loss, correct = _full_pass(P[t], X[vstart[t] : vstop[t]], Y[vstart[t] : vstop[t]], _with_engine(net, mm),
                                       _member_work(works, t), False, no_grad, False, no_dX)
            out_loss[t] = loss
            out_correct[t] = correct

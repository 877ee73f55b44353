"""Compiled forward pass, reverse-mode backward pass and the fused training epoch.

Everything here sees arrays and scalars only:

- ``params``/``grad``: the flat vectors (see layout.py); W^l is viewed as
  (n_l, n_{l-1}) row-major, so the batch forward is Z = A W^T (+ b);
- ``sizes``, ``w_off``, ``b_off``: the layout as int64 arrays;
- ``acts`` (int64, L) and ``act_p`` (float64, (L, 2)): each layer's activation code and parameters;
- ``mm``: how the products run: None (one core, the compiled loops), ``Loops(threads)`` or
  ``Blas(smallest)`` (see matmul.py);
- ``Zb``, ``Ab``, ``Db``: work buffers of ``cap * sum(sizes[1:])`` elements,
  holding z, a and δ = ∂C/∂z of every layer for up to ``cap`` rows, layer
  after layer, made once per ``fit`` and reused by every batch.

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
def _weights(params, sizes, w_off, l):
    n_in = sizes[l]
    n_out = sizes[l + 1]
    return params[w_off[l] : w_off[l] + n_out * n_in].reshape((n_out, n_in))


@njit(cache=True, error_model="numpy")
def _forward(params, A0, sizes, w_off, b_off, acts, act_p, Zb, Ab, cap, mm):
    """z^l = W^l a^{l-1} + b^l, a^l = f_l(z^l) for every layer; returns a^L (a view into Ab)."""
    rows = A0.shape[0]
    a = A0
    for l in range(sizes.shape[0] - 1):
        W = _weights(params, sizes, w_off, l)
        b = params[b_off[l] : b_off[l] + sizes[l + 1]]
        Z = _block(Zb, sizes, l, cap, rows)
        A = _block(Ab, sizes, l, cap, rows)
        matmul_nt(a, W, Z, mm)
        _activate(Z, A, b, acts[l], act_p[l, 0], act_p[l, 1])
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
def _backward(params, grad, A0, sizes, w_off, b_off, acts, act_p, Zb, Ab, Db, cap, dA0,
              want_param_grad, want_input_grad, descend, lr, mm):
    """Reverse mode from δ^L (already in Db) down to the input.

    Per layer: ∂C/∂a^{l-1} = δ W, which times f'_{l-1}(z) is the δ of the
    layer below (the paper's chain rule), ∂C/∂W = δᵀ a^{l-1} and ∂C/∂b = Σ_rows δ.
    With ``descend``, each layer then takes its gradient-descent step
    θ ← θ - lr ∇C right away (after δ W has used the old W), folded into the
    weight-gradient product where BLAS runs it; ``grad`` is then work space.
    """
    rows = A0.shape[0]
    L = sizes.shape[0] - 1
    for l in range(L - 1, -1, -1):
        D = _block(Db, sizes, l, cap, rows)
        W = _weights(params, sizes, w_off, l)
        if l > 0:
            Dp = _block(Db, sizes, l - 1, cap, rows)
            matmul_nn(D, W, Dp, mm)
            _act_backward(Dp, _block(Zb, sizes, l - 1, cap, rows), _block(Ab, sizes, l - 1, cap, rows),
                          acts[l - 1], act_p[l - 1, 0], act_p[l - 1, 1])
        elif want_input_grad:
            matmul_nn(D, W, dA0, mm)
        if want_param_grad:
            a_prev = A0 if l == 0 else _block(Ab, sizes, l - 1, cap, rows)
            gW = _weights(grad, sizes, w_off, l)
            gb = grad[b_off[l] : b_off[l] + sizes[l + 1]]
            _bias_grad(D, gb)
            if descend:
                _descend_layer(D, a_prev, W, gW, lr, mm)
                _sgd_step(params[b_off[l] : b_off[l] + sizes[l + 1]], gb, lr)
            else:
                matmul_tn(D, a_prev, gW, mm)


@njit(cache=True, error_model="numpy")
def _loss_delta(Y, sizes, acts, act_p, loss_code, acc_mode, Zb, Ab, Db, cap, rows, scale):
    """Output delta of the last layer into Db for the target rows Y; returns (summed cost, correct count)."""
    L = sizes.shape[0] - 1
    return _output_delta(_block(Zb, sizes, L - 1, cap, rows), _block(Ab, sizes, L - 1, cap, rows), Y,
                         _block(Db, sizes, L - 1, cap, rows), loss_code, acts[L - 1],
                         act_p[L - 1, 0], act_p[L - 1, 1], scale, acc_mode)


@njit(cache=True, error_model="numpy")
def _train_epoch(params, grad, state, X, Y, perm, batch_size, sizes, w_off, b_off, acts, act_p,
                 loss_code, acc_mode, opt_code, hyper, base_lr, clip, sched_code, sched_p, per_step,
                 epoch_idx, step0, Xb, Zb, Ab, Db, mm):
    """One epoch of mini-batch training over the rows ``perm`` of X, Y.

    Each batch: gather its rows of X into Xb (and of Y into a batch-sized
    buffer made here, once per call), forward, cost and output delta (averaged
    over the batch), backward, then the optimizer's update with the scheduled
    learning rate (per step: from the update count ``step0 + b``; per epoch:
    from ``epoch_idx``); plain SGD on BLAS takes its step inside the backward
    pass instead (see ``_backward``). Returns (summed cost, correct count, index of the
    first batch whose cost was not finite or -1, the last learning rate used);
    on a non-finite cost the epoch stops before that batch's update.
    """
    n = perm.shape[0]
    cap = Xb.shape[0]
    n0 = sizes[0]
    loss_sum = 0.0
    correct = 0
    lr = _scheduled_lr(sched_code, sched_p, base_lr, epoch_idx)
    # Plain gradient descent steps each layer inside the backward pass where BLAS runs the products.
    descend = _blas_folds(mm) and _plain_descent(opt_code, hyper, clip)
    dummy = Xb[:0]
    m = Y.shape[1]
    Yb = np.empty((cap, m), Y.dtype)
    for bi in range((n + batch_size - 1) // batch_size):
        start = bi * batch_size
        rows = min(batch_size, n - start)
        idx = perm[start : start + rows]
        A0 = Xb[:rows]
        Y0 = Yb[:rows]
        for i in range(rows):  # the targets with the inputs: their cache misses overlap
            r = idx[i]
            for j in range(m):
                Y0[i, j] = Y[r, j]
            for j in range(n0):
                A0[i, j] = X[r, j]
        _forward(params, A0, sizes, w_off, b_off, acts, act_p, Zb, Ab, cap, mm)
        c, ok = _loss_delta(Y0, sizes, acts, act_p, loss_code, acc_mode, Zb, Ab, Db, cap, rows, 1.0 / rows)
        if not math.isfinite(c):
            return loss_sum, correct, bi, lr
        loss_sum += c
        correct += ok
        if per_step:
            lr = _scheduled_lr(sched_code, sched_p, base_lr, step0 + bi)
        _backward(params, grad, A0, sizes, w_off, b_off, acts, act_p, Zb, Ab, Db, cap, dummy, True, False,
                  descend, lr, mm)
        if not descend:
            _update(params, grad, state, opt_code, hyper, lr, step0 + bi + 1, clip, mm)
    return loss_sum, correct, -1, lr


@njit(cache=True, error_model="numpy", parallel=True)
def _train_population(P, G, S, X, Y, perms, batch_size, sizes, w_off, b_off, acts, act_p, loss_code, acc_mode,
                      opt_codes, hypers, base_lrs, clips, sched_codes, sched_ps, per_steps, epoch_idx, steps,
                      Xb, Zb, Ab, Db, out_loss, out_correct, out_bad, out_lr, mm):
    """One epoch of every network of a population, side by side: network t is row t of every array.

    Each network runs the single-network ``_train_epoch`` on one core: ``mm`` is
    ``None`` (the compiled loops) or a BLAS engine whose products are too small
    for BLAS's own threads, never a parallel one (see ``Network._population_config``),
    so a network trained here is bitwise the one ``Network.fit`` gives where
    fit takes the same code.
    """
    for t in prange(P.shape[0]):
        loss, correct, bad, lr = _train_epoch(
            P[t], G[t], S[t], X, Y, perms[t], batch_size, sizes, w_off, b_off, acts, act_p, loss_code, acc_mode,
            opt_codes[t], hypers[t], base_lrs[t], clips[t], sched_codes[t], sched_ps[t], per_steps[t] != 0,
            epoch_idx, steps[t], Xb[t], Zb[t], Ab[t], Db[t], mm)
        out_loss[t] = loss
        out_correct[t] = correct
        out_bad[t] = bad
        out_lr[t] = lr


@njit(cache=True, error_model="numpy")
def _capacity(buf, sizes):
    """How many rows a per-layer work buffer holds."""
    width = 0
    for k in range(1, sizes.shape[0]):
        width += sizes[k]
    return buf.shape[0] // width


@njit(cache=True, error_model="numpy")
def _full_pass(params, X, Y, sizes, w_off, b_off, acts, act_p, loss_code, acc_mode, Zb, Ab, Db,
               want_param_grad, grad, gtmp, want_input_grad, dX, mm):
    """Cost (and gradients) over all rows of X, in chunks of the buffers' capacity.

    With ``want_param_grad``, ``grad`` receives ∇C of the mean cost over all
    rows. With ``want_input_grad``, ``dX`` receives each sample's own ∂C_k/∂a^0.
    Returns (summed cost, correct count).
    """
    n = X.shape[0]
    cap = _capacity(Zb, sizes)
    scale = 1.0 if want_input_grad else 1.0 / n
    if want_param_grad:
        grad[:] = 0
    loss_sum = 0.0
    correct = 0
    for start in range(0, n, cap):
        rows = min(cap, n - start)
        A0 = X[start : start + rows]
        _forward(params, A0, sizes, w_off, b_off, acts, act_p, Zb, Ab, cap, mm)
        c, ok = _loss_delta(Y[start : start + rows], sizes, acts, act_p, loss_code, acc_mode, Zb, Ab, Db, cap, rows,
                            scale)
        loss_sum += c
        correct += ok
        if want_param_grad or want_input_grad:
            _backward(params, gtmp, A0, sizes, w_off, b_off, acts, act_p, Zb, Ab, Db, cap,
                      dX[start : start + rows], want_param_grad, want_input_grad, False, 0.0, mm)
            if want_param_grad:
                for i in range(grad.shape[0]):
                    grad[i] += gtmp[i]
    return loss_sum, correct


@njit(cache=True, error_model="numpy")
def _predict(params, X, out, sizes, w_off, b_off, acts, act_p, Zb, Ab, mm):
    """out = a^L for every row of X, in chunks of the buffers' capacity."""
    n = X.shape[0]
    cap = _capacity(Zb, sizes)
    m = out.shape[1]
    for start in range(0, n, cap):
        rows = min(cap, n - start)
        AL = _forward(params, X[start : start + rows], sizes, w_off, b_off, acts, act_p, Zb, Ab, cap, mm)
        for i in range(rows):
            for j in range(m):
                out[start + i, j] = AL[i, j]


@njit(cache=True, error_model="numpy", parallel=True)
def _evaluate_population(P, X, Y, sizes, w_off, b_off, acts, act_p, loss_code, acc_mode, Zb, Ab, Db,
                         out_loss, out_correct, mm):
    """Summed cost and correct count of every network of a population on X, Y (row t of P is network t);
    ``mm`` as for ``_train_population``."""
    no_grad = np.zeros(0, dtype=P.dtype)
    no_dX = np.zeros((0, X.shape[1]), dtype=P.dtype)
    for t in prange(P.shape[0]):
        loss, correct = _full_pass(P[t], X, Y, sizes, w_off, b_off, acts, act_p, loss_code, acc_mode,
                                   Zb[t], Ab[t], Db[t], False, no_grad, no_grad, False, no_dX, mm)
        out_loss[t] = loss
        out_correct[t] = correct


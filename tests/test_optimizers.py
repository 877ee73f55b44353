"""Each optimizer and schedule against a NumPy reference of its rule (PyTorch's semantics)."""

import math

import numpy as np
import pytest

import fastbp
from fastbp._numba import mkl as _mkl
from fastbp.engine.products import PAR_UPDATE_MIN, Blas, Loops, Mkl
from fastbp.engine.update import _update
from fastbp.specs.schedules import _scheduled_lr

RNG = np.random.default_rng(42)
X = RNG.standard_normal((24, 5))
Y = RNG.integers(0, 3, 24)


def _net():
    return fastbp.Network([5, 6, 3], activation="tanh", dtype="float64", seed=7)


def _reference(opt, steps, clip=None, lr_at=None, l2=0.0):
    """25 full-batch steps of ``opt``'s rule, written out in NumPy from PyTorch's definitions (on the cost with
    the L2 penalty ``l2``, whose gradient Network.loss_and_grad includes)."""
    net = _net()
    p = net.params.copy()
    h = opt.get_config()
    buf = m = v = None
    for t in range(1, steps + 1):
        net.params = p
        _, g = net.loss_and_grad(X, Y, l2=l2)
        if clip is not None:
            norm = np.sqrt(np.sum(g * g))
            g = g * min(1.0, clip / (norm + 1e-6))
        lr = h["lr"] if lr_at is None else lr_at(t - 1)
        if h["name"] == "sgd":
            g = g + h["weight_decay"] * p
            if h["momentum"] > 0:
                buf = g.copy() if buf is None else h["momentum"] * buf + g
                g = g + h["momentum"] * buf if h["nesterov"] else buf
            p = p - lr * g
        elif h["name"] in ("adam", "adamw"):
            b1, b2 = h["betas"]
            if h["name"] == "adamw":
                p = p * (1 - lr * h["weight_decay"])
            else:
                g = g + h["weight_decay"] * p
            m = (1 - b1) * g if m is None else b1 * m + (1 - b1) * g
            v = (1 - b2) * g * g if v is None else b2 * v + (1 - b2) * g * g
            denom = np.sqrt(v) / math.sqrt(1 - b2**t) + h["eps"]
            p = p - lr / (1 - b1**t) * m / denom
        else:  # rmsprop
            g = g + h["weight_decay"] * p
            v = (1 - h["alpha"]) * g * g if v is None else h["alpha"] * v + (1 - h["alpha"]) * g * g
            d = g / (np.sqrt(v) + h["eps"])
            if h["momentum"] > 0:
                buf = d if buf is None else h["momentum"] * buf + d
                d = buf
            p = p - lr * d
    return p


OPTIMIZERS = [
    fastbp.SGD(lr=0.1),
    fastbp.SGD(lr=0.05, momentum=0.9),
    fastbp.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    fastbp.Adam(lr=1e-2),
    fastbp.Adam(lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=1e-2),
    fastbp.AdamW(lr=1e-2),
    fastbp.RMSprop(lr=1e-2),
    fastbp.RMSprop(lr=1e-3, alpha=0.9, momentum=0.5, weight_decay=1e-3),
]


@pytest.mark.parametrize("opt", OPTIMIZERS, ids=repr)
def test_optimizer_matches_reference(opt):
    net = _net()
    net.fit(X, Y, epochs=25, batch_size=len(X), optimizer=opt, shuffle=False, verbose=0)
    ref = _reference(opt, 25)
    np.testing.assert_allclose(net.params, ref, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("opt", OPTIMIZERS, ids=repr)
def test_update_split_over_threads_is_bitwise_the_same(opt):
    # Above PAR_UPDATE_MIN the update runs in parts on the threads (the loops', or beside MKL); beside
    # OpenBLAS, or with mm None, on one core.
    n = 2 * PAR_UPDATE_MIN + 37
    rng = np.random.default_rng(3)
    start = rng.standard_normal(n).astype(np.float32)
    grads = (0.1 * rng.standard_normal((4, n))).astype(np.float32)
    results = []
    engines = [None, Loops(2), Loops(3), Blas(0)] + ([Mkl(0, 2, 0), Mkl(0, 3, 0)] if _mkl.available() else [])
    for mm in engines:
        p = start.copy()
        state = np.zeros((opt.n_slots, n), np.float32)
        for step, g in enumerate(grads, 1):
            _update(p, g, state, opt.code, opt.hyper_vector(), 0.01, step, 0.5, mm)
        results.append((p, state))
    assert not np.array_equal(results[0][0], start)
    for p, state in results[1:]:
        np.testing.assert_array_equal(p, results[0][0])
        np.testing.assert_array_equal(state, results[0][1])


@pytest.mark.parametrize("opt", OPTIMIZERS, ids=repr)
def test_l2_matches_reference(opt):
    # The L2 penalty's gradient is added where the rule reads the gradient (AdamW: in a pass of its own).
    net = _net()
    net.fit(X, Y, epochs=25, batch_size=len(X), optimizer=opt, shuffle=False, verbose=0, l2=0.5)
    ref = _reference(opt, 25, l2=0.5)
    assert not np.allclose(ref, _reference(opt, 25), rtol=1e-3)
    np.testing.assert_allclose(net.params, ref, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("opt", [o for o in OPTIMIZERS if o.name != "adamw"], ids=repr)
def test_l2_in_the_update_is_bitwise_the_separate_pass(opt, dtype):
    # A clip bound that never clips takes the L2 penalty's gradient and Σ‖W‖² in passes of their own: the update
    # that adds the penalty as it reads the gradient, and the cost from the Σ‖W‖² it leaves, give the same bits.
    runs = []
    for clip in (None, 1e30):
        net = fastbp.Network([5, 6, 3], activation="tanh", dtype=dtype, seed=7)
        hist = net.fit(X, Y, epochs=4, batch_size=7, optimizer=opt, shuffle=True, verbose=0, l2=0.3, clip_norm=clip)
        runs.append((net.params.copy(), hist["loss"]))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


def test_clip_norm_matches_reference():
    opt = fastbp.SGD(lr=0.5, momentum=0.5)
    net = _net()
    net.fit(X, Y, epochs=25, batch_size=len(X), optimizer=opt, clip_norm=0.05, shuffle=False, verbose=0)
    np.testing.assert_allclose(net.params, _reference(opt, 25, clip=0.05), rtol=1e-10, atol=1e-13)


def test_clip_norm_changes_the_steps():
    a, b = _net(), _net()
    a.fit(X, Y, epochs=3, batch_size=len(X), lr=1.0, shuffle=False, verbose=0)
    b.fit(X, Y, epochs=3, batch_size=len(X), lr=1.0, clip_norm=1e-3, shuffle=False, verbose=0)
    assert not np.allclose(a.params, b.params)


def test_optimizer_by_name_and_lr():
    net = _net()
    net.fit(X, Y, epochs=5, batch_size=len(X), optimizer="adam", lr=0.02, shuffle=False, verbose=0)
    np.testing.assert_allclose(net.params, _reference(fastbp.Adam(lr=0.02), 5), rtol=1e-10, atol=1e-13)


def test_plain_lr_is_gradient_descent():
    net = _net()
    p0 = net.params.copy()
    _, g = net.loss_and_grad(X, Y)
    net.fit(X, Y, epochs=1, batch_size=len(X), lr=0.3, shuffle=False, verbose=0)
    np.testing.assert_allclose(net.params, p0 - 0.3 * g, rtol=1e-12, atol=1e-15)


SCHEDULES = [
    (fastbp.Constant(), lambda t: 0.1),
    (fastbp.StepLR(step_size=3, gamma=0.5, per="step"), lambda t: 0.1 * 0.5 ** (t // 3)),
    (fastbp.ExponentialLR(gamma=0.9, per="step"), lambda t: 0.1 * 0.9**t),
    (fastbp.CosineLR(T_max=20, eta_min=0.01, warmup=4, per="step"),
     lambda t: 0.1 * (t + 1) / 4 if t < 4 else 0.01 + 0.09 * (1 + math.cos(math.pi * min(1, (t - 4) / 16))) / 2),
]


@pytest.mark.parametrize("sched, lr_at", SCHEDULES, ids=lambda s: repr(s) if not callable(s) else "")
def test_schedule_per_step_matches_reference(sched, lr_at):
    net = _net()
    opt = fastbp.SGD(lr=0.1, momentum=0.5)
    hist = net.fit(X, Y, epochs=25, batch_size=len(X), optimizer=opt, schedule=sched, shuffle=False, verbose=0)
    np.testing.assert_allclose(net.params, _reference(opt, 25, lr_at=lr_at), rtol=1e-10, atol=1e-13)
    assert hist["lr"][-1] == pytest.approx(lr_at(24))


def test_schedule_per_epoch_changes_once_per_epoch():
    net = _net()
    hist = net.fit(X, Y, epochs=6, batch_size=6, lr=0.2, schedule=fastbp.StepLR(step_size=2, gamma=0.1),
                   shuffle=False, verbose=0)
    np.testing.assert_allclose(hist["lr"], [0.2, 0.2, 0.02, 0.02, 0.002, 0.002])


def test_cosine_defaults_to_the_fit_length():
    sp = fastbp.CosineLR().kernel_params(10)
    assert _scheduled_lr(3, sp, 1.0, 0) == pytest.approx(1.0)
    assert _scheduled_lr(3, sp, 1.0, 10) == pytest.approx(0.0)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: fastbp.SGD(lr=-1), "SGD(lr)"),
        (lambda: fastbp.SGD(momentum=1.5), "SGD(momentum)"),
        (lambda: fastbp.SGD(nesterov=True), "SGD(nesterov)"),
        (lambda: fastbp.Adam(betas=(0.9, 1.0)), "Adam(betas[1])"),
        (lambda: fastbp.Adam(eps=0), "Adam(eps)"),
        (lambda: fastbp.AdamW(weight_decay=-1), "AdamW(weight_decay)"),
        (lambda: fastbp.RMSprop(alpha=-0.1), "RMSprop(alpha)"),
        (lambda: fastbp.StepLR(step_size=0), "StepLR(step_size)"),
        (lambda: fastbp.CosineLR(T_max=5, warmup=5), "CosineLR(warmup)"),
        (lambda: fastbp.ExponentialLR(gamma=0.9, per="batch"), "ExponentialLR(per)"),
        (lambda: _net().fit(X, Y, optimizer="adagrad"), "optimizer"),
        (lambda: _net().fit(X, Y, optimizer=fastbp.Adam(), lr=0.1), "lr"),
        (lambda: _net().fit(X, Y, clip_norm=0), "clip_norm"),
        (lambda: _net().fit(X, Y, schedule="cosine"), "schedule"),
    ],
)
def test_bad_optimizer_settings(make, message):
    with pytest.raises((ValueError, TypeError), match=r"^" + message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        make()

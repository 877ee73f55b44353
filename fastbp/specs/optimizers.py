"""Optimizers: specs that validate their hyperparameters, and one compiled update rule.

The paper's gradient descent is θ ← θ - η ∇C. The others follow PyTorch's
``torch.optim`` rules, names and defaults exactly, so a model trained with
either can be compared step for step:

- ``SGD(lr, momentum, nesterov, weight_decay)``
- ``Adam(lr, betas, eps, weight_decay)`` (L2 penalty added to the gradient)
- ``AdamW(lr, betas, eps, weight_decay)`` (decoupled decay: θ ← θ(1 - η λ))
- ``RMSprop(lr, alpha, eps, momentum, weight_decay)``

Like JAX's ``optimizers`` module, an optimizer is explicit state plus a pure
update: the state is a (k, n_params) array in the parameter layout (momentum,
first and second moments), the step count lives with the network, and the
update is one fused loop over the flat vectors.
"""

import math

import numpy as np
from numba import njit

from ..common.checks import check_positive_float
from .parse import parse_spec

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "OPTIMIZERS", "get_optimizer"]

OPT_SGD, OPT_ADAM, OPT_ADAMW, OPT_RMSPROP = range(4)
# Slots of the float64 hyperparameter vector the kernel reads.
H_MOMENTUM, H_NESTEROV, H_WD, H_BETA1, H_BETA2, H_EPS, H_ALPHA = range(7)
N_HYPER = 7


def _unit(name, value, upper_open=True):
    v = float(value) if not isinstance(value, bool) else math.nan
    ok = 0.0 <= v < 1.0 if upper_open else 0.0 <= v <= 1.0
    if not ok:
        raise ValueError(f"{name}: expected a number in [0, 1), got {value!r}")
    return v


def _nonneg(name, value):
    v = float(value) if not isinstance(value, bool) else math.nan
    if not (math.isfinite(v) and v >= 0.0):
        raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
    return v


class Optimizer:
    """Base of the optimizer specs."""

    name = ""
    code = -1
    n_slots = 0

    def __init__(self, lr):
        self.lr = check_positive_float(lr, f"{type(self).__name__}(lr)")

    def get_config(self):
        return {"name": self.name, **self._hyper()}

    def hyper_vector(self):
        """The float64 vector of hyperparameters the compiled update reads."""
        h = np.zeros(N_HYPER, dtype=np.float64)
        for slot, value in self._slots().items():
            h[slot] = value
        return h

    def same_rule(self, other):
        """True when ``other`` would continue this one's state (same class and hyperparameters)."""
        return isinstance(other, Optimizer) and self.get_config() == other.get_config()

    def __eq__(self, other):
        return self.same_rule(other)

    def __hash__(self):
        return hash(tuple(sorted(self.get_config().items(), key=lambda kv: kv[0])).__repr__())

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._hyper().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay.

    g ← ∇C + λθ; b ← μ b + g (b = g on the first step); g ← g + μ b if nesterov else b; θ ← θ - η g.
    """

    name, code = "sgd", OPT_SGD

    def __init__(self, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(lr)
        self.momentum = _unit("SGD(momentum)", momentum)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"SGD(nesterov): expected a bool, got {nesterov!r}")
        if nesterov and self.momentum == 0.0:
            raise ValueError("SGD(nesterov): Nesterov momentum needs momentum > 0, got momentum=0")
        self.nesterov = bool(nesterov)
        self.weight_decay = _nonneg("SGD(weight_decay)", weight_decay)
        self.n_slots = 1 if self.momentum > 0 else 0

    def _hyper(self):
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov, "weight_decay": self.weight_decay}

    def _slots(self):
        return {H_MOMENTUM: self.momentum, H_NESTEROV: float(self.nesterov), H_WD: self.weight_decay}


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction, as ``torch.optim.Adam``; weight decay as an L2 term."""

    name, code, n_slots = "adam", OPT_ADAM, 2
    _default_wd = 0.0

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=None):
        super().__init__(lr)
        cls = type(self).__name__
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise TypeError(f"{cls}(betas): expected a pair (beta1, beta2), got {betas!r}")
        self.betas = (_unit(f"{cls}(betas[0])", betas[0]), _unit(f"{cls}(betas[1])", betas[1]))
        self.eps = check_positive_float(eps, f"{cls}(eps)")
        self.weight_decay = _nonneg(f"{cls}(weight_decay)", self._default_wd if weight_decay is None else weight_decay)

    def _hyper(self):
        return {"lr": self.lr, "betas": list(self.betas), "eps": self.eps, "weight_decay": self.weight_decay}

    def _slots(self):
        return {H_BETA1: self.betas[0], H_BETA2: self.betas[1], H_EPS: self.eps, H_WD: self.weight_decay}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019), as ``torch.optim.AdamW``."""

    name, code = "adamw", OPT_ADAMW
    _default_wd = 1e-2


class RMSprop(Optimizer):
    """RMSprop as ``torch.optim.RMSprop`` (not centered): v ← αv + (1-α)g²; θ ← θ - η g / (√v + ε)."""

    name, code = "rmsprop", OPT_RMSPROP

    def __init__(self, lr=1e-2, alpha=0.99, eps=1e-8, momentum=0.0, weight_decay=0.0):
        super().__init__(lr)
        self.alpha = _unit("RMSprop(alpha)", alpha)
        self.eps = check_positive_float(eps, "RMSprop(eps)")
        self.momentum = _unit("RMSprop(momentum)", momentum)
        self.weight_decay = _nonneg("RMSprop(weight_decay)", weight_decay)
        self.n_slots = 2 if self.momentum > 0 else 1

    def _hyper(self):
        return {"lr": self.lr, "alpha": self.alpha, "eps": self.eps, "momentum": self.momentum,
                "weight_decay": self.weight_decay}

    def _slots(self):
        return {H_ALPHA: self.alpha, H_EPS: self.eps, H_MOMENTUM: self.momentum, H_WD: self.weight_decay}


OPTIMIZERS = {cls.name: cls for cls in (SGD, Adam, AdamW, RMSprop)}


def get_optimizer(spec, lr=None, argname="optimizer"):
    """An Optimizer from a spec, a registered name (with ``lr`` if given), or a ``get_config`` dict."""
    return parse_spec(spec, Optimizer, OPTIMIZERS, argname, "fastbp.Adam(lr=1e-3)",
                      lambda cls: cls() if lr is None else cls(lr=lr))


# ---------------------------------------------------------------------------
# Compiled update. ``step`` counts updates from 1; ``clip`` > 0 rescales the
# gradient so that its global L2 norm is at most ``clip`` (as
# torch.nn.utils.clip_grad_norm_ does, before the rule sees it).


@njit(cache=True, error_model="numpy")
def _clip_scale(grad, clip):
    if clip <= 0.0:
        return 1.0
    s = 0.0
    for i in range(grad.shape[0]):
        g = float(grad[i])
        s += g * g
    return min(1.0, clip / (math.sqrt(s) + 1e-6))


@njit(cache=True, error_model="numpy")
def _sgd_step(params, grad, lr):
    """θ ← θ - lr · ∇C, in place: the paper's gradient descent."""
    eta = params.dtype.type(lr)
    for i in range(params.shape[0]):
        params[i] -= eta * grad[i]


@njit(cache=True, error_model="numpy")
def _plain_descent(code, hyper, clip):
    """Whether the rule is θ ← θ - η ∇C exactly (SGD without momentum, weight decay or clipping)."""
    return code == OPT_SGD and hyper[H_MOMENTUM] == 0.0 and hyper[H_WD] == 0.0 and clip <= 0.0


@njit(cache=True, error_model="numpy")
def _slot(state, k, params):
    """Row k of the optimizer state, or an empty array when the rule keeps fewer rows."""
    return state[k] if state.shape[0] > k else params[:0]


@njit(cache=True, error_model="numpy")
def _rule(params, grad, s0, s1, code, hyper, lr, step, clip_scale, decay=0.0):
    """The rule ``code`` over these parameters; ``s0``, ``s1``: its state rows (or empty); each element's
    gradient is grad + decay · θ where ``decay`` is not 0 (see ``_update_part``)."""
    t = params.dtype.type
    c = t(clip_scale)
    wd = t(hyper[H_WD])
    eta = t(lr)
    one = t(1.0)
    n = params.shape[0]
    d = t(decay)
    decayed = decay != 0.0
    if code == OPT_SGD:
        mu = t(hyper[H_MOMENTUM])
        if hyper[H_MOMENTUM] == 0.0:
            if wd == 0 and c == one and not decayed:
                _sgd_step(params, grad, lr)
            else:
                for i in range(n):
                    params[i] -= eta * (c * _decayed(grad[i], params[i], d, decayed) + wd * params[i])
        else:
            buf = s0
            nesterov = hyper[H_NESTEROV] != 0.0
            if step == 1:  # PyTorch starts the buffer at the first gradient
                for i in range(n):
                    buf[i] = c * _decayed(grad[i], params[i], d, decayed) + wd * params[i]
            else:
                for i in range(n):
                    buf[i] = mu * buf[i] + (c * _decayed(grad[i], params[i], d, decayed) + wd * params[i])
            # branches hoisted out of the element loops, so each loop vectorises
            if nesterov:
                for i in range(n):
                    params[i] -= eta * ((c * _decayed(grad[i], params[i], d, decayed) + wd * params[i]) + mu * buf[i])
            else:
                for i in range(n):
                    params[i] -= eta * buf[i]
    elif code == OPT_ADAM or code == OPT_ADAMW:
        b1 = hyper[H_BETA1]
        b2 = hyper[H_BETA2]
        m = s0
        v = s1
        step_size = t(lr / (1.0 - b1**step))
        inv_sqrt_bc2 = t(1.0 / math.sqrt(1.0 - b2**step))
        eps = t(hyper[H_EPS])
        tb1 = t(b1)
        tb2 = t(b2)
        shrink = one - eta * wd
        if code == OPT_ADAMW:  # decoupled: θ ← θ(1 - ηλ), and the moments see the bare gradient
            for i in range(n):
                params[i] *= shrink
            wd = t(0.0)
        for i in range(n):
            g = c * _decayed(grad[i], params[i], d, decayed) + wd * params[i]
            mi = tb1 * m[i] + (one - tb1) * g
            vi = tb2 * v[i] + (one - tb2) * g * g
            m[i] = mi
            v[i] = vi
            params[i] -= step_size * mi / (np.sqrt(vi) * inv_sqrt_bc2 + eps)
    else:  # OPT_RMSPROP
        alpha = t(hyper[H_ALPHA])
        eps = t(hyper[H_EPS])
        mu = t(hyper[H_MOMENTUM])
        v = s0
        if hyper[H_MOMENTUM] > 0.0:
            buf = s1
            for i in range(n):
                g = c * _decayed(grad[i], params[i], d, decayed) + wd * params[i]
                vi = alpha * v[i] + (one - alpha) * g * g
                v[i] = vi
                b = mu * buf[i] + g / (np.sqrt(vi) + eps)
                buf[i] = b
                params[i] -= eta * b
        else:
            for i in range(n):
                g = c * _decayed(grad[i], params[i], d, decayed) + wd * params[i]
                vi = alpha * v[i] + (one - alpha) * g * g
                v[i] = vi
                params[i] -= eta * g / (np.sqrt(vi) + eps)


@njit(cache=True, error_model="numpy", inline="always")
def _decayed(g, p, d, decayed):
    """g + d · p where ``decayed``, else g itself (not g + 0 · p, which turns -0 into +0 and a NaN θ into a NaN
    gradient)."""
    return g + d * p if decayed else g

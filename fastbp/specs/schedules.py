"""Learning-rate schedules: a code plus a few floats, evaluated inside the compiled epoch.

``t`` counts epochs done (``per="epoch"``) or updates done (``per="step"``)
before the one the rate is for, from 0.

- ``Constant()``: η
- ``StepLR(step_size, gamma=0.1)``: η γ^⌊t / step_size⌋
- ``ExponentialLR(gamma)``: η γ^t
- ``CosineLR(T_max=None, eta_min=0, warmup=0)``: η (t+1)/warmup during the first
  ``warmup``, then η_min + (η - η_min)(1 + cos(π p))/2 with p = (t - warmup)/(T_max - warmup)
  clipped to 1; T_max defaults to the length of the ``fit`` call (in epochs or steps).
- ``InvScaling(power=0.5, scale=1)``: η / (scale·t + 1)^power (scikit-learn's "invscaling",
  whose t counts samples seen: per epoch, with ``scale`` the rows per epoch)
- ``ReduceLROnPlateau(monitor="val_loss", ...)``: η times ``factor`` each time the monitored
  value stops improving, decided between epochs in training.py from the History (the kernel
  sees a constant rate, replaced before each epoch), with PyTorch's rule.
"""

import math
import numbers

import numpy as np
from numba import njit

from ..common.checks import check_int, check_nonnegative_float, check_positive_float
from .parse import parse_spec

__all__ = ["Schedule", "Constant", "StepLR", "ExponentialLR", "CosineLR", "InvScaling", "ReduceLROnPlateau",
           "SCHEDULES", "get_schedule"]

SCHED_CONSTANT, SCHED_STEP, SCHED_EXPONENTIAL, SCHED_COSINE, SCHED_INVSCALING = range(5)


class Schedule:
    """Base of the schedule specs."""

    name = ""
    code = -1

    def __init__(self, per="epoch"):
        if per not in ("epoch", "step"):
            raise ValueError(f"{type(self).__name__}(per): expected 'epoch' or 'step', got {per!r}")
        self.per = per

    def _params(self):
        return {}

    def get_config(self):
        return {"name": self.name, **self._params(), "per": self.per}

    def kernel_params(self, length):
        """Three floats for the kernel; ``length`` is the fit's length in the schedule's unit."""
        vals = [float(v) for v in self._resolved(length)] + [0.0, 0.0, 0.0]
        return np.array(vals[:3], dtype=np.float64)

    def _resolved(self, length):
        return list(self._params().values())

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash(repr(self))

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in {**self._params(), "per": self.per}.items())
        return f"{type(self).__name__}({args})"


class Constant(Schedule):
    name, code = "constant", SCHED_CONSTANT


class StepLR(Schedule):
    name, code = "step", SCHED_STEP

    def __init__(self, step_size, gamma=0.1, per="epoch"):
        super().__init__(per)
        self.step_size = check_int(step_size, "StepLR(step_size)", minimum=1)
        self.gamma = check_positive_float(gamma, "StepLR(gamma)")

    def _params(self):
        return {"step_size": self.step_size, "gamma": self.gamma}


class ExponentialLR(Schedule):
    name, code = "exponential", SCHED_EXPONENTIAL

    def __init__(self, gamma, per="epoch"):
        super().__init__(per)
        self.gamma = check_positive_float(gamma, "ExponentialLR(gamma)")

    def _params(self):
        return {"gamma": self.gamma}


class CosineLR(Schedule):
    name, code = "cosine", SCHED_COSINE

    def __init__(self, T_max=None, eta_min=0.0, warmup=0, per="epoch"):
        super().__init__(per)
        self.T_max = None if T_max is None else check_int(T_max, "CosineLR(T_max)", minimum=1)
        if isinstance(eta_min, bool) or not isinstance(eta_min, numbers.Real) or not (
            math.isfinite(eta_min) and eta_min >= 0
        ):
            raise ValueError(f"CosineLR(eta_min): expected a finite number >= 0, got {eta_min!r}")
        self.eta_min = float(eta_min)
        self.warmup = check_int(warmup, "CosineLR(warmup)", minimum=0)
        if self.T_max is not None and self.warmup >= self.T_max:
            raise ValueError(f"CosineLR(warmup): expected warmup < T_max={self.T_max}, got {self.warmup}")

    def _params(self):
        return {"T_max": self.T_max, "eta_min": self.eta_min, "warmup": self.warmup}

    def _resolved(self, length):
        T = self.T_max if self.T_max is not None else max(length, self.warmup + 1)
        return [T, self.eta_min, self.warmup]


class InvScaling(Schedule):
    name, code = "invscaling", SCHED_INVSCALING

    def __init__(self, power=0.5, scale=1.0, per="epoch"):
        super().__init__(per)
        self.power = check_nonnegative_float(power, "InvScaling(power)")
        self.scale = check_positive_float(scale, "InvScaling(scale)")

    def _params(self):
        return {"power": self.power, "scale": self.scale}


class ReduceLROnPlateau(Schedule):
    """Multiply the learning rate by ``factor`` when ``monitor`` has stopped improving: exactly
    ``torch.optim.lr_scheduler.ReduceLROnPlateau``, stepped after every epoch with that epoch's value.

    After each epoch, the value is better when it is below best·(1 − threshold) (``mode="min"``,
    ``threshold_mode="rel"``), below best − threshold (``"abs"``), or above best·(1 + threshold),
    best + threshold with ``mode="max"``; a better value becomes the best and clears the count
    of bad epochs, any other adds one. During ``cooldown`` epochs after a reduction the count
    stays 0. When the count exceeds ``patience``, the rate becomes max(lr·factor, min_lr) (if that
    lowers it by more than 1e-8), the cooldown starts and the count is cleared. History's ``lr``
    records the rate each epoch used; the state (best, counts, rate) travels with the network's
    training state and in its checkpoints, so a resumed ``fit`` with the same schedule reduces at
    the same epochs.

    Parameters
    ----------
    monitor : str, default "val_loss"
        A History key: "loss", "accuracy" (classifiers), "val_loss" or "val_accuracy" (with validation).
    mode : {"min", "max"}, default "min"
    factor : float in (0, 1), default 0.1
    patience : int ≥ 0, default 10
    threshold : float ≥ 0, default 1e-4
    threshold_mode : {"rel", "abs"}, default "rel"
    cooldown : int ≥ 0, default 0
    min_lr : float ≥ 0, default 0
    """

    name, code = "plateau", SCHED_CONSTANT
    _EPS = 1e-8  # torch's eps: smaller changes of the rate are not made

    def __init__(self, monitor="val_loss", mode="min", factor=0.1, patience=10, threshold=1e-4,
                 threshold_mode="rel", cooldown=0, min_lr=0.0, per="epoch"):
        if per != "epoch":
            raise ValueError(f"ReduceLROnPlateau(per): the plateau is judged per epoch, got {per!r}")
        super().__init__(per)
        if not isinstance(monitor, str):
            raise TypeError(f"ReduceLROnPlateau(monitor): expected a History key such as 'val_loss', got {monitor!r}")
        if mode not in ("min", "max"):
            raise ValueError(f"ReduceLROnPlateau(mode): expected 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"ReduceLROnPlateau(threshold_mode): expected 'rel' or 'abs', got {threshold_mode!r}")
        factor = check_positive_float(factor, "ReduceLROnPlateau(factor)")
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau(factor): expected a factor < 1, got {factor!r}")
        self.monitor, self.mode, self.factor, self.threshold_mode = monitor, mode, factor, threshold_mode
        self.patience = check_int(patience, "ReduceLROnPlateau(patience)", minimum=0)
        self.threshold = check_nonnegative_float(threshold, "ReduceLROnPlateau(threshold)")
        self.cooldown = check_int(cooldown, "ReduceLROnPlateau(cooldown)", minimum=0)
        self.min_lr = check_nonnegative_float(min_lr, "ReduceLROnPlateau(min_lr)")

    def _params(self):
        return {"monitor": self.monitor, "mode": self.mode, "factor": self.factor, "patience": self.patience,
                "threshold": self.threshold, "threshold_mode": self.threshold_mode, "cooldown": self.cooldown,
                "min_lr": self.min_lr}

    def _resolved(self, length):
        return []  # the kernel runs a constant rate: training.py replaces it between epochs

    def start(self, lr):
        """The state of a run that starts at rate ``lr`` (a JSON-serialisable dict)."""
        return {"lr": float(lr), "best": math.inf if self.mode == "min" else -math.inf, "num_bad_epochs": 0,
                "cooldown_counter": 0}

    def _is_better(self, a, best):
        if self.mode == "min":
            return a < (best * (1.0 - self.threshold) if self.threshold_mode == "rel" else best - self.threshold)
        return a > (best * (self.threshold + 1.0) if self.threshold_mode == "rel" else best + self.threshold)

    def step(self, state, value):
        """Update ``state`` with an epoch's monitored ``value``; returns the rate of the next epoch."""
        value = float(value)
        if self._is_better(value, state["best"]):
            state["best"] = value
            state["num_bad_epochs"] = 0
        else:
            state["num_bad_epochs"] += 1
        if state["cooldown_counter"] > 0:
            state["cooldown_counter"] -= 1
            state["num_bad_epochs"] = 0
        if state["num_bad_epochs"] > self.patience:
            new = max(state["lr"] * self.factor, self.min_lr)
            if state["lr"] - new > self._EPS:
                state["lr"] = new
            state["cooldown_counter"] = self.cooldown
            state["num_bad_epochs"] = 0
        return state["lr"]


SCHEDULES = {cls.name: cls for cls in (Constant, StepLR, ExponentialLR, CosineLR, InvScaling, ReduceLROnPlateau)}


def get_schedule(spec, argname="schedule"):
    """A Schedule from a spec, None (constant), a registered name, or a ``get_config`` dict."""
    if spec is None:
        return Constant()

    def from_name(cls):
        if cls is not Constant and cls is not ReduceLROnPlateau:
            raise ValueError(f"{argname}: {cls.name!r} needs its parameters; pass e.g. fastbp.{cls.__name__}(...) "
                             f"or a dict {{'name': {cls.name!r}, ...}}")
        return cls()

    return parse_spec(spec, Schedule, SCHEDULES, argname, "fastbp.CosineLR(warmup=5)", from_name)


@njit(cache=True, error_model="numpy")
def _scheduled_lr(code, sp, base, t):
    """The learning rate for the update after ``t`` epochs or steps."""
    if code == SCHED_STEP:
        return base * sp[1] ** (t // int(sp[0]))
    if code == SCHED_EXPONENTIAL:
        return base * sp[0] ** t
    if code == SCHED_COSINE:
        T = sp[0]
        eta_min = sp[1]
        warmup = sp[2]
        if t < warmup:
            return base * (t + 1) / warmup
        p = min(1.0, (t - warmup) / max(1.0, T - warmup))
        return eta_min + (base - eta_min) * (1.0 + math.cos(math.pi * p)) / 2.0
    if code == SCHED_INVSCALING:
        return base / (sp[1] * t + 1.0) ** sp[0]
    return base

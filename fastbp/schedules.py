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
"""

import math
import numbers

import numpy as np
from numba import njit

from .checks import check_int, check_positive_float
from .specs import parse_spec

__all__ = ["Schedule", "Constant", "StepLR", "ExponentialLR", "CosineLR", "InvScaling", "SCHEDULES", "get_schedule"]

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
        if isinstance(power, bool) or not isinstance(power, numbers.Real) or not (math.isfinite(power) and power >= 0):
            raise ValueError(f"InvScaling(power): expected a finite number >= 0, got {power!r}")
        self.power = float(power)
        self.scale = check_positive_float(scale, "InvScaling(scale)")

    def _params(self):
        return {"power": self.power, "scale": self.scale}


SCHEDULES = {cls.name: cls for cls in (Constant, StepLR, ExponentialLR, CosineLR, InvScaling)}


def get_schedule(spec, argname="schedule"):
    """A Schedule from a spec, None (constant), a registered name, or a ``get_config`` dict."""
    if spec is None:
        return Constant()

    def from_name(cls):
        if cls is not Constant:
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

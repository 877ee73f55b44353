"""fastbp: fast backpropagation for multilayer perceptrons on the CPU, compiled with Numba."""

import os as _os

from . import _cache

_cache.sync(_os.path.dirname(_os.path.abspath(__file__)))  # before any kernel is loaded from the cache

from .activations import (
    ACTIVATIONS,
    Activation,
    Gaussian,
    Identity,
    PiecewiseLinear,
    ReLU,
    Sigmoid,
    Softmax,
    Step,
    Tanh,
)
from .callbacks import Callback, EarlyStopping
from .gradcheck import gradcheck
from .layout import Layout
from .losses import LOSSES
from .network import Network, load
from .training import History
from .optimizers import SGD, Adam, AdamW, Optimizer, RMSprop
from .schedules import Constant, CosineLR, ExponentialLR, InvScaling, ReduceLROnPlateau, Schedule, StepLR
from .sweep import Halving, SweepResult, choice, loguniform, sweep, uniform

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "Adam",
    "AdamW",
    "Callback",
    "Constant",
    "CosineLR",
    "EarlyStopping",
    "ExponentialLR",
    "InvScaling",
    "MLPClassifier",
    "MLPRegressor",
    "Optimizer",
    "RMSprop",
    "ReduceLROnPlateau",
    "SGD",
    "Schedule",
    "StepLR",
    "Gaussian",
    "History",
    "Identity",
    "LOSSES",
    "Layout",
    "Network",
    "PiecewiseLinear",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Step",
    "Tanh",
    "SweepResult",
    "choice",
    "gradcheck",
    "load",
    "loguniform",
    "sweep",
    "Halving",
    "uniform",
]


def __getattr__(name):
    # The scikit-learn estimators import scikit-learn, an optional dependency: only when asked for.
    if name in ("MLPClassifier", "MLPRegressor"):
        from . import estimators

        return getattr(estimators, name)
    raise AttributeError(f"module 'fastbp' has no attribute {name!r}")

"""fastbp: fast backpropagation for multilayer perceptrons on the CPU, compiled with Numba."""

import os as _os

from ._numba import cache as _cache

_cache.sync(_os.path.dirname(_os.path.abspath(__file__)))  # before any kernel is loaded from the cache

from .specs.activations import (ACTIVATIONS, Activation, Gaussian, Identity, PiecewiseLinear, ReLU, Sigmoid, Softmax,
                                Step, Tanh)
from .training.callbacks import Callback, EarlyStopping
from .gradcheck import gradcheck
from .engine.layout import Layout
from .specs.losses import LOSSES
from .network import Network, load
from .training import History
from .specs.optimizers import SGD, Adam, AdamW, Optimizer, RMSprop
from .specs.schedules import Constant, CosineLR, ExponentialLR, InvScaling, ReduceLROnPlateau, Schedule, StepLR
from .sweep import Halving, SweepResult, choice, loguniform, sweep, uniform

from ._version import __version__

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

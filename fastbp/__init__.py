"""fastbp: fast backpropagation for multilayer perceptrons on the CPU, compiled with Numba."""

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
from .schedules import Constant, CosineLR, ExponentialLR, Schedule, StepLR
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
    "Optimizer",
    "RMSprop",
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

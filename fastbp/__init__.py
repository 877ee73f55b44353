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
from .gradcheck import gradcheck
from .layout import Layout
from .losses import LOSSES
from .network import History, Network, load

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "Activation",
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
    "gradcheck",
    "load",
]

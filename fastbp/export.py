"""ONNX export of a trained Network: the forward pass, with the stored scaling, in standard operators.

The graph takes ``X`` (n, n_0) in the network's dtype and gives ``Y`` (n, n_L), the
same values as :meth:`Network.forward`: ``Gemm`` per layer and each activation
written with ONNX's default-domain operators (Sigmoid, Relu, Tanh, Softmax, Clip,
Exp, GreaterOrEqual, Cast, Mul, Add, Sub). The class labels, column names and
task ride along as metadata (``fastbp.classes`` etc., JSON), so a deployment can
map argmax indices to names. ``onnx`` is an optional dependency
(``pip install "fastbp[onnx]"``), imported only here.
"""

import json
import math
import os

import numpy as np

from .specs.activations import GAUSSIAN, IDENTITY, PIECEWISE_LINEAR, RELU, SIGMOID, SOFTMAX, STEP, TANH

__all__ = ["to_onnx"]

OPSET = 17


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError('to_onnx: the onnx package is needed: pip install "fastbp[onnx]"') from None
    return onnx


class _Graph:
    """Nodes and constants under fresh names, in the network's dtype."""

    def __init__(self, onnx, dtype):
        self.onnx = onnx
        self.dtype = np.dtype(dtype)
        self.nodes = []
        self.inits = []
        self.count = 0

    def name(self, stem):
        self.count += 1
        return f"{stem}_{self.count}"

    def const(self, stem, value):
        arr = np.ascontiguousarray(np.asarray(value, dtype=self.dtype))
        n = self.name(stem)
        self.inits.append(self.onnx.numpy_helper.from_array(arr, n))
        return n

    def op(self, op_type, inputs, stem=None, output=None, **attrs):
        out = output or self.name(stem or op_type.lower())
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, [out], **attrs))
        return out


def _activation(g, z, act):
    """The output name of ``act`` applied element-wise (row-wise for softmax) to ``z``."""
    code, (p0, p1) = act.code, act.kernel_params
    if code == IDENTITY:
        return z
    if code == RELU:
        return g.op("Relu", [z])
    if code == TANH:
        return g.op("Tanh", [z])
    if code == SOFTMAX:
        return g.op("Softmax", [z], axis=1)
    if code == SIGMOID:
        if p0 != 1.0:
            z = g.op("Mul", [z, g.const("beta", p0)])
        return g.op("Sigmoid", [z])
    if code == PIECEWISE_LINEAR:  # clip((z − x_min) / (x_max − x_min), 0, 1)
        t = g.op("Mul", [g.op("Sub", [z, g.const("x_min", p0)]), g.const("slope", 1.0 / (p1 - p0))])
        return g.op("Clip", [t, g.const("zero", 0.0), g.const("one", 1.0)])
    if code == GAUSSIAN:  # e^(−(z−μ)²/(2σ²)) / (σ√(2π))
        d = g.op("Sub", [z, g.const("mu", p0)])
        e = g.op("Exp", [g.op("Mul", [g.op("Mul", [d, d]), g.const("h", -0.5 / (p1 * p1))])])
        return g.op("Mul", [e, g.const("c", 1.0 / (p1 * math.sqrt(2.0 * math.pi)))])
    if code == STEP:  # 1 where z ≥ 0 (the straight-through flag only changes training)
        return g.op("Cast", [g.op("GreaterOrEqual", [z, g.const("zero", 0.0)])],
                    to=g.onnx.helper.np_dtype_to_tensor_dtype(g.dtype))
    raise ValueError(f"to_onnx: no ONNX form for activation {act!r}")


def to_onnx(net, path=None, opset=OPSET):
    """The ONNX model of ``net``'s forward pass; written to ``path`` when given.

    Parameters
    ----------
    net : Network
    path : str or PathLike, optional
    opset : int, default 17
        The default-domain opset (13 or later: Softmax over one axis).

    Returns
    -------
    onnx.ModelProto
        Input ``X`` (batch, n_0), output ``Y`` (batch, n_L), both of the network's dtype.
    """
    onnx = _onnx()
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < 13:
        raise ValueError(f"opset: expected an int >= 13, got {opset!r}")
    g = _Graph(onnx, net.dtype)
    elem = onnx.helper.np_dtype_to_tensor_dtype(g.dtype)
    a = "X"
    scaler = net.scaler_
    if scaler is not None:
        a = g.op("Div", [g.op("Sub", [a, g.const("x_mean", scaler.x_mean)]), g.const("x_std", scaler.x_std)])
    L = len(net.sizes) - 1
    for layer in range(1, L + 1):
        W = g.const(f"W{layer}", net.weights(layer))
        b = g.const(f"b{layer}", net.biases(layer))
        z = g.op("Gemm", [a, W, b], stem=f"z{layer}", transB=1)
        a = _activation(g, z, net.activations[layer - 1])
    if scaler is not None and scaler.y_mean is not None:
        a = g.op("Add", [g.op("Mul", [a, g.const("y_std", scaler.y_std)]), g.const("y_mean", scaler.y_mean)])
    g.op("Identity", [a], output="Y")
    graph = onnx.helper.make_graph(
        g.nodes, "fastbp_network",
        [onnx.helper.make_tensor_value_info("X", elem, ["batch", net.sizes[0]])],
        [onnx.helper.make_tensor_value_info("Y", elem, ["batch", net.sizes[-1]])],
        initializer=g.inits)
    model = onnx.helper.make_model(graph, producer_name="fastbp",
                                   opset_imports=[onnx.helper.make_opsetid("", opset)])
    meta = {"task": "multilabel" if net.is_multilabel else "classification" if net.is_classifier else "regression",
            "classes": None if net.classes_ is None else net.classes_.tolist(),
            "feature_names": net.feature_names, "target_names": net.target_names}
    onnx.helper.set_model_props(model, {f"fastbp.{k}": json.dumps(v) for k, v in meta.items()})
    onnx.checker.check_model(model)
    if path is not None:
        from .common.files import atomic_write

        atomic_write(os.fspath(path), lambda f: f.write(model.SerializeToString()))
    return model

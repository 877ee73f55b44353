"""ONNX export: onnxruntime runs the exported graph and gives forward's outputs."""

import json

import numpy as np
import pytest

import fastbp

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

HIDDEN = {
    "sigmoid(beta=2.5)": fastbp.Sigmoid(beta=2.5),
    "sigmoid": fastbp.Sigmoid(),
    "piecewise_linear": fastbp.PiecewiseLinear(-0.7, 1.3),
    "gaussian": fastbp.Gaussian(mu=0.2, sigma=0.8),
    "step": fastbp.Step(),
    "relu": fastbp.ReLU(),
    "tanh": fastbp.Tanh(),
    "identity": fastbp.Identity(),
}
TOL = {"float32": 1e-5, "float64": 1e-12}


def run_onnx(model, X):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(["Y"], {"X": X})[0]


def only_standard_operators(model):
    assert all(op.domain in ("", "ai.onnx") for op in model.opset_import)
    assert all(node.domain in ("", "ai.onnx") for node in model.graph.node)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", HIDDEN)
def test_every_hidden_activation_matches_forward(name, dtype):
    rng = np.random.default_rng(3)
    net = fastbp.Network([5, 7, 6, 3], activation=HIDDEN[name], dtype=dtype, seed=4)
    X = rng.standard_normal((64, 5)).astype(dtype)
    model = net.to_onnx()
    only_standard_operators(model)
    got = run_onnx(model, X)
    assert got.dtype == np.dtype(dtype)
    ref = net.forward(X)
    if name == "step":  # a z within rounding of 0 may fall either side; compare where it cannot
        a, keep = X.astype(np.float64), np.ones(len(X), bool)
        for layer in (1, 2):
            z = a @ net.weights(layer).T.astype(np.float64) + net.biases(layer)
            keep &= np.abs(z).min(axis=1) > 1e-4
            a = (z >= 0).astype(np.float64)
        assert keep.sum() > len(X) // 2
        np.testing.assert_allclose(got[keep], ref[keep], atol=TOL[dtype], rtol=0)
    else:
        np.testing.assert_allclose(got, ref, atol=TOL[dtype], rtol=0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("output, loss, n_out", [("softmax", "cross_entropy", 4), (fastbp.Sigmoid(beta=0.5), "binary_cross_entropy", 3),
                                                 ("identity", "mse", 2), ("tanh", "mse", 2)])
def test_every_output_matches_forward(output, loss, n_out, dtype):
    rng = np.random.default_rng(5)
    net = fastbp.Network([4, 6, n_out], activation="tanh", output=output, loss=loss, dtype=dtype, seed=1)
    X = rng.standard_normal((32, 4)).astype(dtype)
    np.testing.assert_allclose(run_onnx(net.to_onnx(), X), net.forward(X), atol=TOL[dtype], rtol=0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_stored_scaling_is_in_the_graph(tmp_path, dtype):
    rng = np.random.default_rng(6)
    X = rng.standard_normal((60, 3)) * [1, 100, 1e4] + [5, -200, 3e4]
    Y = np.stack([X[:, 0] * 1e3, X[:, 1]], axis=1)
    net = fastbp.Network([3, 8, 2], activation="relu", loss="mse", standardize=True, dtype=dtype, seed=0)
    net.fit(X, Y, epochs=2, lr=0.01, verbose=0)
    path = tmp_path / "m.onnx"
    net.to_onnx(path)
    model = onnx.load(path)
    got = run_onnx(model, X.astype(dtype))
    ref = net.forward(X)
    scale = np.abs(ref).max()
    np.testing.assert_allclose(got / scale, ref / scale, atol=TOL[dtype], rtol=0)
    meta = {p.key: json.loads(p.value) for p in model.metadata_props}
    assert meta["fastbp.task"] == "regression" and meta["fastbp.classes"] is None


def test_class_names_in_metadata_and_missing_onnx(monkeypatch):
    net = fastbp.Network([2, 3, 2], classes=["cat", "dog"])
    meta = {p.key: json.loads(p.value) for p in net.to_onnx().metadata_props}
    assert meta["fastbp.classes"] == ["cat", "dog"] and meta["fastbp.task"] == "classification"
    import builtins

    real = builtins.__import__

    def no_onnx(name, *a, **k):
        if name == "onnx":
            raise ImportError("no onnx")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    with pytest.raises(ImportError, match=r'pip install "fastbp\[onnx\]"'):
        net.to_onnx()

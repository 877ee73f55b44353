"""save / load: a bitwise round trip of parameters, predictions, configuration and dtype; clear errors on bad files."""

import numpy as np
import pytest

import fastbp
from fastbp import Gaussian, PiecewiseLinear, Sigmoid, Step

NETWORKS = {
    "sigmoid-beta2+gaussian+step-st": dict(layers=[4, 6, 5, 3, 2], activation=[Sigmoid(beta=2), Gaussian(0.3, 1.5),
                                                                             Step(straight_through=True)],
                                          output="softmax"),
    "piecewise+bce": dict(layers=[4, 5, 3], activation=PiecewiseLinear(-2, 0.5), output=Sigmoid(beta=2.5),
                          loss="binary_cross_entropy"),
    "relu+regression": dict(layers=[4, 6, 2], activation="relu", loss="squared", init="he", seed=12),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", NETWORKS)
def test_round_trip(tmp_path, name, dtype):
    rng = np.random.default_rng(0)
    net = fastbp.Network(**NETWORKS[name], dtype=dtype)
    X = rng.standard_normal((20, 4))
    y = (rng.integers(0, 2, (20, net.sizes[-1])) if net.loss == "binary_cross_entropy"
         else rng.integers(0, net.sizes[-1], 20) if net.loss == "cross_entropy"
         else rng.standard_normal((20, net.sizes[-1])))
    net.fit(X, y, epochs=2, batch_size=8, lr=0.05, verbose=0)
    path = tmp_path / "model.npz"
    net.save(path)
    back = fastbp.load(path)
    assert back.dtype == net.dtype == np.dtype(dtype)
    assert back.params.dtype == np.dtype(dtype)
    assert np.array_equal(back.params, net.params)
    assert back.sizes == net.sizes and back.loss == net.loss
    assert back.activations == net.activations  # with their parameters
    assert back.get_config() == net.get_config()
    assert np.array_equal(back.forward(X), net.forward(X))
    assert np.array_equal(back.predict(X), net.predict(X))
    assert back.epochs_trained == net.epochs_trained == 2


def test_activation_parameters_survive(tmp_path):
    net = fastbp.Network(**NETWORKS["sigmoid-beta2+gaussian+step-st"])
    net.save(tmp_path / "m.npz")
    back = fastbp.load(str(tmp_path / "m.npz"))  # a str path works too
    sig, gauss, step, out = back.activations
    assert isinstance(sig, Sigmoid) and sig.beta == 2.0
    assert isinstance(gauss, Gaussian) and (gauss.mu, gauss.sigma) == (0.3, 1.5)
    assert isinstance(step, Step) and step.straight_through is True
    assert out.name == "softmax"
    assert back.activations != fastbp.Network([4, 6, 5, 3, 2], activation="sigmoid").activations


def test_saving_twice_overwrites(tmp_path):
    path = tmp_path / "m.npz"
    net = fastbp.Network([3, 4, 2], seed=1)
    net.save(path)
    net.params[...] = 0.5
    net.save(path)
    assert np.all(fastbp.load(path).params == 0.5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]  # no temporary files left behind


def test_missing_file(tmp_path):
    path = tmp_path / "nope.npz"
    with pytest.raises(FileNotFoundError) as info:
        fastbp.load(path)
    assert str(path) in str(info.value)


def _assert_value_error_naming(path):
    with pytest.raises(ValueError) as info:
        fastbp.load(path)
    assert str(path) in str(info.value), str(info.value)


def test_truncated_file(tmp_path):
    path = tmp_path / "model.npz"
    fastbp.Network([8, 16, 4]).save(path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    _assert_value_error_naming(path)


def test_text_file(tmp_path):
    path = tmp_path / "model.npz"
    path.write_text("this is not a model\n")
    _assert_value_error_naming(path)


def test_plain_npz_without_config(tmp_path):
    path = tmp_path / "arrays.npz"
    np.savez(path, params=np.zeros(10))
    _assert_value_error_naming(path)


def test_npz_with_a_config_that_is_not_fastbp(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, config=np.frombuffer(b'{"format": "other"}', dtype=np.uint8), params=np.zeros(3))
    _assert_value_error_naming(path)


def test_params_of_the_wrong_length(tmp_path):
    path = tmp_path / "model.npz"
    net = fastbp.Network([3, 4, 2])
    net.save(path)
    with np.load(path) as z:
        arrays = dict(z)
    arrays["params"] = arrays["params"][:-1]
    np.savez(path, **arrays)
    _assert_value_error_naming(path)

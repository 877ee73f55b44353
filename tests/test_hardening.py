"""Issue 18, case by case: each kind of failure that was found (a traceback, a silent wrong result, a lost or
mixed run, a message that does not name the thing) and what happens now. The command line is driven
in-process through ``fastbp.cli.main`` (its output is what a user sees); test_cli*.py drive it as a subprocess.
"""

import errno
import json
import struct
import warnings
import zipfile

import numpy as np
import pytest

import fastbp
from fastbp import cli
from fastbp import io as fio
from fastbp.data import load

RNG = np.random.default_rng(11)


def fails(capsys, *argv, names=()):
    """Run the command: exit 2 and one line ``fastbp: error: ...`` naming each of ``names``."""
    code = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("fastbp: error: "), err
    assert "Traceback" not in err
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A trained model file and its arrays, to tamper with."""
    path = tmp_path_factory.mktemp("model") / "model.npz"
    net = fastbp.Network([4, 5, 3], seed=0)
    X = RNG.standard_normal((30, 4))
    net.fit(X, RNG.integers(0, 3, 30), epochs=2, optimizer="adam", verbose=0)
    net.save(path)
    with np.load(path) as z:
        arrays = dict(z)
    return path, arrays


def tampered(tmp_path, model, config_change=None, **arrays):
    _, original = model
    out = dict(original, **arrays)
    config = json.loads(out["config"].tobytes())
    if config_change:
        config_change(config)
    out["config"] = np.frombuffer(json.dumps(config).encode(), dtype=np.uint8)
    path = tmp_path / "tampered.npz"
    np.savez(path, **out)
    return path


# --------------------------------------------------------------------------- tracebacks -> one line


def test_out_naming_an_existing_file(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    fails(capsys, "train", "--epochs", 1, "--out", tmp_path / "f", names=["--out", tmp_path / "f"])


def test_a_full_filesystem_during_the_checkpoint_save(tmp_path, capsys, monkeypatch):
    def full(f, **arrays):
        f.write(b"PK")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fio.np, "savez", full)
    line = fails(capsys, "train", "--epochs", 2, "--checkpoint-every", 1, "--out", tmp_path / "run", "--quiet",
                 names=[tmp_path / "run" / "model.npz", "No space left"])
    assert ".tmp-" not in line
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.startswith(fio.TMP_PREFIX)]


def test_predict_out_naming_a_directory(tmp_path, capsys, model):
    (tmp_path / "d").mkdir()
    np.savez(tmp_path / "x.npz", X=RNG.standard_normal((5, 4)), y=np.zeros(5, int))
    fails(capsys, "predict", model[0], "--data", tmp_path / "x.npz", "--out", tmp_path / "d", names=["--out"])


@pytest.mark.parametrize("text, names", [('layers = "4,x"\n', ["layers", "c.toml", "4,x"]),
                                         ("seed = -1\n", ["seed", "c.toml", "-1"]),
                                         ("data = 5\n", ["data", "c.toml", "5"]),
                                         ("epochs = 1.5\n", ["epochs", "c.toml"]),
                                         ('lr = "fast"\n', ["lr", "c.toml"]),
                                         ("layers = [8, 0]\n", ["layers", "c.toml"]),
                                         ("val_split = true\n", ["val_split", "c.toml"])])
def test_config_values_are_named_with_their_file(tmp_path, capsys, text, names):
    (tmp_path / "c.toml").write_text(text)
    fails(capsys, "train", "--config", tmp_path / "c.toml", "--out", tmp_path / "run", names=names)
    assert not (tmp_path / "run").exists()


def test_seed_on_the_command_line(capsys, tmp_path):
    fails(capsys, "train", "--seed", -1, "--out", tmp_path / "run", names=["--seed", "-1"])


def test_sweep_spec_with_batch_size_zero(tmp_path, capsys):
    (tmp_path / "s.toml").write_text('[train]\nlayers = [8]\nepochs = 1\n[space]\nbatch_size = [32, 0]\n'
                                     '[data]\nval_split = 0.2\n')
    fails(capsys, "sweep", tmp_path / "s.toml", "--out", tmp_path / "o", names=["batch_size", "0"])
    assert not (tmp_path / "o" / "trials.jsonl").exists()


@pytest.mark.parametrize("change, arrays, names", [
    (lambda c: c["history"]["history"]["loss"].append(1.0), {}, ["history", "loss"]),
    (lambda c: c.__setitem__("format_version", "2"), {}, ["format_version"]),
    (lambda c: c.__setitem__("epochs_trained", -1), {}, ["epochs_trained"]),
    (lambda c: c["network"].__setitem__("layers", [4, 0, 3]), {}, ["layers"]),
    (None, {"params": "nan"}, ["params", "nan"]),
    (None, {"opt_state": "inf"}, ["opt_state", "inf"]),
])
def test_tampered_model_files(tmp_path, capsys, model, change, arrays, names):
    _, original = model
    arrays = {k: np.full_like(original[k], float(v)) for k, v in arrays.items()}
    path = tampered(tmp_path, model, change, **arrays)
    with pytest.raises(ValueError) as info:
        fastbp.load(path)
    for name in [str(path), *names]:
        assert name in str(info.value), str(info.value)
    np.savez(tmp_path / "x.npz", X=RNG.standard_normal((5, 4)), y=np.zeros(5, int))
    fails(capsys, "evaluate", path, "--data", tmp_path / "x.npz", names=[path])
    fails(capsys, "predict", path, "--data", tmp_path / "x.npz", "--out", tmp_path / "p.csv", names=[path])
    assert not (tmp_path / "p.csv").exists()  # no predictions from a broken model


def test_a_huge_npy_header_is_refused_before_allocating(tmp_path, capsys):
    header = repr({"descr": "<f8", "fortran_order": False, "shape": (10**13, 10)}).encode().ljust(118) + b"\n"
    for name, keys in (("model.npz", ("config", "params")), ("data.npz", ("X", "y"))):
        with zipfile.ZipFile(tmp_path / name, "w") as z:
            for key in keys:
                z.writestr(f"{key}.npy", b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header)
    with pytest.raises(ValueError, match="declares shape"):
        fastbp.load(tmp_path / "model.npz")
    with pytest.raises(ValueError, match="declares shape"):
        load(tmp_path / "data.npz")
    fails(capsys, "evaluate", tmp_path / "model.npz", "--data", "digits", names=[tmp_path / "model.npz"])


def test_an_unexpected_exception_says_it_is_a_bug(capsys, monkeypatch):
    monkeypatch.setattr(cli, "_info", lambda args: 1 // 0)
    assert cli.main(["info"]) == cli.EXIT_BUG
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("fastbp: error: a bug in fastbp (ZeroDivisionError") and "--debug" in err
    with pytest.raises(ZeroDivisionError):
        cli.main(["--debug", "info"])


# --------------------------------------------------------------------------- silent wrong results


def test_targets_finite_in_float64_but_not_in_float32():
    net = fastbp.Network([2, 3, 1], loss="mse")
    with pytest.raises(ValueError, match=r"^y: .*1e\+39 does not fit in float32"):
        net.fit(np.zeros((4, 2)), np.full(4, 1e39), verbose=0)
    with pytest.raises(ValueError, match=r"^X: .*does not fit in float32"):
        net.forward(np.full((1, 2), -1e39))
    fastbp.Network([2, 3, 1], loss="mse", dtype="float64").fit(np.zeros((4, 2)), np.full(4, 1e39), verbose=0,
                                                                  lr=1e-80)


@pytest.mark.parametrize("value", [np.nan, np.inf, 1e39])
def test_non_finite_parameters_are_refused(value):
    net = fastbp.Network([2, 3, 2])
    before = net.params.copy()
    bad = before.astype(np.float64)
    bad[3] = value
    with pytest.raises(ValueError, match=r"^params: .*index \(3,\)"):
        net.params = bad
    np.testing.assert_array_equal(net.params, before)


def test_float16_targets_and_inputs_are_converted():
    net = fastbp.Network([2, 3, 2], loss="mse")
    X = RNG.standard_normal((8, 2)).astype(np.float16)
    hist = net.fit(X, RNG.random((8, 2)).astype(np.float16), epochs=1, verbose=0)
    assert len(hist) == 1
    clf = fastbp.Network([2, 3, 2])
    clf.fit(X, np.array([0, 1] * 4, dtype=np.float16), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="^y: "):
        clf.fit(X, np.full(8, np.inf, dtype=np.float16), verbose=0)


@pytest.mark.parametrize("batch_size", [2**63 - 1, 2**64])
def test_a_huge_batch_size_is_one_batch(batch_size):
    X = RNG.standard_normal((10, 2))
    y = RNG.standard_normal((10, 1))
    a = fastbp.Network([2, 3, 1], loss="mse")
    b = fastbp.Network([2, 3, 1], loss="mse")
    a.fit(X, y, batch_size=batch_size, epochs=2, verbose=0)
    b.fit(X, y, batch_size=10, epochs=2, verbose=0)
    np.testing.assert_array_equal(a.params, b.params)
    assert not np.array_equal(a.params, fastbp.Network([2, 3, 1], loss="mse").params)


def test_a_csv_label_too_large_for_int64_stays_a_number(tmp_path, capsys):
    (tmp_path / "d.csv").write_text("a,b,label\n1,2,1e300\n3,4,0\n5,6,1\n")
    ds = load(tmp_path / "d.csv")
    assert ds.y.dtype == np.float64 and ds.y[0] == 1e300
    fails(capsys, "train", "--data", tmp_path / "d.csv", "--out", tmp_path / "r", names=["--target", "1e+300"])


def test_sweep_values_fit_refuses_are_refused_before_any_trial(tmp_path):
    X, y = RNG.standard_normal((40, 3)), RNG.integers(0, 2, 40)
    for space, key in (({"clip_norm": [1.0, -1.0]}, "clip_norm"), ({"clip_norm": [float("nan")]}, "clip_norm"),
                       ({"batch_size": [0]}, "batch_size"), ({"batch_size": [2.5]}, "batch_size"),
                       ({"epochs": [1.5]}, "epochs"), ({"lr": [0.1, -0.1]}, "lr"),
                       ({"lr": fastbp.uniform(-1.0, 1.0)}, "lr")):
        results = tmp_path / f"{key}.jsonl"
        with pytest.raises((ValueError, TypeError), match=rf"^space\['{key}'\] value"):
            fastbp.sweep(space, X, y, epochs=1, validation_split=0.25, results=results, method="random", trials=2)
        assert not results.exists()
    with pytest.raises(ValueError, match="^metric: 'val_f1' is never logged"):
        fastbp.sweep({"lr": [0.1]}, X, y, metric="val_f1", validation_split=0.25, results=tmp_path / "m.jsonl")
    with pytest.raises(ValueError, match="^metric: 'accuracy' is never logged"):
        fastbp.sweep({"lr": [0.1]}, X, RNG.standard_normal(40), loss="mse", metric="accuracy", mode="max")
    assert not (tmp_path / "m.jsonl").exists()


def test_malformed_results_lines_are_named_and_run_again(tmp_path):
    # 64 features: a network large enough for OpenBLAS on AVX-512 (matmul.engine_for), as the other sweeps with
    # validation in the suite, so its populations compile no kernels of their own
    X, y = RNG.standard_normal((40, 64)), RNG.integers(0, 2, 40)
    path = tmp_path / "trials.jsonl"
    kw = dict(epochs=1, layers=[4], validation_split=0.25, results=path)
    first = fastbp.sweep({"lr": [0.1, 0.2, 0.3, 0.4]}, X, y, **kw)
    good = path.read_bytes().splitlines()
    rec = json.loads(good[1])
    del rec["final"]
    path.write_bytes(b"\n".join([good[0], json.dumps(rec).encode(), b"null", b"\xff\xfe{" + good[3][3:], b""]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = fastbp.sweep({"lr": [0.1, 0.2, 0.3, 0.4]}, X, y, resume=True, **kw)
    messages = [str(w.message) for w in caught]
    for line in (2, 3, 4):
        assert any(f"{str(path)!r} line {line}" in m for m in messages), messages
    assert [t["params_digest"] for t in again.trials] == [t["params_digest"] for t in first.trials]


# --------------------------------------------------------------------------- messages that name the thing


def test_idx_with_no_images(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">III", 0, 28, 28))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 0))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte' holds 0 images"):
        load(tmp_path)


def test_idx_float_labels_that_are_not_whole_numbers(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">III", 2, 1, 1) + b"\1\2")
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(bytes([0, 0, 0x0D, 1]) + struct.pack(">I", 2)
                                                       + np.array([1.5, 0], ">f4").tobytes())
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte' holds label 1.5"):
        load(tmp_path)


def test_labels_in_an_npz_that_are_neither_numbers_nor_names(tmp_path, capsys):
    np.savez(tmp_path / "c.npz", X=RNG.standard_normal((6, 2)), y=np.arange(6) * 1j)
    with pytest.raises(ValueError, match=r"c.npz' holds labels of dtype complex128"):
        load(tmp_path / "c.npz")
    fails(capsys, "train", "--data", tmp_path / "c.npz", "--out", tmp_path / "r", names=["c.npz", "labels"])
    np.savez(tmp_path / "s.npz", X=RNG.standard_normal((6, 2)), y=np.array(["cat", "dog"] * 3))
    assert load(tmp_path / "s.npz").y.tolist() == ["cat", "dog"] * 3  # class names: the CLI encodes them
    np.savez(tmp_path / "t.npz", X=RNG.standard_normal((6, 2)), y=np.array([["cat"] * 2] * 6))
    with pytest.raises(ValueError, match=r"t.npz' holds labels of dtype <U3, shape \(6, 2\)"):
        load(tmp_path / "t.npz")


def test_data_that_is_not_a_path():
    with pytest.raises(TypeError, match="^data: expected 'digits' or a path, got 5"):
        load(5)


def test_a_checkpoint_into_a_missing_directory_names_it(tmp_path):
    path = tmp_path / "no" / "such" / "m.npz"
    with pytest.raises(FileNotFoundError) as info:
        fastbp.Network([2, 3, 2]).save(path)
    assert str(path) in str(info.value) and ".tmp-" not in str(info.value)


def test_a_checkpoint_into_a_missing_directory_is_refused_before_training(tmp_path):
    net = fastbp.Network([2, 3, 2])
    path = tmp_path / "no" / "m.npz"
    with pytest.raises((ValueError, FileNotFoundError)) as info:
        net.fit(RNG.standard_normal((8, 2)), np.zeros(8, int), epochs=2, checkpoint=path, verbose=0)
    assert str(info.value).startswith("checkpoint: ") and str(path) in str(info.value)
    assert net.epochs_trained == 0

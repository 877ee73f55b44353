"""The `fastbp` command driven as a user drives it: in a subprocess, reading its files and exit codes."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from test_data import make_mnist_dir

FASTBP = [sys.executable, "-m", "fastbp.cli"]


def run(*args, cwd=None, timeout=240):
    return subprocess.run([*FASTBP, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout)


def assert_run_dir(out):
    for name in ("model.npz", "metrics.json", "config.toml", "curves.png"):
        assert (out / name).exists(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert "accuracy" in metrics["test"] and len(metrics["history"]["loss"]) == metrics["epochs"]
    import matplotlib.image

    img = matplotlib.image.imread(out / "curves.png")
    assert img.ndim == 3 and img.shape[0] >= 200 and img.shape[1] >= 400
    assert img[..., :3].std() > 0.01  # not a blank image


def test_default_train_writes_a_run(tmp_path):
    r = run("train", "--epochs", "3", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "test accuracy" in r.stdout
    assert r.stderr.count("epoch ") == 3
    (out,) = (tmp_path / "runs").iterdir()
    assert_run_dir(out)


@pytest.mark.parametrize("naming, gz", [("dash", True), ("dot", False)])
def test_train_on_idx_directory(tmp_path, naming, gz):
    make_mnist_dir(tmp_path / "mnist", naming, gz, n=200, n_test=50)
    r = run("train", "--data", tmp_path / "mnist", "--layers", "16", "--epochs", "2", "--out", tmp_path / "run",
            "--quiet")
    assert r.returncode == 0, r.stderr
    assert_run_dir(tmp_path / "run")
    r = run("evaluate", tmp_path / "run" / "model.npz", "--data", tmp_path / "mnist")
    assert r.returncode == 0, r.stderr
    assert set(json.loads(r.stdout)) == {"loss", "accuracy"}


def test_train_on_npz_and_csv_then_predict(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((150, 5))
    y = (X[:, 0] > 0).astype(int)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    r = run("train", "--data", tmp_path / "d.npz", "--epochs", "2", "--optimizer", "adam", "--lr", "0.01",
            "--out", tmp_path / "a", "--quiet")
    assert r.returncode == 0, r.stderr
    rows = ["f1,f2,f3,f4,f5,label"] + [",".join(map(str, [*x, t])) for x, t in zip(X, y)]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    r = run("train", "--data", tmp_path / "d.csv", "--target", "label", "--epochs", "2", "--out", tmp_path / "b",
            "--schedule", "cosine", "--warmup", "1", "--clip-norm", "1.0", "--quiet")
    assert r.returncode == 0, r.stderr
    assert_run_dir(tmp_path / "b")
    r = run("predict", tmp_path / "b" / "model.npz", "--data", tmp_path / "d.csv", "--target", "label",
            "--out", tmp_path / "p.csv")
    assert r.returncode == 0, r.stderr
    preds = np.loadtxt(tmp_path / "p.csv", skiprows=1)
    assert preds.shape == (150,) and set(np.unique(preds)) <= {0, 1}


def test_config_file_reruns(tmp_path):
    (tmp_path / "t.toml").write_text('epochs = 2\nlayers = [8]\nbatch-size = 16\noptimizer = "rmsprop"\nlr = 0.01\n')
    r = run("train", "--config", tmp_path / "t.toml", "--out", tmp_path / "r", "--quiet")
    assert r.returncode == 0, r.stderr
    saved = (tmp_path / "r" / "config.toml").read_text()
    assert "layers = [8]" in saved and 'optimizer = "rmsprop"' in saved
    r = run("train", "--config", tmp_path / "r" / "config.toml", "--out", tmp_path / "r2", "--quiet")
    assert r.returncode == 0, r.stderr
    a = json.loads((tmp_path / "r" / "metrics.json").read_text())["test"]
    b = json.loads((tmp_path / "r2" / "metrics.json").read_text())["test"]
    assert a == b  # same seed, same settings: the same run


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--data", "/no/such/dir"], "/no/such/dir"),
        (["train", "--lr", "-1"], "--lr"),
        (["train", "--layers", "0"], "--layers"),
        (["train", "--epochs", "0"], "--epochs"),
        (["train", "--optimizer", "adagrad"], "--optimizer"),
        (["train", "--activation", "swish"], "activation"),
        (["train", "--config", "/no/such.toml"], "--config"),
        (["evaluate", "/no/model.npz", "--data", "digits"], "/no/model.npz"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(args, message):
    r = run(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastbp: error: ") and message in lines[0], r.stderr


def test_corrupt_data_and_feature_mismatch(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    r = run("train", "--data", tmp_path / "bad.npz")
    assert r.returncode == 2 and "bad.npz" in r.stderr and r.stderr.startswith("fastbp: error:")
    r = run("train", "--epochs", "1", "--out", tmp_path / "m", "--quiet")
    assert r.returncode == 0, r.stderr
    np.savez(tmp_path / "other.npz", X=np.zeros((5, 3)), y=np.zeros(5, int))
    r = run("evaluate", tmp_path / "m" / "model.npz", "--data", tmp_path / "other.npz")
    assert r.returncode == 2 and "3 features" in r.stderr and "expects 64" in r.stderr
    r = run("--debug", "evaluate", tmp_path / "m" / "model.npz", "--data", tmp_path / "other.npz")
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_gradcheck_and_info():
    r = run("gradcheck")
    assert r.returncode == 0 and "max relative error" in r.stdout
    r = run("info")
    assert r.returncode == 0 and "numba" in r.stdout


@pytest.mark.skipif(os.name != "posix", reason="SIGINT delivery")
def test_ctrl_c_saves_the_last_epoch_and_exits_130(tmp_path):
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "big.npz", X=rng.standard_normal((20000, 200)).astype(np.float32),
             y=rng.integers(0, 10, 20000))
    # A shell that starts jobs in the background makes them ignore SIGINT, and Python then keeps it ignored:
    # the child gets the default disposition back, so that it sees Ctrl-C as a terminal would send it.
    proc = subprocess.Popen([*FASTBP, "train", "--data", str(tmp_path / "big.npz"), "--layers", "256,256",
                             "--epochs", "1000", "--out", str(tmp_path / "run")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 180
    seen = ""
    while "epoch 2" not in seen and time.time() < deadline:
        seen += proc.stderr.readline()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    import fastbp

    net = fastbp.load(tmp_path / "run" / "model.npz")
    assert net.epochs_trained >= 2
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())  # written on Ctrl-C too
    assert metrics["stopped"] == "interrupted" and metrics["epochs"] == net.epochs_trained
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.startswith(".tmp-")]

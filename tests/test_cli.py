"""The `fastbp` command line, as a user runs it.

In a subprocess (its output, its files, its exit status) or in-process through ``fastbp.cli.main``: training on
the bundled digits, IDX directories, npz and a user's own CSV files (class names, ids, several targets, weights),
predict, evaluate, export, re-runs from a saved config, plots, Ctrl-C, and one-line errors."""

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import fastbp
from conftest import cli_fails, make_mnist_dir, plateau_rates
from fastbp import cli

FASTBP = [sys.executable, "-m", "fastbp.cli"]


def run(*args, cwd=None, timeout=240):
    """``python -m fastbp.cli *args`` in a subprocess."""
    return subprocess.run([*FASTBP, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout)


def ok(r):
    assert r.returncode == 0, r.stderr
    return r


def one_line_error(r, *words):
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastbp: error: "), r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


# --------------------------------------------------------------------------- the command and its runs


def run_command(cmd, *args, cwd):
    """``cmd`` (a command line's first words) with ``args`` in a subprocess."""
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120)


def console_script():
    path = shutil.which("fastbp")
    if path is None:
        pytest.skip("the fastbp console script is not on PATH")
    return [path]


COMMANDS = {"python -m fastbp.cli": lambda: FASTBP, "fastbp": console_script}


@pytest.mark.parametrize("command", COMMANDS)
def test_train_three_epochs(tmp_path, command):
    cmd = COMMANDS[command]()
    r = run_command(cmd, "train", "--epochs", 3, "--out", tmp_path / "run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    output = r.stdout + r.stderr
    epochs = re.findall(r"^epoch (\d+)\b.*\bloss [0-9.]+", output, flags=re.M)
    assert epochs == ["1", "2", "3"], output
    final = re.search(r"test accuracy ([0-9.]+)", r.stdout)
    assert final, r.stdout
    assert 0.5 < float(final.group(1)) <= 1.0  # three epochs of digits already beat chance (0.1) by far
    assert (tmp_path / "run" / "model.npz").exists()


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
    net = fastbp.load(tmp_path / "run" / "model.npz")
    assert net.epochs_trained >= 2
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())  # written on Ctrl-C too
    assert metrics["stopped"] == "interrupted" and metrics["epochs"] == net.epochs_trained
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.startswith(".tmp-")]


# --------------------------------------------------------------------------- a user's own CSV files


@pytest.fixture(scope="module")
def flowers(tmp_path_factory):
    """A classification CSV with an id column and string class names, and a trained run on it."""
    d = tmp_path_factory.mktemp("flowers")
    rng = np.random.default_rng(0)
    n = 240
    X = rng.standard_normal((n, 3)) * [1, 1, 500] + [0, 0, 1000]
    kind = np.array(["oak", "elm", "ash"])[(X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5).astype(int)]
    with open(d / "trees.csv", "w") as f:
        f.write("tree,width,height,age,kind\n")
        for i in range(n):
            f.write(f"t{i},{X[i, 0]:.4f},{X[i, 1]:.4f},{X[i, 2]:.1f},{kind[i]}\n")
    with open(d / "new.csv", "w") as f:  # no kind column, columns in another order
        f.write("age,tree,height,width\n")
        for i in range(6):
            f.write(f"{X[i, 2]:.1f},t{i},{X[i, 1]:.4f},{X[i, 0]:.4f}\n")
    r = ok(run("train", "--data", "trees.csv", "--target", "kind", "--id", "tree", "--standardize",
               "--epochs", 4, "--optimizer", "adam", "--lr", 0.01, "--out", "run", cwd=d))
    return d, r, X, kind


def test_train_with_class_names_writes_a_run(flowers):
    d, r, _, _ = flowers
    assert "hint" not in r.stderr  # standardized: no scale hint
    metrics = json.loads((d / "run" / "metrics.json").read_text())
    rows = read_csv(d / "run" / "metrics.csv")
    assert rows[0][:3] == ["epoch", "loss", "accuracy"] and [row[0] for row in rows[1:]] == ["1", "2", "3", "4"]
    assert float(rows[-1][1]) == pytest.approx(metrics["history"]["loss"][-1])
    saved = (d / "run" / "config.toml").read_text()
    assert f'data = "{d / "trees.csv"}"' in saved and "\nout =" not in saved  # absolute path; no run dir


def test_predict_names_probabilities_and_ids(flowers):
    d, _, X, kind = flowers
    r = ok(run("predict", "run/model.npz", "--data", "new.csv", "--id", "tree", "--proba", "--out", "p.csv", cwd=d))
    assert "6 rows" in r.stdout
    rows = read_csv(d / "p.csv")
    assert rows[0] == ["tree", "prediction", "p_ash", "p_elm", "p_oak"]
    assert [row[0] for row in rows[1:]] == [f"t{i}" for i in range(6)]
    net = fastbp.load(d / "run" / "model.npz")
    age, _, height, width = np.array(read_csv(d / "new.csv")[1:]).T  # the file's rounded values
    P = net.predict_proba(np.stack([width, height, age], axis=1).astype(float))
    np.testing.assert_allclose(np.array([row[2:] for row in rows[1:]], float), P, rtol=1e-5)
    assert [row[1] for row in rows[1:]] == list(np.array(["ash", "elm", "oak"])[P.argmax(axis=1)])


def test_evaluate_says_which_rows_and_reproduces_the_test_split(flowers):
    d, _, _, _ = flowers
    r = ok(run("evaluate", "run/model.npz", "--split", "test", cwd=d))
    assert "seed 0 (48 of 240)" in r.stderr
    test = json.loads((d / "run" / "metrics.json").read_text())["test"]
    got = json.loads(r.stdout)
    assert got == {k: round(v, 6) for k, v in test.items()}
    r = ok(run("evaluate", "run/model.npz", "--data", "trees.csv", "--id", "tree", cwd=d))
    assert "all 240 rows of 'trees.csv'" in r.stderr


def test_export_runs_in_onnxruntime(flowers):
    ort = pytest.importorskip("onnxruntime")
    d, _, X, _ = flowers
    r = ok(run("export", "run/model.npz", "--out", "m.onnx", cwd=d))
    assert "classes ['ash', 'elm', 'oak']" in r.stdout and "scaling" in r.stdout
    net = fastbp.load(d / "run" / "model.npz")
    sess = ort.InferenceSession(str(d / "m.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(["Y"], {"X": X.astype(np.float32)})[0]
    np.testing.assert_allclose(got, net.forward(X), atol=1e-5)


def test_bad_input_is_one_line_naming_file_and_column(flowers):
    d, _, _, _ = flowers
    (d / "owl.csv").write_text("tree,width,height,age,kind\nt1,0.1,0.2,1000,owl\n")
    one_line_error(run("evaluate", "run/model.npz", "--data", "owl.csv", "--id", "tree", cwd=d),
                   "owl.csv", "'kind'", "'owl'")
    one_line_error(run("predict", "run/model.npz", "--data", "new.csv", "--id", "nope", cwd=d),
                   "new.csv", "'nope'")
    one_line_error(run("train", "--data", "trees.csv", "--target", "species", cwd=d), "trees.csv", "'species'")
    (d / "renamed.csv").write_text("tree,width,height,years\nt1,0.1,0.2,1000\n")
    one_line_error(run("predict", "run/model.npz", "--data", "renamed.csv", "--id", "tree", cwd=d),
                   "renamed.csv", "'age'")
    (d / "wide.csv").write_text("1,2,3,4,5\n")
    one_line_error(run("predict", "run/model.npz", "--data", "wide.csv", cwd=d), "wide.csv", "5 columns",
                   "expects 3")
    (d / "price.csv").write_text("a,b,price\n1,2,10.5\n3,4,12\n5,6,9.25\n7,8,3\n9,1,4\n")
    one_line_error(run("train", "--data", "price.csv", "--target", "price", cwd=d),
                   "price.csv", "'price'", "non-integral", "--loss mse")
    (d / "ints.csv").write_text("a,price\n" + "".join(f"{i},{1000 + 7 * i}\n" for i in range(30)))
    one_line_error(run("train", "--data", "ints.csv", "--target", "price", cwd=d),
                   "ints.csv", "'price'", "30 distinct values in 30 rows", "--loss mse")


def test_regression_with_two_targets_and_config_rerun(tmp_path):
    rng = np.random.default_rng(1)
    n = 200
    X = rng.uniform(0, 1, (n, 3)) * [100, 5, 1e4]
    Y = np.stack([X @ [30, 1000, 0.1] + 500, X @ [0.1, 2, 0.001]], axis=1)
    with open(tmp_path / "h.csv", "w") as f:
        f.write("a,b,c,price,rent\n")
        for x, y in zip(X, Y):
            f.write(",".join(f"{v:.6g}" for v in [*x, *y]) + "\n")
    r = run("train", "--data", "h.csv", "--target", "price,rent", "--loss", "mse", "--epochs", 2, "--lr", 1e-9,
            "--out", "raw", "--quiet", cwd=tmp_path)
    assert "fastbp: hint: the features' scales differ" in r.stderr and "--standardize" in r.stderr
    r = ok(run("train", "--data", "h.csv", "--target", "price,rent", "--loss", "mse", "--standardize", "--epochs", 30,
               "--optimizer", "adam", "--lr", 0.01, "--out", "reg", "--quiet", cwd=tmp_path))
    assert "test rmse" in r.stdout and "test r2" in r.stdout and "½" in r.stdout
    test = json.loads((tmp_path / "reg" / "metrics.json").read_text())["test"]
    assert set(test) == {"loss", "rmse", "mae", "r2"} and test["r2"] > 0.9
    (tmp_path / "new.csv").write_text("a,b,c\n" + "\n".join(",".join(f"{v:.6g}" for v in x) for x in X[:5]) + "\n")
    ok(run("predict", "reg/model.npz", "--data", "new.csv", "--out", "p.csv", cwd=tmp_path))
    rows = read_csv(tmp_path / "p.csv")
    assert rows[0] == ["prediction_price", "prediction_rent"] and len(rows) == 6
    net = fastbp.load(tmp_path / "reg" / "model.npz")
    np.testing.assert_allclose(np.array(rows[1:], float), net.predict(np.loadtxt(tmp_path / "new.csv", delimiter=",",
                                                                                 skiprows=1)), rtol=1e-6)
    # A saved config re-runs into a new directory, from anywhere, and leaves the old run alone.
    before = (tmp_path / "reg" / "metrics.json").read_text()
    (tmp_path / "elsewhere").mkdir()
    r = ok(run("train", "--config", tmp_path / "reg" / "config.toml", "--quiet", cwd=tmp_path / "elsewhere"))
    (new,) = (tmp_path / "elsewhere" / "runs").iterdir()
    assert json.loads((new / "metrics.json").read_text())["test"] == json.loads(before)["test"]
    assert (tmp_path / "reg" / "metrics.json").read_text() == before
    import matplotlib.image

    img = matplotlib.image.imread(new / "curves.png")
    assert img.shape[1] <= 600  # one panel (loss): no empty accuracy panel for a regression


def test_multilabel_predicts_01_columns(tmp_path):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((120, 2))
    T = np.stack([X[:, 0] > 0, X[:, 1] > 0], axis=1).astype(int)
    with open(tmp_path / "m.csv", "w") as f:
        f.write("x1,x2,red,round\n")
        for x, t in zip(X, T):
            f.write(f"{x[0]:.4f},{x[1]:.4f},{t[0]},{t[1]}\n")
    ok(run("train", "--data", "m.csv", "--target", "red,round", "--loss", "binary_cross_entropy", "--epochs", 3,
           "--out", "ml", "--quiet", cwd=tmp_path))
    test = json.loads((tmp_path / "ml" / "metrics.json").read_text())["test"]
    assert set(test) == {"loss", "exact_match", "hamming_accuracy"}
    ok(run("predict", "ml/model.npz", "--data", "m.csv", "--out", "p.csv", cwd=tmp_path))
    rows = read_csv(tmp_path / "p.csv")
    assert rows[0] == ["prediction_red", "prediction_round"] and {c for r in rows[1:] for c in r} <= {"0", "1"}


def test_plots_use_log_axes_and_skip_empty_panels(monkeypatch, tmp_path):
    import matplotlib.pyplot as plt

    from fastbp.network import History

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    h = History()
    for e, loss in enumerate([100.0, 10.0, 1.0, 0.5], 1):
        h.append(e, {"loss": loss, "val_loss": loss * 1.1})
    cli._plot_curves(tmp_path / "c.png", h)
    (fig,) = figures
    assert len(fig.axes) == 1 and fig.axes[0].get_yscale() == "log"  # regression: one panel; falls 200x
    h2 = History()
    for e in (1, 2):
        h2.append(e, {"loss": 1.0 / e, "accuracy": 0.5 + 0.1 * e})
    cli._plot_curves(tmp_path / "d.png", h2)
    assert len(figures[1].axes) == 2 and figures[1].axes[0].get_yscale() == "linear"

    class Result:
        metric, mode = "val_loss", "min"
        trials = [{"config": {"lr": 10.0 ** -k, "activation": ["relu", "tanh"][k % 2]}, "final": {"val_loss": 2.0 ** k}}
                  for k in range(1, 7) for _ in range(40)]

    cli._plot_sweep(tmp_path / "s.png", Result(), ["lr", "activation"])
    ax_lr, ax_act = figures[2].axes
    assert ax_lr.get_xscale() == "log" and ax_lr.get_yscale() == "linear"
    sizes = ax_lr.collections[0].get_sizes()
    assert sizes.max() < 10  # 240 trials: small points


# --------------------------------------------------------------------------- weights, dropout, L2, plateau schedule


def _csv(path, X, y, w=None):
    cols = [f"f{j}" for j in range(X.shape[1])] + ([] if w is None else ["w"]) + ["label"]
    rows = [",".join(cols)]
    for i in range(len(X)):
        rows.append(",".join(map(str, [*X[i], *([] if w is None else [w[i]]), y[i]])))
    path.write_text("\n".join(rows) + "\n")


def test_weights_dropout_and_plateau_from_the_command_line(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((160, 4))
    y = (X[:, 0] + 0.3 * X[:, 1] > 0.4).astype(int)
    _csv(tmp_path / "plain.csv", X, y)
    _csv(tmp_path / "ones.csv", X, y, np.ones(160))
    common = ["--target", "label", "--epochs", "6", "--layers", "8,6", "--quiet", "--lr", "0.2"]
    # a weight column of ones is left out of the features and weighs nothing: the run without it, bitwise
    r = run("train", "--data", tmp_path / "plain.csv", *common, "--out", tmp_path / "a")
    assert r.returncode == 0, r.stderr
    r = run("train", "--data", tmp_path / "ones.csv", "--sample-weight", "w", *common, "--out", tmp_path / "b")
    assert r.returncode == 0, r.stderr
    a, b = fastbp.load(tmp_path / "a" / "model.npz"), fastbp.load(tmp_path / "b" / "model.npz")
    assert b.sizes[0] == 4 and np.array_equal(a.params, b.params)
    # everything at once; then the saved config.toml re-runs it
    w = rng.uniform(0.2, 2.0, 160)
    _csv(tmp_path / "w.csv", X, y, w)
    args = ["--sample-weight", "w", "--class-weight", "balanced", "--dropout", "0.2,0.1", "--input-dropout", "0.05",
            "--l2", "0.01", "--schedule", "plateau", "--patience", "0", "--factor", "0.5"]
    r = run("train", "--data", tmp_path / "w.csv", *common, *args, "--out", tmp_path / "c")
    assert r.returncode == 0, r.stderr
    net = fastbp.load(tmp_path / "c" / "model.npz")
    assert net.dropout == [0.2, 0.1] and net.input_dropout == 0.05 and net.sizes[0] == 4
    assert net.state.schedule["config"]["patience"] == 0 and net.state.schedule["config"]["monitor"] == "val_loss"
    saved = (tmp_path / "c" / "config.toml").read_text()
    for line in ('sample_weight = "w"', 'class_weight = "balanced"', "dropout = [0.2, 0.1]", 'schedule = "plateau"',
                 "patience = 0", "factor = 0.5", "l2 = 0.01"):
        assert line in saved, saved
    hist = json.loads((tmp_path / "c" / "metrics.json").read_text())["history"]
    assert hist["lr"] == plateau_rates(hist["val_loss"], 0.2, patience=0, factor=0.5)[:-1]
    r = run("train", "--config", tmp_path / "c" / "config.toml", "--out", tmp_path / "d", "--quiet")
    assert r.returncode == 0, r.stderr
    assert np.array_equal(fastbp.load(tmp_path / "d" / "model.npz").params, net.params)
    # the run's own test split, scored again by `evaluate`, leaves the weight column out as training did
    r = run("evaluate", tmp_path / "c" / "model.npz", "--split", "test")
    assert r.returncode == 0, r.stderr


# --------------------------------------------------------------------------- one-line errors


BAD_OPTIONS = [("python -m fastbp.cli", ["--layers", "0"], "--layers"), ("python -m fastbp.cli", ["--lr", "-1"], "--lr"),
               ("python -m fastbp.cli", ["--lr=-1"], "--lr"), ("python -m fastbp.cli", ["--epochs", "0"], "--epochs"),
               ("fastbp", ["--layers", "0"], "--layers"), ("fastbp", ["--lr", "-1"], "--lr")]


@pytest.mark.parametrize("command, args, option", BAD_OPTIONS)
def test_bad_option_is_a_one_line_error(tmp_path, command, args, option):
    cmd = COMMANDS[command]()
    r = run_command(cmd, "train", *args, "--out", tmp_path / "run", cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastbp: error:"), r.stderr
    assert option in lines[0]
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert not (tmp_path / "run").exists()  # nothing was trained or written


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


def test_bad_feature_options_are_one_line_errors(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((30, 3))
    y = (X[:, 0] > 0).astype(int)
    w = np.ones(30)
    w[3] = -1
    _csv(tmp_path / "w.csv", X, y, w)
    cases = [
        (["--data", tmp_path / "w.csv", "--target", "label", "--sample-weight", "weight"], "weight"),
        (["--data", tmp_path / "w.csv", "--target", "label", "--sample-weight", "w"], "sample_weight"),
        (["--data", "digits", "--sample-weight", "w"], "sample_weight"),
        (["--dropout", "1.5"], "dropout"),
        (["--dropout", "a,b"], "--dropout"),
        (["--class-weight", "even"], "--class-weight"),
        (["--schedule", "plateau", "--factor", "2"], "factor"),
    ]
    for args, message in cases:
        r = run("train", "--epochs", "1", "--out", tmp_path / "x", *args)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("fastbp: error: "), (args, r.stderr)
        assert message in lines[0], (args, lines[0])


# In-process (fastbp.cli.main): the line a user sees, for each kind of mistake.
def test_out_naming_an_existing_file(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    cli_fails(capsys, "train", "--epochs", 1, "--out", tmp_path / "f", names=["--out", tmp_path / "f"])


def test_predict_out_naming_a_directory(tmp_path, capsys, model_file):
    (tmp_path / "d").mkdir()
    np.savez(tmp_path / "x.npz", X=np.random.default_rng(11).standard_normal((5, 4)), y=np.zeros(5, int))
    cli_fails(capsys, "predict", model_file[0], "--data", tmp_path / "x.npz", "--out", tmp_path / "d", names=["--out"])


@pytest.mark.parametrize("text, names", [('layers = "4,x"\n', ["layers", "c.toml", "4,x"]),
                                         ("seed = -1\n", ["seed", "c.toml", "-1"]),
                                         ("data = 5\n", ["data", "c.toml", "5"]),
                                         ("epochs = 1.5\n", ["epochs", "c.toml"]),
                                         ('lr = "fast"\n', ["lr", "c.toml"]),
                                         ("layers = [8, 0]\n", ["layers", "c.toml"]),
                                         ("val_split = true\n", ["val_split", "c.toml"])])
def test_config_values_are_named_with_their_file(tmp_path, capsys, text, names):
    (tmp_path / "c.toml").write_text(text)
    cli_fails(capsys, "train", "--config", tmp_path / "c.toml", "--out", tmp_path / "run", names=names)
    assert not (tmp_path / "run").exists()


def test_seed_on_the_command_line(capsys, tmp_path):
    cli_fails(capsys, "train", "--seed", -1, "--out", tmp_path / "run", names=["--seed", "-1"])


def test_an_unexpected_exception_says_it_is_a_bug(capsys, monkeypatch):
    monkeypatch.setattr(cli, "_info", lambda args: 1 // 0)
    assert cli.main(["info"]) == cli.EXIT_BUG
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("fastbp: error: a bug in fastbp (ZeroDivisionError") and "--debug" in err
    with pytest.raises(ZeroDivisionError):
        cli.main(["--debug", "info"])

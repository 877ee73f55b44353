"""`fastbp` on a user's own CSV files, as a user runs it (subprocesses): names, several targets, files
without targets, the run's own test split, ONNX export, re-runs, and one-line errors (issue 17)."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

FASTBP = [sys.executable, "-m", "fastbp.cli"]


def run(*args, cwd):
    return subprocess.run([*FASTBP, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=240)


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
    import fastbp

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
    import fastbp

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
    import fastbp

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

    from fastbp import cli
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


"""The command line's sample weights, class weights, dropout, L2 and plateau schedule, run as a user runs them."""

import json

import numpy as np

import fastbp
from test_cli_runs import run
from test_plateau import torch_rule


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
    assert hist["lr"] == torch_rule(hist["val_loss"], 0.2, patience=0, factor=0.5)[:-1]
    r = run("train", "--config", tmp_path / "c" / "config.toml", "--out", tmp_path / "d", "--quiet")
    assert r.returncode == 0, r.stderr
    assert np.array_equal(fastbp.load(tmp_path / "d" / "model.npz").params, net.params)
    # the run's own test split, scored again by `evaluate`, leaves the weight column out as training did
    r = run("evaluate", tmp_path / "c" / "model.npz", "--split", "test")
    assert r.returncode == 0, r.stderr


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

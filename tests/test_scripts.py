"""The runnable scripts in scripts/: each answers --help and runs on tiny settings."""

import subprocess
import sys
from pathlib import Path

import pytest
from test_data import make_mnist_dir

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def run(script, *args, cwd=None):
    return subprocess.run([sys.executable, str(SCRIPTS / script), *map(str, args)], check=False,
                          capture_output=True,
                          text=True, timeout=300, cwd=cwd)


@pytest.mark.parametrize("script", sorted(p.name for p in SCRIPTS.glob("*.py")))
def test_help(script):
    r = run(script, "--help")
    assert r.returncode == 0, r.stderr
    assert "usage" in r.stdout.lower()


def test_train_mnist_smoke(tmp_path):
    make_mnist_dir(tmp_path / "mnist", "dash", gz=True, n=300, n_test=60)
    r = run("train_mnist.py", tmp_path / "mnist", "--layers", "16", "--epochs", "2", "--save", tmp_path / "m.npz")
    assert r.returncode == 0, r.stderr
    assert "test accuracy" in r.stdout and (tmp_path / "m.npz").exists()


def test_sweep_lr_smoke(tmp_path):
    r = run("sweep_lr.py", "--epochs", "2", "--lrs", "0.01,0.1", "--widths", "8", "--seeds", "1", "--out", "o",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "o" / "trials.csv").read_text().count("\n") == 3
    assert (tmp_path / "o" / "accuracy_vs_lr.png").stat().st_size > 1000


def test_bench_smoke(tmp_path):
    out = tmp_path / "b.json"
    r = run("bench.py", "--quick", "--only", "tiny", "--peers", "none", "--training", "--sweep", "--rounds", "2",
            "--json", out)
    assert r.returncode == 0, r.stderr
    import json

    rep = json.loads(out.read_text())
    (res,) = [x for x in rep["results"] if x["framework"] == "fastbp" and x["dtype"] == "float32"]
    assert res["samples_per_second"] > 0 and res["memory"]["peak_rss"] > 0
    assert len(res["rounds"]) == 2 and res["samples_per_second"] == max(res["rounds"])  # the best round
    assert set(rep["training"]["variants"]) >= {"sgd", "adam", "sgd + validation (10%) + progress bar"}
    assert rep["sweep"]["trials"] == 48 and len(rep["sweep"]["fit_seconds"]) == 3
    assert "| tiny | 64-32-10 |" in r.stdout and "fastbp.sweep is faster by" in r.stdout


def test_profile_epoch_smoke():
    r = run("profile_epoch.py", "--only", "tiny", "--samples", "256", "--repeats", "1", "--engine", "openblas")
    assert r.returncode == 0, r.stderr
    assert "BLAS (its own threads)" in r.stdout and "forward products" in r.stdout and "the fused epoch" in r.stdout
    rows = [ln.split("|") for ln in r.stdout.splitlines() if ln.startswith("| ") and "µs" not in ln]
    assert len(rows) == 10 and all(float(c[2].replace(",", "")) > 0 for c in rows)


@pytest.mark.parametrize("args, message", [
    (["--only", "nope"], "unknown configuration 'nope'"),
    (["--only", "none", "--quick"], "no configuration and no other section"),
    (["--repeats", "0"], "--repeats: expected an integer >= 1, got 0"),
    (["--rounds", "0"], "--rounds: expected an integer >= 1, got 0"),
])
def test_bench_bad_options_are_one_line_errors(args, message):
    r = run("bench.py", *args)
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr


def test_bench_sweeps_smoke(tmp_path):
    out = tmp_path / "s.json"
    r = run("bench_sweeps.py", "--quick", "--repeats", "1", "--search-seeds", "1", "--no-sklearn", "--json", out)
    assert r.returncode == 0, r.stderr
    import json

    rep = json.loads(out.read_text())
    assert rep["halving"]["Halving()"]["time_ratio"] > 0 and len(rep["halving"]["runs"]["full"]) == 1
    assert rep["cv"]["trials"] == 48 and rep["cv"]["folds"] == 5 and rep["grid"]["vs_fits"] > 0
    assert r.stdout.startswith("(a)") and "\n(b)" in r.stdout and "\n(c)" in r.stdout

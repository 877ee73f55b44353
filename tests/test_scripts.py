"""The runnable scripts in scripts/: each answers --help and runs on tiny settings."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_mnist_dir

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
            "--engines", "loops", "--extras", "--predict", "--json", out)
    assert r.returncode == 0, r.stderr
    import json

    rep = json.loads(out.read_text())
    (res,) = [x for x in rep["results"] if x["framework"] == "fastbp" and x["dtype"] == "float32"]
    assert res["samples_per_second"] > 0 and res["memory"]["peak_rss"] > 0
    assert len(res["rounds"]) == 2 and res["samples_per_second"] == max(res["rounds"])  # the best round
    assert set(rep["training"]["variants"]) >= {"sgd", "adam", "sgd + validation (10%) + progress bar"}
    assert rep["sweep"]["trials"] == 48 and len(rep["sweep"]["fit_seconds"]) == 3
    assert "| tiny | 64-32-10 |" in r.stdout and "fastbp.sweep is faster by" in r.stdout
    # The engine forced through the environment reaches the worker, which says what it ran.
    (eng,) = rep["engines"]
    assert eng["engine_forced"] == "loops" and eng["samples_per_second"] > 0 and "engine" in eng
    extras = {x["config"]: x for x in rep["extras"]}
    assert set(extras) == {"adam (lr 0.001)", "sample weights", "dropout 0.2 (both hidden layers)"}
    assert all(x["samples_per_second"] > 0 for x in extras.values())
    (pred,) = rep["predict"]
    assert pred["framework"] == "fastbp" and pred["samples_per_second"] > 0 and 0 < pred["one_row_seconds"] < 1
    assert rep["machine"]["cores"] >= 1 and rep["blas"]["fastbp"] and rep["versions"]["numba"]
    assert "BLAS libraries loaded, per worker" in r.stdout and "| adam (lr 0.001) |" in r.stdout


@pytest.mark.parametrize("peer", ["torch", "jax", "sklearn"])
def test_bench_peer_workers(peer):
    """Each peer's worker trains (plain SGD and Adam) and predicts on a tiny job, in a process of its own."""
    pytest.importorskip(peer)
    import json

    job = {"layers": [8, 6, 3], "batch": 16, "samples": 64, "dtype": "float32", "repeats": 1}
    spec = {"framework": peer, "lr": 0.01, "seed": 0, "quick": True,
            "jobs": [job, {**job, "extra": {"optimizer": "adam", "lr": 1e-3}}, {**job, "kind": "predict"},
                     {**job, "extra": {"sample_weight": "@w"}}]}
    r = run("bench.py", "--worker", json.dumps(spec))
    assert r.returncode == 0, r.stderr
    sgd, adam, pred, unknown = [json.loads(ln.split(" ", 1)[1]) for ln in r.stdout.splitlines()
                                if ln.startswith("@@fastbp-bench ")]
    for res in (sgd, adam, pred):
        assert res.get("samples_per_second", 0) > 0, res
    assert pred["one_row_seconds"] > 0 and "process" in sgd
    assert "does not implement the option 'sample_weight'" in unknown["error"]


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
    (["--engines", "cuda"], "--engines: unknown engine 'cuda'"),
    (["--peers", "mxnet"], "--peers: unknown framework 'mxnet'"),
])
def test_bench_bad_options_are_one_line_errors(args, message):
    r = run("bench.py", *args)
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr


def test_bench_sweeps_smoke(tmp_path):
    out = tmp_path / "s.json"
    r = run("bench_sweeps.py", "--quick", "--repeats", "1", "--search-seeds", "1", "--no-sklearn", "--rest", "0",
            "--json", out)
    assert r.returncode == 0, r.stderr
    import json

    rep = json.loads(out.read_text())
    assert rep["halving"]["Halving()"]["time_ratio"] > 0 and len(rep["halving"]["runs"]["full"]) == 1
    assert rep["cv"]["trials"] == 48 and rep["cv"]["folds"] == 5 and rep["grid"]["vs_fits"] > 0
    assert r.stdout.startswith("(a)") and "\n(b)" in r.stdout and "\n(c)" in r.stdout


def test_roofline_table_from_a_report(tmp_path):
    # tiny (64-32-10): forward and weight gradient of both layers, input gradient of the second:
    # 2 · (2 · (64·32 + 32·10) + 32·10) = 10,112 FLOPs per sample; at 1e6 samples/s, 10.1 GFLOP/s.
    report = {"results": [{"config": "tiny", "framework": "fastbp", "dtype": "float32", "samples_per_second": 5e5},
                          {"config": "tiny", "framework": "fastbp", "dtype": "float32", "samples_per_second": 1e6},
                          {"config": "tiny", "framework": "fastbp", "dtype": "float64", "samples_per_second": 9e6}]}
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(report))
    r = run("roofline.py", "--json", path, "--peak", "202.24")
    assert r.returncode == 0, r.stderr
    row = next(ln for ln in r.stdout.splitlines() if ln.startswith("| tiny |"))
    assert row.split("|")[2:4] == [" 0.01011 ", " 10.1 (5%) "]
    r = run("roofline.py", "--json", tmp_path / "missing.json", "--peak", "200")
    assert r.returncode == 2 and r.stderr.startswith("scripts/roofline.py: error: --json")

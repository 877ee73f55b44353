"""Sweeps: grids and random search, populations trained as Network.fit, resume, errors, the command line, Dask.

Resuming reads the results file back, naming its malformed lines."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

import fastbp
from conftest import cli_fails
from fastbp.datasets import digits
from fastbp.sweep import _digest

X, Y = digits()
X, Y = X[:600], Y[:600]
FIXED = dict(layers=[16], epochs=3, batch_size=32, validation_split=0.25)
SPACE = {"lr": [0.03, 0.3], "momentum": [0.0, 0.9], "seed": [0, 1]}


def _retrain(config):
    net = fastbp.Network([64, *config["layers"], 10], activation=config["activation"], seed=config["seed"])
    opt = fastbp.SGD(lr=config["lr"], momentum=config["momentum"] or 0.0)
    net.fit(X, Y, epochs=config["epochs"], batch_size=config["batch_size"], optimizer=opt, validation_split=0.25,
            verbose=0)
    return net


@pytest.fixture(scope="module")
def grid():
    return fastbp.sweep(SPACE, X, Y, **FIXED)


def test_grid_has_every_trial_once(grid):
    assert len(grid) == 8
    seen = {(t["config"]["lr"], t["config"]["momentum"], t["config"]["seed"]) for t in grid.trials}
    assert len(seen) == 8
    for t in grid.trials:
        assert len(t["history"]["val_accuracy"]) == 3
        assert 0 <= t["final"]["val_accuracy"] <= 1
    assert grid.best["final"]["val_accuracy"] == max(t["final"]["val_accuracy"] for t in grid.trials)


def test_every_trial_is_bitwise_what_fit_gives(grid):
    for t in grid.trials:
        net = _retrain(t["config"])
        assert _digest(net.params) == t["params_digest"], t["config"]
        assert net.history["val_accuracy"][-1] == pytest.approx(t["final"]["val_accuracy"], abs=0)
        assert net.history["val_loss"][-1] == t["final"]["val_loss"]


def test_a_large_validation_set_is_validated_as_fit_does():
    # 300 validation rows: more than one chunk where training runs BLAS on the calling thread (AVX-512 hosts)
    res = fastbp.sweep({"seed": [0, 1]}, X, Y, lr=0.1, **{**FIXED, "validation_split": 0.5})
    for t in res.trials:
        net = fastbp.Network([64, 16, 10], seed=t["config"]["seed"])
        net.fit(X, Y, epochs=3, batch_size=32, optimizer=fastbp.SGD(lr=0.1), validation_split=0.5,
                verbose=0)
        assert _digest(net.params) == t["params_digest"]
        assert net.history["val_loss"] == t["history"]["val_loss"]


def test_to_csv(grid, tmp_path):
    grid.to_csv(tmp_path / "t.csv")
    lines = (tmp_path / "t.csv").read_text().strip().splitlines()
    assert len(lines) == 9 and "final_val_accuracy" in lines[0] and "lr" in lines[0].split(",")


def test_random_search_is_seeded():
    space = {"lr": fastbp.loguniform(1e-3, 1.0), "momentum": fastbp.uniform(0.0, 0.9),
             "activation": fastbp.choice(["relu", "tanh"])}
    a = fastbp.sweep(space, X, Y, method="random", trials=4, seed=3, **FIXED)
    b = fastbp.sweep(space, X, Y, method="random", trials=4, seed=3, **FIXED)
    assert [t["config"] for t in a.trials] == [t["config"] for t in b.trials]
    assert all(1e-3 <= t["config"]["lr"] <= 1.0 for t in a.trials)
    assert [t["params_digest"] for t in a.trials] == [t["params_digest"] for t in b.trials]


def test_mixed_shapes_and_optimizers_in_one_sweep():
    res = fastbp.sweep({"layers": [[8], [16, 8]], "optimizer": ["sgd", "adam"]}, X, Y, lr=0.01, **{
        k: v for k, v in FIXED.items() if k != "layers"})
    assert len(res) == 4
    assert {json.dumps(t["config"]["layers"]) for t in res.trials} == {"[8]", "[16, 8]"}


def test_resume_after_a_kill_gives_the_same_table(tmp_path, grid):
    path = tmp_path / "trials.jsonl"
    # "killed" half-way: the first four trials done, the fifth cut mid-line
    half = {"lr": [0.03], "momentum": [0.0, 0.9], "seed": [0, 1]}
    fastbp.sweep(half, X, Y, results=path, **FIXED)
    with open(path, "a") as f:
        f.write('{"config": {"lr": 0.3, "mom')
    res = fastbp.sweep(SPACE, X, Y, results=path, resume=True, **FIXED)
    assert len(res) == 8
    key = lambda t: json.dumps(t["config"], sort_keys=True)  # noqa: E731
    assert sorted((key(t), t["params_digest"]) for t in res.trials) == \
        sorted((key(t), t["params_digest"]) for t in grid.trials)
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]
    assert len({key(t) for t in lines}) == 8


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(space={"learning_rate": [0.1]}), "learning_rate"),
        (dict(space={}), "space"),
        (dict(space={"lr": []}), "lr"),
        (dict(space={"lr": [0.1]}, optimiser="sgd"), "optimiser"),
        (dict(space={"lr": [0.1] * 11, "seed": list(range(10))}, max_trials=100), "max_trials"),
        (dict(space={"lr": [0.1]}, metric="val_accuracy", validation_split=None), "metric"),
    ],
)
def test_bad_sweeps(kwargs, message):
    kw = {**FIXED, **kwargs}
    space = kw.pop("space")
    with pytest.raises((ValueError, TypeError), match=message):
        fastbp.sweep(space, X, Y, **kw)


def test_bad_distributions():
    with pytest.raises(ValueError, match="a < b"):
        fastbp.loguniform(1.0, 0.1)
    with pytest.raises(ValueError, match="a < b"):
        fastbp.uniform(2, 2)
    with pytest.raises(ValueError, match="choice"):
        fastbp.choice([])


SPEC = """
[data]
path = "digits"
val_split = 0.2

[train]
layers = [16]
epochs = 2

[search]
method = "grid"

[space]
lr = [0.05, 0.2]
seed = [0, 1]
"""


def test_sweep_values_fit_refuses_are_refused_before_any_trial(tmp_path):
    rng = np.random.default_rng(11)
    X, y = rng.standard_normal((40, 3)), rng.integers(0, 2, 40)
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
        fastbp.sweep({"lr": [0.1]}, X, rng.standard_normal(40), loss="mse", metric="accuracy", mode="max")
    assert not (tmp_path / "m.jsonl").exists()


def test_malformed_results_lines_are_named_and_run_again(tmp_path):
    # 64 features: a network large enough for OpenBLAS on AVX-512 (policy.engine_for), as the other sweeps with
    # validation in the suite, so its populations compile no kernels of their own
    rng = np.random.default_rng(11)
    X, y = rng.standard_normal((40, 64)), rng.integers(0, 2, 40)
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


def test_cli_sweep(tmp_path):
    (tmp_path / "s.toml").write_text(SPEC)
    r = subprocess.run([sys.executable, "-m", "fastbp.cli", "sweep", "s.toml", "--out", "o"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "top 4 by val_accuracy" in r.stdout and "trials 4/4" in r.stderr
    for name in ("trials.jsonl", "trials.csv", "sweep.png"):
        assert (tmp_path / "o" / name).exists()
    (tmp_path / "bad.toml").write_text(SPEC.replace("lr = ", "learning_rate = "))
    r = subprocess.run([sys.executable, "-m", "fastbp.cli", "sweep", "bad.toml"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stderr.strip().startswith("fastbp: error:") and "learning_rate" in r.stderr
    (tmp_path / "big.toml").write_text(SPEC.replace("seed = [0, 1]", "seed = " + str(list(range(30)))))
    r = subprocess.run([sys.executable, "-m", "fastbp.cli", "sweep", "big.toml", "--max-trials", "50"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "max_trials" in r.stderr


def test_sweep_spec_with_batch_size_zero(tmp_path, capsys):
    (tmp_path / "s.toml").write_text('[train]\nlayers = [8]\nepochs = 1\n[space]\nbatch_size = [32, 0]\n'
                                     '[data]\nval_split = 0.2\n')
    cli_fails(capsys, "sweep", tmp_path / "s.toml", "--out", tmp_path / "o", names=["batch_size", "0"])
    assert not (tmp_path / "o" / "trials.jsonl").exists()


# ----------------------------------------------------------------------------- Dask

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dask_cluster(tmp_path):
    pytest.importorskip("distributed")
    dask = shutil.which("dask") or pytest.skip("the dask command is not installed")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    for _ in range(2):
        procs.append(subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--no-nanny",
                                       "--no-dashboard", "--host", "127.0.0.1"], cwd=tmp_path, env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    from distributed import Client

    deadline = time.time() + 60
    while True:
        try:
            with Client(address, timeout=5) as c:
                if len(c.scheduler_info()["workers"]) == 2:
                    break
        except OSError:
            pass
        if time.time() > deadline:
            for p in procs:
                p.kill()
            pytest.skip("the Dask cluster did not start")
        time.sleep(0.5)
    yield address, procs
    for p in procs:
        p.kill()
        p.wait()


def test_dask_gives_the_local_results_and_survives_a_killed_worker(dask_cluster, grid, tmp_path):
    address, procs = dask_cluster
    space = {**SPACE, "seed": [0, 1, 2, 3]}
    local = fastbp.sweep(space, X, Y, **FIXED)
    killed = []

    def kill_one(done, total, best):
        if not killed:
            procs[1].send_signal(signal.SIGKILL)
            killed.append(done)

    res = fastbp.sweep(space, X, Y, backend="dask", scheduler=address, results=tmp_path / "d.jsonl",
                       progress=kill_one, **FIXED)
    assert killed, "a worker was killed mid-sweep"
    key = lambda t: json.dumps(t["config"], sort_keys=True)  # noqa: E731
    assert len(res) == 16 and len({key(t) for t in res.trials}) == 16
    assert sorted((key(t), t["params_digest"]) for t in res.trials) == \
        sorted((key(t), t["params_digest"]) for t in local.trials)
    lines = (tmp_path / "d.jsonl").read_text().splitlines()
    assert len(lines) == 16


def test_a_population_in_steps_and_on_its_own_rows_is_fit():
    """train_population continued over two calls, each network on its own rows (as a fold of a
    cross-validation trains), gives bitwise what fit gives on those rows in one call."""
    from fastbp.training import train_population

    rng = np.random.default_rng(3)
    Xa = rng.standard_normal((90, 6)).astype(np.float32)
    ya = rng.integers(0, 3, 90)
    rows = [np.r_[0:30, 60:90], np.r_[30:90]]  # folds 1 and 0 held out; unequal lengths too: 60 and 60
    rows.append(np.r_[0:45])
    sched = fastbp.CosineLR()
    nets = [fastbp.Network([6, 5, 3], seed=s) for s in range(3)]
    opts = [fastbp.SGD(lr=0.1, momentum=0.9), fastbp.Adam(lr=0.01), fastbp.SGD(lr=0.05)]
    X, Y = nets[0].check_data(Xa, ya)
    for part in (2, 2):
        train_population(nets, X, Y, part, 16, opts, [sched] * 3, [None] * 3, length=4, rows=rows)
    for i, r in enumerate(rows):
        ref = fastbp.Network([6, 5, 3], seed=i)
        ref.fit(Xa[r], ya[r], epochs=4, batch_size=16, optimizer=opts[i], schedule=sched, verbose=0)
        np.testing.assert_array_equal(nets[i].params, ref.params)
        assert nets[i].history["loss"] == ref.history["loss"]
        assert nets[i].epochs_trained == 4 and nets[i].state.step == ref.state.step

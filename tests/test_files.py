"""Files: model files, atomic writes, the run directory's lock, and what faults leave behind.

Model files saved and loaded (a bitwise round trip; clear errors on bad or tampered files), writes that leave the
old file or the new one whole, the files' modes, and what Ctrl-C at every line of fit, SIGKILL or a full disk
leave. The fault injection is written against the public API (and ``sys.settrace`` to reach every line), so the
tests hold however the epoch loop is arranged inside fastbp."""

import errno
import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest

import fastbp
from conftest import cli_fails
from fastbp import Gaussian, PiecewiseLinear, Sigmoid, Step
from fastbp import cli
from fastbp import io as fio
from fastbp.common import files
from fastbp.data import load

FASTBP_DIR = os.path.dirname(os.path.abspath(fastbp.__file__))
RNG = np.random.default_rng(3)
X = RNG.standard_normal((30, 3))
Y = RNG.integers(0, 3, 30)
EPOCHS = 2


def _net():
    return fastbp.Network([3, 5, 3], activation="tanh", seed=4)


# --------------------------------------------------------------------------- save and load


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


# --------------------------------------------------------------------------- bad and tampered model files


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


@pytest.mark.parametrize("change, arrays, names", [
    (lambda c: c["history"]["history"]["loss"].append(1.0), {}, ["history", "loss"]),
    (lambda c: c.__setitem__("format_version", "2"), {}, ["format_version"]),
    (lambda c: c.__setitem__("epochs_trained", -1), {}, ["epochs_trained"]),
    (lambda c: c["network"].__setitem__("layers", [4, 0, 3]), {}, ["layers"]),
    (None, {"params": "nan"}, ["params", "nan"]),
    (None, {"opt_state": "inf"}, ["opt_state", "inf"]),
])
def test_tampered_model_files(tmp_path, capsys, model_file, change, arrays, names):
    _, original = model_file
    arrays = {k: np.full_like(original[k], float(v)) for k, v in arrays.items()}
    path = tampered(tmp_path, model_file, change, **arrays)
    with pytest.raises(ValueError) as info:
        fastbp.load(path)
    for name in [str(path), *names]:
        assert name in str(info.value), str(info.value)
    np.savez(tmp_path / "x.npz", X=RNG.standard_normal((5, 4)), y=np.zeros(5, int))
    cli_fails(capsys, "evaluate", path, "--data", tmp_path / "x.npz", names=[path])
    cli_fails(capsys, "predict", path, "--data", tmp_path / "x.npz", "--out", tmp_path / "p.csv", names=[path])
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
    cli_fails(capsys, "evaluate", tmp_path / "model.npz", "--data", "digits", names=[tmp_path / "model.npz"])


# --------------------------------------------------------------------------- writes


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    net = _net()
    net.save(path)
    before = path.read_bytes()

    def crash(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(fio.np, "savez", crash)
    net.params[:] = 0
    with pytest.raises(OSError):
        net.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


def test_a_killed_writer_leaves_a_readable_file(tmp_path):
    path = tmp_path / "big.npz"
    fastbp.Network([512, 1024, 1024, 10], seed=0).save(path)
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import fastbp
        net = fastbp.Network([512, 1024, 1024, 10], seed=1)
        while True:
            net.save({str(path)!r})
    """)])
    try:
        time.sleep(3.0)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    net = fastbp.load(path)  # the old model or a complete new one, never a torn file
    assert net.sizes == [512, 1024, 1024, 10]


@pytest.mark.skipif(os.name != "posix", reason="SIGINT delivery")
def test_ctrl_c_during_a_save_leaves_no_temporary_file(tmp_path):
    """Ctrl-C that lands while a model is written is raised once the write is complete."""
    path = tmp_path / "m.npz"
    net = fastbp.Network([64, 256, 10])

    def write(f):
        os.kill(os.getpid(), signal.SIGINT)  # arrives in the middle of the write
        f.write(b"first half")
        time.sleep(0.05)
        f.write(b" second half")

    with pytest.raises(KeyboardInterrupt):
        files.atomic_write(path, write)
    assert path.read_bytes() == b"first half second half"
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]
    net.save(path)
    assert fastbp.load(path).sizes == [64, 256, 10]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_files_get_the_umasks_mode(tmp_path, umask):
    old = os.umask(umask)
    try:
        assert cli.main(["train", "--epochs", "1", "--out", str(tmp_path / "run"), "--quiet"]) == 0
    finally:
        os.umask(old)
    for name in ("model.npz", "metrics.json", "config.toml"):
        assert (tmp_path / "run" / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


def test_a_full_filesystem_during_the_checkpoint_save(tmp_path, capsys, monkeypatch):
    def full(f, **arrays):
        f.write(b"PK")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fio.np, "savez", full)
    line = cli_fails(capsys, "train", "--epochs", 2, "--checkpoint-every", 1, "--out", tmp_path / "run", "--quiet",
                 names=[tmp_path / "run" / "model.npz", "No space left"])
    assert ".tmp-" not in line
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.startswith(files.TMP_PREFIX)]


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


# --------------------------------------------------------------------------- Ctrl-C at every line of fit


def _fit(net, path, epochs=EPOCHS, callbacks=()):
    return net.fit(X, Y, epochs=epochs, batch_size=8, optimizer=fastbp.Adam(lr=0.01), validation_split=0.2,
                   checkpoint=path, checkpoint_every=1, callbacks=list(callbacks), verbose=0)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The parameters and History at the end of every epoch of an uninterrupted run."""
    net = _net()
    params = {0: net.params.copy()}
    _fit(net, tmp_path_factory.mktemp("ref") / "ck.npz",
         callbacks=[lambda n, epoch, logs: params.__setitem__(epoch, n.params.copy())])
    losses = list(net.history["loss"])
    return params, losses


def _interrupted_fit(path, at_line, only=None):
    """Run _fit with KeyboardInterrupt raised at the ``at_line``-th line fastbp executes (of the files whose path in
    the package ``only`` takes); returns (network, whether it was interrupted, lines counted)."""
    net = _net()
    count = [0]

    def local(frame, event, arg):
        if event == "line":
            count[0] += 1
            # where fastbp holds Ctrl-C back (while a file is written) a real one would wait: so does this one
            if count[0] >= at_line > 0 and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                at_line_done()
                raise KeyboardInterrupt
        return local

    def at_line_done():
        nonlocal at_line
        at_line = 0

    def tracer(frame, event, arg):
        name = frame.f_code.co_filename
        if not name.startswith(FASTBP_DIR) or (only is not None and not only(os.path.relpath(name, FASTBP_DIR))):
            return None
        return local

    interrupted = False
    sys.settrace(tracer)
    try:
        _fit(net, path)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        sys.settrace(None)
    return net, interrupted, count[0]


def _lines_in_fit(tmp_path, only):
    _, interrupted, total = _interrupted_fit(tmp_path / "count.npz", at_line=-1, only=only)
    assert not interrupted and total > 0
    return total


def _in_the_loop(path):
    """Whether ``path`` (in the package) is a file of the epoch loop or of what it calls each epoch (network.py and
    the training package): a Ctrl-C at each of their lines."""
    return path == "network.py" or path.startswith("training" + os.sep)


def _check_files_after_interrupt(net, ck, reference):
    """What holds wherever Ctrl-C lands: the parameters are those of the epoch the count says, the
    checkpoint loads and is a completed epoch with its History, no temporary file is left."""
    params, _ = reference
    e = net.epochs_trained
    assert 0 <= e <= EPOCHS
    np.testing.assert_array_equal(net.params, params[e])
    if ck.exists():
        saved = fastbp.load(ck)
        np.testing.assert_array_equal(saved.params, params[saved.epochs_trained])
        assert saved.history.epoch == list(range(1, saved.epochs_trained + 1))
    assert not [p.name for p in ck.parent.iterdir() if p.name.startswith(files.TMP_PREFIX)]


def test_ctrl_c_anywhere_in_fastbp_during_fit_leaves_a_completed_epoch(tmp_path, reference):
    """Every other line of fastbp's Python code that a fit runs (the loop, checks, saving, ...); the next test
    takes every line of the loop's own files."""
    total = _lines_in_fit(tmp_path, None)
    for k in range(1, total + 1, 2):
        ck = tmp_path / f"k{k}" / "ck.npz"
        ck.parent.mkdir()
        net, interrupted, _ = _interrupted_fit(ck, k)
        assert interrupted, k
        _check_files_after_interrupt(net, ck, reference)


def test_ctrl_c_at_every_line_of_the_loop_leaves_history_optimizer_and_rng_agreeing(tmp_path, reference):
    params, losses = reference
    total = _lines_in_fit(tmp_path, _in_the_loop)
    failures = []
    for k in range(1, total + 1):
        ck = tmp_path / f"k{k}" / "ck.npz"
        ck.parent.mkdir()
        net, interrupted, _ = _interrupted_fit(ck, k, _in_the_loop)
        e = net.epochs_trained
        try:
            assert interrupted
            _check_files_after_interrupt(net, ck, reference)
            assert net.history.epoch == list(range(1, e + 1)), (net.history.epoch, e)
            assert all(len(v) == e for v in net.history.history.values()), net.history.history
            if ck.exists():
                saved = fastbp.load(ck)
                assert saved.history["loss"] == losses[: saved.epochs_trained] if saved.epochs_trained else True
            # optimizer state, step and RNG agree too: finishing the run gives the uninterrupted one, bitwise
            if e < EPOCHS:
                _fit(net, ck, epochs=EPOCHS - e)
            np.testing.assert_array_equal(net.params, params[EPOCHS])
            assert net.history["loss"] == losses
        except Exception as exc:  # noqa: BLE001 - collect every line that fails, then report them all
            failures.append(f"line {k}: {type(exc).__name__}: {str(exc)[:120]}")
    assert not failures, f"{len(failures)} of {total} lines:\n" + "\n".join(failures)


# --------------------------------------------------------------------------- SIGKILL


# Long enough that no kill comes after the last epoch (an epoch takes a few ms: a kill within 0.6 s of the first).
KILL_EPOCHS = 400


CHILD = """
import sys, numpy as np, fastbp
rng = np.random.default_rng(0)
X = rng.standard_normal((3000, 40)).astype(np.float32)
y = rng.integers(0, 5, 3000)
net = fastbp.Network([40, 64, 5], seed=1)
print("ready", flush=True)
net.fit(X, y, epochs=int(sys.argv[2]), batch_size=16, optimizer="adam", checkpoint=sys.argv[1], checkpoint_every=1,
        verbose=0, callbacks=[lambda n, e, logs: print("epoch", e, flush=True)])
"""


@pytest.fixture(scope="module")
def kill_reference(tmp_path_factory):
    """The parameters after each epoch of the child's run, computed here."""
    rng = np.random.default_rng(0)
    Xk = rng.standard_normal((3000, 40)).astype(np.float32)
    yk = rng.integers(0, 5, 3000)
    net = fastbp.Network([40, 64, 5], seed=1)
    params = {}
    net.fit(Xk, yk, epochs=KILL_EPOCHS, batch_size=16, optimizer="adam", verbose=0,
            callbacks=[lambda n, e, logs: params.__setitem__(e, n.params.copy())])
    return params


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_sigkill_at_random_moments_leaves_a_loadable_completed_epoch(tmp_path, kill_reference):
    rng = np.random.default_rng(7)
    seen, left = set(), 0
    for rep in range(6):
        folder = tmp_path / f"run{rep}"
        folder.mkdir()
        ck = folder / "model.npz"
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(ck), str(KILL_EPOCHS)], stdout=subprocess.PIPE,
                                 text=True,
                                 env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
        try:
            assert child.stdout.readline().strip() == "ready"
            child.stdout.readline()  # the first epoch is done: its checkpoint is being written or is there
            time.sleep(float(rng.uniform(0.0, 0.6)))
        finally:
            child.kill()
            child.wait()
        net = fastbp.load(ck)  # always loads
        assert net.epochs_trained in kill_reference
        np.testing.assert_array_equal(net.params, kill_reference[net.epochs_trained])
        assert len(net.history) == net.epochs_trained
        seen.add(net.epochs_trained)
        left += any(p.name.startswith(files.TMP_PREFIX) for p in folder.iterdir())
    print(f"epochs at the kills {sorted(seen)}; kills that left a temporary file: {left} of 6")
    assert len(seen) >= 2, seen  # the kills landed at different moments
    # a temporary file a kill leaves is removed when a run starts in that directory
    (folder / f"{files.TMP_PREFIX}0123456789ab.npz").write_bytes(b"half a file")
    assert cli.main(["train", "--epochs", "1", "--out", str(folder), "--quiet"]) == 0
    assert not [p.name for p in folder.iterdir() if p.name.startswith(files.TMP_PREFIX)]


# --------------------------------------------------------------------------- the command line's run directory


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "fastbp.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})


@pytest.mark.skipif(os.name != "posix", reason="flock")
def test_a_second_training_into_the_same_directory_is_refused(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    stale = out / f"{files.TMP_PREFIX}a1b2c3d4e5f6.npz"
    stale.write_bytes(b"left by a killed run")
    (out / ".tmp-notes.txt").write_text("the user's own file: not ours to remove")
    with files.DirLock(out):  # as another run holds it
        r = _cli("train", "--epochs", "1", "--out", out, "--quiet")
    assert r.returncode == 2, r.stderr
    line, = r.stderr.strip().splitlines()
    assert line.startswith("fastbp: error: --out:") and str(out) in line and "another fastbp run" in line
    assert not (out / "model.npz").exists() and stale.exists()
    # free again: the run proceeds, and the stale temporary file is gone
    assert cli.main(["train", "--epochs", "1", "--out", str(out), "--quiet"]) == 0
    assert [p.name for p in out.iterdir() if p.name.startswith(files.TMP_PREFIX)] == [".tmp-notes.txt"]
    assert fastbp.load(out / "model.npz").epochs_trained == 1


def test_a_diverging_run_saves_its_last_good_epoch_and_metrics(tmp_path, capsys):
    rng = np.random.default_rng(0)
    Xd = rng.standard_normal((200, 4))
    np.savez(tmp_path / "reg.npz", X=Xd, y=Xd @ np.full((4, 2), 30.0))
    out = tmp_path / "run"
    # lr just past stability: the first epochs stay finite while the error grows, then it overflows
    code = cli.main(["train", "--data", str(tmp_path / "reg.npz"), "--loss", "mse", "--layers", "8",
                     "--activation", "identity", "--lr", "0.3", "--epochs", "50", "--batch-size", "200",
                     "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    line, = err.strip().splitlines()
    assert line.startswith("fastbp: error: fit: the cost became") and "model.npz" in line
    net = fastbp.load(out / "model.npz")
    metrics = json.loads((out / "metrics.json").read_text())  # strict JSON: no NaN
    assert net.epochs_trained == metrics["epochs"] >= 1, "the run should diverge after some good epochs"
    assert len(metrics["history"]["loss"]) == net.epochs_trained and "became" in metrics["stopped"]
    assert np.all(np.isfinite(net.params))


@pytest.mark.parametrize("data", [True, ["a", "b"], "x", 3])
def test_a_model_file_whose_data_entry_is_not_a_table_is_refused(tmp_path, model_file, data):
    path, arrays = model_file
    config = json.loads(arrays["config"].tobytes())
    config["data"] = data
    bad = tmp_path / "bad.npz"
    np.savez(bad, **{**arrays, "config": np.frombuffer(json.dumps(config).encode(), dtype=np.uint8)})
    with pytest.raises(ValueError, match="bad.npz.*data: expected the column names"):
        fastbp.load(bad)

"""Fault injection: Ctrl-C at every line of the training loop, SIGKILL at random moments of a checkpointed run,
two runs into one directory, and the modes of the files written.

Written against the public API (and ``sys.settrace`` to reach every line), so the tests hold however the
epoch loop is arranged inside fastbp.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import fastbp
from fastbp import io as fio

FASTBP_DIR = os.path.dirname(os.path.abspath(fastbp.__file__))
RNG = np.random.default_rng(3)
X = RNG.standard_normal((30, 3))
Y = RNG.integers(0, 3, 30)
EPOCHS = 2


def _net():
    return fastbp.Network([3, 5, 3], activation="tanh", seed=4)


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
    """Run _fit with KeyboardInterrupt raised at the ``at_line``-th line fastbp executes (of the files ``only``);
    returns (network, whether it was interrupted, lines counted)."""
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
        if not name.startswith(FASTBP_DIR) or (only is not None and os.path.basename(name) not in only):
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


# The files of the epoch loop (today network.py; training.py once the loop moves there) and of what it calls
# each epoch: a Ctrl-C at each of their lines.
LOOP_FILES = {"network.py", "training.py", "callbacks.py"}


def _check_files_after_interrupt(net, ck, reference):
    """What holds today wherever Ctrl-C lands: the parameters are those of the epoch the count says, the
    checkpoint loads and is a completed epoch with its History, no temporary file is left."""
    params, _ = reference
    e = net.epochs_trained
    assert 0 <= e <= EPOCHS
    np.testing.assert_array_equal(net.params, params[e])
    if ck.exists():
        saved = fastbp.load(ck)
        np.testing.assert_array_equal(saved.params, params[saved.epochs_trained])
        assert saved.history.epoch == list(range(1, saved.epochs_trained + 1))
    assert not [p.name for p in ck.parent.iterdir() if p.name.startswith(fio.TMP_PREFIX)]


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
    total = _lines_in_fit(tmp_path, LOOP_FILES)
    failures = []
    for k in range(1, total + 1):
        ck = tmp_path / f"k{k}" / "ck.npz"
        ck.parent.mkdir()
        net, interrupted, _ = _interrupted_fit(ck, k, LOOP_FILES)
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
        left += any(p.name.startswith(fio.TMP_PREFIX) for p in folder.iterdir())
    print(f"epochs at the kills {sorted(seen)}; kills that left a temporary file: {left} of 6")
    assert len(seen) >= 2, seen  # the kills landed at different moments
    # a temporary file a kill leaves is removed when a run starts in that directory
    (folder / f"{fio.TMP_PREFIX}0123456789ab.npz").write_bytes(b"half a file")
    from fastbp import cli

    assert cli.main(["train", "--epochs", "1", "--out", str(folder), "--quiet"]) == 0
    assert not [p.name for p in folder.iterdir() if p.name.startswith(fio.TMP_PREFIX)]


# --------------------------------------------------------------------------- the command line's run directory


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "fastbp.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})


@pytest.mark.skipif(os.name != "posix", reason="flock")
def test_a_second_training_into_the_same_directory_is_refused(tmp_path):
    from fastbp import cli

    out = tmp_path / "run"
    out.mkdir()
    stale = out / f"{fio.TMP_PREFIX}a1b2c3d4e5f6.npz"
    stale.write_bytes(b"left by a killed run")
    (out / ".tmp-notes.txt").write_text("the user's own file: not ours to remove")
    with fio.DirLock(out):  # as another run holds it
        r = _cli("train", "--epochs", "1", "--out", out, "--quiet")
    assert r.returncode == 2, r.stderr
    line, = r.stderr.strip().splitlines()
    assert line.startswith("fastbp: error: --out:") and str(out) in line and "another fastbp run" in line
    assert not (out / "model.npz").exists() and stale.exists()
    # free again: the run proceeds, and the stale temporary file is gone
    assert cli.main(["train", "--epochs", "1", "--out", str(out), "--quiet"]) == 0
    assert [p.name for p in out.iterdir() if p.name.startswith(fio.TMP_PREFIX)] == [".tmp-notes.txt"]
    assert fastbp.load(out / "model.npz").epochs_trained == 1


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_files_get_the_umasks_mode(tmp_path, umask):
    from fastbp import cli

    old = os.umask(umask)
    try:
        assert cli.main(["train", "--epochs", "1", "--out", str(tmp_path / "run"), "--quiet"]) == 0
    finally:
        os.umask(old)
    for name in ("model.npz", "metrics.json", "config.toml"):
        assert (tmp_path / "run" / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


def test_a_diverging_run_saves_its_last_good_epoch_and_metrics(tmp_path, capsys):
    from fastbp import cli

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
        fio.atomic_write(path, write)
    assert path.read_bytes() == b"first half second half"
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]
    net.save(path)
    assert fastbp.load(path).sizes == [64, 256, 10]

"""fit's training state: validation, history, early stopping, callbacks, progress, checkpoints, exact resume."""

import io
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numba import njit

import fastbp
from fastbp.training.callbacks import Progress, needs_compile

RNG = np.random.default_rng(3)
X = RNG.standard_normal((120, 6)).astype(np.float32)
Y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 1).astype(np.int64)


def _net(**kw):
    return fastbp.Network([6, 8, 3], activation="tanh", seed=11, **kw)


def test_history_has_every_key():
    hist = _net().fit(X, Y, epochs=3, batch_size=16, optimizer="adam", validation_split=0.25, verbose=0)
    assert hist.epoch == [1, 2, 3]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds", "samples_per_second"):
        assert len(hist[key]) == 3, key
    assert all(0 <= a <= 1 for a in hist["val_accuracy"])


def test_validation_split_is_the_last_rows():
    net = _net()
    hist = net.fit(X, Y, epochs=1, batch_size=16, validation_split=0.25, verbose=0)
    assert hist["val_loss"][0] == pytest.approx(net.evaluate(X[90:], Y[90:])["loss"], rel=1e-6)


def test_validation_data_is_scored_after_each_epoch():
    net = _net()
    hist = net.fit(X[:80], Y[:80], epochs=2, batch_size=16, validation_data=(X[80:], Y[80:]), verbose=0)
    assert hist["val_accuracy"][-1] == pytest.approx(net.evaluate(X[80:], Y[80:])["accuracy"])


def test_early_stopping_restores_the_best_epoch():
    # A learning rate that overshoots after a few epochs, so val_loss has a clear best epoch.
    snapshots = {}

    def keep(net, epoch, logs):
        snapshots[epoch] = net.params.copy()

    net = _net()
    stopper = fastbp.EarlyStopping(monitor="val_loss", patience=2)
    hist = net.fit(X, Y, epochs=60, batch_size=8, lr=3.0, validation_split=0.3, early_stopping=stopper,
                   callbacks=[keep], verbose=0)
    best = int(np.argmin(hist["val_loss"])) + 1
    assert len(hist) < 60, "expected to stop early"
    assert len(hist) == best + stopper.patience + 1
    assert stopper.best_epoch == best
    np.testing.assert_array_equal(net.params, snapshots[best])


def test_early_stopping_without_validation_is_an_error():
    with pytest.raises(ValueError, match="early_stopping"):
        _net().fit(X, Y, epochs=2, early_stopping=3, verbose=0)


def test_callback_stops_training():
    class StopAt2(fastbp.Callback):
        def on_epoch_end(self, net, epoch, logs):
            return epoch == 2

    hist = _net().fit(X, Y, epochs=10, callbacks=[StopAt2()], verbose=0)
    assert hist.epoch == [1, 2]

    def flag(net, epoch, logs):
        net.stop_training = epoch == 3

    assert _net().fit(X, Y, epochs=10, callbacks=[flag], verbose=0).epoch == [1, 2, 3]


def test_verbose_zero_is_silent_and_two_prints_lines(capsys):
    _net().fit(X, Y, epochs=2, verbose=0)
    assert capsys.readouterr().err == ""
    _net().fit(X, Y, epochs=2, verbose=2)
    err = capsys.readouterr().err
    assert err.count("epoch ") == 2 and "loss" in err
    _net().fit(X, Y, epochs=2, verbose=1)
    assert "2/2" in capsys.readouterr().err


def test_same_optimizer_continues_and_other_settings_start_fresh():
    straight = _net()
    straight.fit(X, Y, epochs=4, batch_size=16, optimizer=fastbp.Adam(lr=0.01), verbose=0)
    split = _net()
    split.fit(X, Y, epochs=2, batch_size=16, optimizer=fastbp.Adam(lr=0.01), verbose=0)
    split.fit(X, Y, epochs=2, batch_size=16, optimizer="adam", lr=0.01, verbose=0)
    np.testing.assert_array_equal(straight.params, split.params)
    assert split.epochs_trained == 4

    fresh = _net()
    fresh.fit(X, Y, epochs=2, batch_size=16, optimizer=fastbp.Adam(lr=0.01), verbose=0)
    fresh.fit(X, Y, epochs=2, batch_size=16, optimizer=fastbp.Adam(lr=0.02), verbose=0)
    assert fresh.state.step == 2 * 8  # restarted at the change of lr
    assert not np.array_equal(fresh.params, straight.params)


_RESUME = textwrap.dedent(
    """
    import sys, numpy as np, fastbp
    rng = np.random.default_rng(3)
    X = rng.standard_normal((120, 6)).astype(np.float32)
    Y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 1).astype(np.int64)
    kw = dict(batch_size=16, optimizer=fastbp.Adam(lr=0.01), schedule=fastbp.CosineLR(T_max=30, per="step"),
              verbose=0)
    mode, path = sys.argv[1], sys.argv[2]
    if mode == "straight":
        net = fastbp.Network([6, 8, 3], activation="tanh", seed=11)
        net.fit(X, Y, epochs=4, **kw)
        np.save(path, net.params)
    elif mode == "first":
        net = fastbp.Network([6, 8, 3], activation="tanh", seed=11)
        net.fit(X, Y, epochs=2, **kw)
        net.save(path)
    else:
        net = fastbp.load(path)
        net.fit(X, Y, epochs=2, **kw)
        np.save(path + ".params.npy", net.params)
    """
)


def test_resume_in_a_new_process_is_bitwise_identical(tmp_path):
    script = tmp_path / "resume.py"
    script.write_text(_RESUME)
    run = lambda *a: subprocess.run([sys.executable, str(script), *a], check=True, timeout=300)  # noqa: E731
    run("straight", str(tmp_path / "straight.npy"))
    run("first", str(tmp_path / "ck.npz"))
    run("second", str(tmp_path / "ck.npz"))
    straight = np.load(tmp_path / "straight.npy")
    resumed = np.load(tmp_path / "ck.npz.params.npy")
    np.testing.assert_array_equal(straight, resumed)


def test_checkpoint_every_epoch_and_load(tmp_path):
    path = tmp_path / "ck.npz"
    seen = []

    def after(net, epoch, logs):
        if path.exists():
            seen.append(fastbp.load(path).epochs_trained)

    net = _net()
    net.fit(X, Y, epochs=3, optimizer="rmsprop", checkpoint=path, checkpoint_every=1, callbacks=[after], verbose=0)
    assert seen == [1, 2, 3]
    back = fastbp.load(path)
    np.testing.assert_array_equal(back.params, net.params)
    np.testing.assert_array_equal(back.state.slots, net.state.slots)
    assert back.history["loss"] == net.history["loss"]


def test_nan_stops_with_the_last_good_epoch(tmp_path):
    net = fastbp.Network([6, 8, 1], activation="identity", loss="mse", seed=0)
    target = X[:, 0].astype(np.float64)
    net.fit(X, target, epochs=1, lr=1e-3, verbose=0)
    good = net.params.copy()
    with pytest.raises(FloatingPointError, match=r"epoch 2, batch \d+"):
        net.fit(X, target, epochs=3, lr=1e6, verbose=0)
    np.testing.assert_array_equal(net.params, good)
    assert net.epochs_trained == 1


def test_interrupt_keeps_the_last_completed_epoch_and_checkpoints(tmp_path):
    path = tmp_path / "ck.npz"
    kept = {}

    def interrupt(net, epoch, logs):
        kept[epoch] = net.params.copy()
        if epoch == 2:
            raise KeyboardInterrupt

    net = _net()
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, Y, epochs=5, checkpoint=path, checkpoint_every=10, callbacks=[interrupt], verbose=0)
    assert net.epochs_trained == 2
    np.testing.assert_array_equal(net.params, kept[2])
    np.testing.assert_array_equal(fastbp.load(path).params, kept[2])


def test_history_keys_line_up_with_epochs_across_fits(tmp_path):
    """A key logged by only some fits (validation given to the second) has one value per epoch, NaN where
    it was not logged, and survives save/load in place."""
    net = _net()
    net.fit(X, Y, epochs=2, batch_size=16, verbose=0)
    net.fit(X, Y, epochs=3, batch_size=16, validation_split=0.25, verbose=0)
    net.fit(X, Y, epochs=1, batch_size=16, verbose=0)
    h = net.history
    assert h.epoch == [1, 2, 3, 4, 5, 6]
    assert all(len(v) == 6 for v in h.history.values())
    assert np.isnan(h["val_loss"][:2]).all() and np.isfinite(h["val_loss"][2:5]).all() and np.isnan(h["val_loss"][5])
    net.save(tmp_path / "m.npz")
    back = fastbp.load(tmp_path / "m.npz")
    assert back.history.epoch == h.epoch
    for k, v in h.history.items():
        np.testing.assert_array_equal(back.history[k], v)


def _no_op(net, epoch, logs):
    """A callback: the epoch loop then runs one compiled epoch per call (what is compared against)."""


@pytest.mark.parametrize("monitor, restore_best, track_any, extras", [
    ("loss", False, True, {}), ("accuracy", True, False, {}),
    ("loss", True, False, {"dropout": 0.2, "weights": True, "schedule": fastbp.CosineLR(per="step")})])
def test_several_epochs_per_call_are_bitwise_one_epoch_per_call(monkeypatch, monitor, restore_best, track_any,
                                                                 extras):
    """Without anything to run between epochs, fit runs several epochs per compiled call with the stopping
    rule inside: parameters, optimizer state, RNG, History and the rule's state are bitwise those of one
    call per epoch (the epoch loop with a callback), whether the calls hold one epoch or many, and a
    later fit continues from the same place."""
    from fastbp.training import single

    runs = []
    for how in ("per-epoch", "one call", "calls of one epoch"):
        if how == "calls of one epoch":
            monkeypatch.setattr(single, "CHUNK_SECONDS", 1e-9)
        net = _net(dropout=extras.get("dropout", 0.0))
        stopper = fastbp.EarlyStopping(monitor=monitor, patience=3, min_delta=0.002, restore_best=restore_best,
                                       track_any=track_any)
        cbs = [_no_op] if how == "per-epoch" else None
        sw = np.linspace(0.5, 2.0, len(X)) if extras.get("weights") else None
        first = net.fit(X, Y, epochs=400, batch_size=16, optimizer=fastbp.Adam(lr=0.05), early_stopping=stopper,
                        callbacks=cbs, verbose=0, sample_weight=sw, schedule=extras.get("schedule"))
        assert 3 < len(first) < 400, "expected the rule to stop training"
        net.fit(X, Y, epochs=5, batch_size=16, optimizer=fastbp.Adam(lr=0.05), callbacks=cbs, verbose=0)
        runs.append((net, stopper, first))
        monkeypatch.undo()
    (ref, ref_stop, ref_hist), *others = runs
    for net, stopper, hist in others:
        np.testing.assert_array_equal(net.params, ref.params)
        np.testing.assert_array_equal(net.state.slots, ref.state.slots)
        assert net.state.step == ref.state.step and net.epochs_trained == ref.epochs_trained
        assert net.state.rng.bit_generator.state == ref.state.rng.bit_generator.state
        assert hist.epoch == ref_hist.epoch
        for key in ("loss", "accuracy", "lr"):
            assert net.history[key] == ref.history[key]
        assert (stopper.best, stopper.wait, stopper.best_epoch) == (ref_stop.best, ref_stop.wait,
                                                                    ref_stop.best_epoch)


def test_several_epochs_per_call_with_a_generator_other_than_pcg64():
    """The orders of a generator other than PCG64 (drawn by numpy, not in compiled code) give the same training
    and leave the generator where one call per epoch leaves it, also where the rule stops inside a call."""
    runs = []
    for cbs in ([_no_op], None):
        net = _net()
        net.state.rng = np.random.Generator(np.random.MT19937(3))
        stopper = fastbp.EarlyStopping(monitor="loss", patience=3, min_delta=0.002)
        hist = net.fit(X, Y, epochs=400, batch_size=16, optimizer=fastbp.Adam(lr=0.05), early_stopping=stopper,
                       callbacks=cbs, verbose=0)
        assert 3 < len(hist) < 400, "expected the rule to stop training"
        runs.append(net)
    ref, net = runs
    np.testing.assert_array_equal(net.params, ref.params)
    assert net.epochs_trained == ref.epochs_trained
    ours, theirs = net.state.rng.bit_generator.state["state"], ref.state.rng.bit_generator.state["state"]
    assert ours["pos"] == theirs["pos"]
    np.testing.assert_array_equal(ours["key"], theirs["key"])


def test_an_epoch_that_diverges_inside_a_call_of_several_is_undone():
    """The NaN guard where several epochs run per call: the epochs before the bad one are kept, bitwise
    those of one call per epoch, and the network is back at the end of the last good epoch."""
    def train(cbs):
        # A regression whose steps grow a little each epoch, until they overflow in epoch 5 (batch 14).
        net = fastbp.Network([6, 8, 1], activation="relu", output="identity", loss="mse", seed=11)
        with pytest.raises(FloatingPointError, match=r"at epoch \d+, batch \d+") as err:
            net.fit(X, 3 * X[:, 0], epochs=500, batch_size=8, lr=0.45, callbacks=cbs, verbose=0)
        return net, err.value

    ref, ref_err = train([_no_op])
    net, err = train(None)
    assert str(err) == str(ref_err)
    assert net.epochs_trained == ref.epochs_trained > 2  # the first call runs one epoch, the next several
    np.testing.assert_array_equal(net.params, ref.params)
    assert net.state.rng.bit_generator.state == ref.state.rng.bit_generator.state
    assert net.history["loss"] == ref.history["loss"]


def test_progress_bar_and_in_epoch_updates():
    out = io.StringIO()
    p = Progress(1, 3, 1, stream=out)
    logs = {"loss": 0.5, "lr": 0.1, "samples_per_second": 100.0, "seconds": 0.1}
    p.batches(1, 5, 10)
    assert p._bar.n == pytest.approx(0.5)
    for e in (1, 2, 3):
        p.update(e, logs)
    p.close(False)
    text = out.getvalue()
    assert "epoch 3/3" in text and "100%" in text and "loss 0.5000" in text
    out = io.StringIO()
    p = Progress(2, 2, 1, stream=out)
    p.update(1, logs)
    assert out.getvalue().startswith("epoch 1  loss 0.5000")


def test_compile_notice_only_before_a_first_compile():
    @njit  # no cache: compiled in this process only
    def twice(a):
        return a * 2

    a32 = np.ones(2, np.float32)
    assert needs_compile(twice, a32)
    twice(a32)
    assert not needs_compile(twice, a32)
    assert needs_compile(twice, np.ones(2, np.float64))
    out = io.StringIO()
    Progress(2, 1, 1, stream=out).compiling(twice, np.ones(2, np.int64))
    assert out.getvalue() == "compiling (first run only)...\n"
    out = io.StringIO()
    bar = Progress(1, 1, 1, stream=out)
    bar.compiling(twice, np.ones((2, 2), np.int64))
    bar.close(False)
    assert "compiling (first run only)...\n" in out.getvalue()

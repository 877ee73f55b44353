"""The ReduceLROnPlateau schedule: PyTorch's rule, in fit, across save/load, in populations, its bad settings.

The rule is transcribed in conftest.py (``plateau_rates``) and checked against torch's own scheduler where torch is
installed; fit records the rate each epoch used (History's lr)."""

import math

import numpy as np
import pytest

import fastbp
from conftest import assert_raises_naming, plateau_rates
from fastbp.specs.schedules import get_schedule
from fastbp.training import train_population


def torch_scheduler(values, lr, **kwargs):
    """The rate of each epoch by torch's own ReduceLROnPlateau (SGD on one parameter), as plateau_rates gives it."""
    torch = pytest.importorskip("torch")
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kwargs)
    rates = [opt.param_groups[0]["lr"]]
    for v in values:
        sched.step(v)
        rates.append(opt.param_groups[0]["lr"])
    return rates


# A loss that improves, stalls, wobbles within the threshold, improves again, and stalls.
VALUES = [1.0, 0.8, 0.79995, 0.8, 0.81, 0.7, 0.69999, 0.7, 0.7, 0.72, 0.6, 0.6, 0.61, 0.6, 0.6, 0.59, 0.6, 0.6,
          0.6, 0.6, 0.6, 0.6, 0.6, 0.6]
SETTINGS = [
    {"patience": 1},
    {"patience": 0},
    {"patience": 2, "cooldown": 2},
    {"patience": 1, "factor": 0.5, "min_lr": 0.03},
    {"patience": 1, "threshold": 0.05, "threshold_mode": "abs"},
    {"patience": 1, "threshold": 0.01, "threshold_mode": "rel", "cooldown": 1},
    {"patience": 1, "mode": "max"},
    {"patience": 0, "mode": "max", "threshold": 0.02, "threshold_mode": "abs", "factor": 0.3},
    {"patience": 1, "min_lr": 0.1 - 5e-9},  # a reduction of under 1e-8 is not made
]


@pytest.mark.parametrize("settings", SETTINGS, ids=[str(s) for s in SETTINGS])
def test_the_rule_is_pytorchs(settings):
    values = VALUES if settings.get("mode") != "max" else [-v for v in VALUES]
    ref = plateau_rates(values, 0.1, **settings)
    sched = fastbp.ReduceLROnPlateau(monitor="loss", **settings)
    state = sched.start(0.1)
    got = [0.1] + [sched.step(state, v) for v in values]
    assert got == ref
    tiny = settings.get("min_lr", 0.0) > 0.1 - 1e-8  # reductions below 1e-8 are not made
    assert (len(set(ref)) == 1) == tiny  # else the sequence does reduce


# Beyond SETTINGS: eps (torch's smallest change of the rate), rel/abs thresholds on both modes with cooldowns,
# values that rise and fall, and long plateaus, so that every branch of the transcription meets torch's own.
TRANSCRIPTION = SETTINGS + [
    {"patience": 1, "eps": 0.05},  # 0.1 -> 0.01 is a change of 0.09 > 0.05: made; then 0.009 < 0.05: not
    {"patience": 0, "eps": 0.0, "factor": 0.5, "min_lr": 0.0125},
    {"patience": 2, "cooldown": 3, "mode": "max", "threshold": 0.1, "threshold_mode": "rel"},
    {"patience": 3, "cooldown": 1, "threshold": 0.0, "threshold_mode": "abs", "factor": 0.9},
]


@pytest.mark.parametrize("settings", TRANSCRIPTION, ids=[str(s) for s in TRANSCRIPTION])
def test_the_transcription_is_torchs(settings):
    """conftest.plateau_rates against torch.optim.lr_scheduler.ReduceLROnPlateau itself (skipped without torch)."""
    rng = np.random.default_rng(0)
    wobbly = list(1.0 + np.cumsum(rng.normal(-0.01, 0.05, 60)))
    for values in (VALUES, [-v for v in VALUES], wobbly, [0.5] * 30):
        assert plateau_rates(values, 0.1, **settings) == torch_scheduler(values, 0.1, **settings), values


def test_fit_records_the_rate_each_epoch_used():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 5))
    y = rng.integers(0, 3, 120)
    net = fastbp.Network([5, 8, 3], dtype="float64")
    sched = fastbp.ReduceLROnPlateau(patience=1, factor=0.5, cooldown=1)
    h = net.fit(X, y, epochs=14, batch_size=16, lr=0.5, schedule=sched, validation_split=0.3, verbose=0)
    assert h["lr"] == plateau_rates(h["val_loss"], 0.5, patience=1, factor=0.5, cooldown=1)[:-1]
    assert min(h["lr"]) < 0.5
    # monitoring the training accuracy, mode max
    net2 = fastbp.Network([5, 8, 3], dtype="float64")
    h2 = net2.fit(X, y, epochs=10, batch_size=16, lr=0.5, verbose=0,
                  schedule={"name": "plateau", "monitor": "accuracy", "mode": "max", "patience": 0})
    assert h2["lr"] == plateau_rates(h2["accuracy"], 0.5, mode="max", patience=0)[:-1]


def test_resumed_run_reduces_at_the_same_epochs(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((100, 5)).astype(np.float32)
    y = rng.integers(0, 3, 100)
    kw = dict(batch_size=16, optimizer=fastbp.Adam(lr=0.05), schedule=fastbp.ReduceLROnPlateau("loss", patience=0,
                                                                                                   factor=0.5),
              verbose=0)
    whole = fastbp.Network([5, 8, 3])
    h = whole.fit(X, y, epochs=8, **kw)
    part = fastbp.Network([5, 8, 3])
    part.fit(X, y, epochs=3, checkpoint=tmp_path / "ck.npz", **kw)
    resumed = fastbp.load(tmp_path / "ck.npz")
    resumed.fit(X, y, epochs=5, **kw)
    assert resumed.history["lr"] == h["lr"] and len(set(h["lr"][3:])) > 1
    assert np.array_equal(resumed.params, whole.params)
    # another schedule (or none) starts afresh
    fresh = fastbp.load(tmp_path / "ck.npz")
    fresh.fit(X, y, epochs=1, **{**kw, "schedule": fastbp.ReduceLROnPlateau("loss", patience=3)})
    assert fresh.state.schedule["state"]["num_bad_epochs"] <= 1 and fresh.history["lr"][-1] == 0.05


def test_population_member_with_plateau_is_fit():
    rng = np.random.default_rng(2)
    # 64 features: a network large enough for OpenBLAS on AVX-512 (policy.engine_for), as the other populations
    # with validation in the suite, so it compiles no population kernels of its own
    X = rng.standard_normal((60, 64)).astype(np.float32)
    y = rng.integers(0, 3, 60)
    sched = fastbp.ReduceLROnPlateau("val_loss", patience=0, factor=0.5)
    fitted = fastbp.Network([64, 8, 3])
    Xv, yv = rng.standard_normal((20, 64)).astype(np.float32), rng.integers(0, 3, 20)  # noise: val_loss rises
    fitted.fit(X, y, epochs=5, batch_size=8, lr=0.3, schedule=sched, validation_data=(Xv, yv), verbose=0)
    nets = [fastbp.Network([64, 8, 3]) for _ in range(2)]
    Xc, Y = nets[0].check_data(X, y)
    Xvc, Yv = nets[0].check_data(Xv, yv)
    sgd = fastbp.SGD(lr=0.3)
    train_population(nets, Xc, Y, 5, 8, [sgd, sgd], [sched, fastbp.Constant()], [None, None], Xvc, Yv)
    assert nets[0].history["lr"] == fitted.history["lr"] and min(fitted.history["lr"]) < 0.3
    assert np.array_equal(nets[0].params, fitted.params)
    assert set(nets[1].history["lr"]) == {0.3}


def test_bad_plateau_settings_and_unlogged_monitors():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((20, 5))
    y = rng.integers(0, 3, 20)
    net = fastbp.Network([5, 4, 3])
    assert_raises_naming(ValueError, "schedule", net.fit, X, y, schedule=fastbp.ReduceLROnPlateau(), verbose=0)
    reg = fastbp.Network([5, 4, 1], loss="mse")
    assert_raises_naming(ValueError, "schedule", reg.fit, X, rng.standard_normal(20),
                         schedule=fastbp.ReduceLROnPlateau("accuracy", mode="max"), validation_split=0.2, verbose=0)
    assert net.epochs_trained == 0 and reg.epochs_trained == 0
    for kwargs in ({"mode": "up"}, {"factor": 1.0}, {"factor": 0}, {"patience": -1}, {"threshold": -1e-3},
                   {"threshold_mode": "ratio"}, {"cooldown": -2}, {"min_lr": math.nan}, {"per": "step"}):
        with pytest.raises(ValueError, match=r"^ReduceLROnPlateau\("):
            fastbp.ReduceLROnPlateau(**kwargs)
    with pytest.raises(TypeError, match=r"^ReduceLROnPlateau\(monitor\)"):
        fastbp.ReduceLROnPlateau(monitor=3)
    # the spec round-trips through its config (sweeps and the command line pass it so)
    spec = fastbp.ReduceLROnPlateau("loss", factor=0.2, patience=4, cooldown=1)
    assert get_schedule(spec.get_config()) == spec
    assert get_schedule("plateau") == fastbp.ReduceLROnPlateau()

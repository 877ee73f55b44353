"""Training in a team (fastbp/team.py): two threads share each batch of one network.

The team's result does not depend on its threads (bitwise), and differs from one thread's training
(kernels._train_epochs) only by the order of each batch's gradient sums: within rounding, in float64,
with the same epochs, stopping decisions and undo of a diverging epoch.
"""

import numba
import numpy as np
import pytest

import fastbp
from conftest import assert_trains_as_alone
from fastbp import _atomic, team
from fastbp.matmul import Blas

# Rules that take each path of a batch's end: plain SGD (folded into BLAS's product when alone), momentum,
# Adam with the L2 penalty added by the update, AdamW, a clip bound (the penalty added to the gradient).
RULES = {
    "sgd": dict(optimizer="sgd", lr=0.05),
    "momentum": dict(optimizer=fastbp.SGD(lr=0.05, momentum=0.9)),
    "adam+l2": dict(optimizer="adam", l2=1e-3),
    "adamw": dict(optimizer=fastbp.AdamW(lr=1e-3)),
    "clip+l2": dict(optimizer="adam", clip_norm=0.5, l2=1e-3),
}


def _data(n=203, d=12, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = (X[:, :k] @ rng.standard_normal((k, k))).argmax(axis=1)
    return X, y


def _fit(mode, X, y, dtype="float64", sizes=(12, 40, 3), threads=2, monkeypatch=None, **kw):
    """A network trained with ``mode``: "team" (whatever its size), "alone" (never a team)."""
    monkeypatch.setattr(team, "pays", lambda *a: mode == "team")
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        net = fastbp.Network(list(sizes), dtype=dtype, seed=0)
        error = None
        try:
            hist = net.fit(X, y, verbose=0, **{"epochs": 6, "batch_size": 25, **kw})
        except FloatingPointError as e:
            hist, error = None, str(e)
    finally:
        numba.set_num_threads(before)
    return net, hist, error


def test_atomics_compile_in_this_numba():
    assert _atomic.AVAILABLE


@pytest.mark.parametrize("rule", RULES)
def test_a_team_trains_bitwise_the_same_on_one_thread_and_two(rule, monkeypatch):
    """On one thread the prange runs its members one after the other: the first does every task."""
    X, y = _data()
    sw = np.random.default_rng(1).random(X.shape[0])
    sw[:30] = 0.0  # whole batches of weight 0 among them (the first order is not shuffled)
    kw = dict(RULES[rule], sample_weight=sw, shuffle=False)
    one, h1, _ = _fit("team", X, y, threads=1, monkeypatch=monkeypatch, **kw)
    two, h2, _ = _fit("team", X, y, threads=2, monkeypatch=monkeypatch, **kw)
    np.testing.assert_array_equal(one.params, two.params)
    np.testing.assert_array_equal(one.state.slots, two.state.slots)
    assert h1["loss"] == h2["loss"]


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("n", [203, 201])  # 201: a last batch of one row, the second block empty
def test_a_team_trains_as_one_thread_does_within_rounding(rule, n, monkeypatch):
    X, y = _data(n)
    sw = np.random.default_rng(2).random(n)
    for weights in (None, sw):
        alone, ha, _ = _fit("alone", X, y, monkeypatch=monkeypatch, sample_weight=weights, **RULES[rule])
        team_, ht, _ = _fit("team", X, y, monkeypatch=monkeypatch, sample_weight=weights, **RULES[rule])
        assert_trains_as_alone(team_, ht, alone, ha)


def test_a_team_stops_where_one_thread_stops(monkeypatch):
    """The stopping rule judged inside the team's call, with the best epoch's parameters restored."""
    X, y = _data(400)
    stop = dict(monitor="loss", patience=2, min_delta=0.05, restore_best=True)
    kw = dict(epochs=60, optimizer="adam", lr=3e-3)
    alone, ha, _ = _fit("alone", X, y, monkeypatch=monkeypatch, early_stopping=fastbp.EarlyStopping(**stop), **kw)
    team_, ht, _ = _fit("team", X, y, monkeypatch=monkeypatch, early_stopping=fastbp.EarlyStopping(**stop), **kw)
    assert 2 < len(ha["loss"]) < 60
    assert len(ht["loss"]) == len(ha["loss"]) and team_.epochs_trained == alone.epochs_trained
    np.testing.assert_allclose(team_.params, alone.params, rtol=1e-9, atol=1e-12)


def test_a_team_undoes_a_diverging_epoch(monkeypatch):
    """A cost that stops being finite: the same error (epoch and batch) as one thread's, the network put
    back to the end of the last good epoch, parameters and optimizer state."""
    X, _ = _data(300)
    y = np.random.default_rng(0).standard_normal((300, 2))
    results = {}
    for mode in ("alone", "team"):
        monkeypatch.setattr(team, "pays", lambda *a, m=mode: m == "team")
        net = fastbp.Network([12, 40, 2], activation="identity", output="identity", loss="mse", dtype="float64",
                             seed=0)
        net.fit(X, y, epochs=2, batch_size=25, optimizer="sgd", lr=0.01, verbose=0)
        before = net.params.copy(), net.state.slots.copy()
        with pytest.raises(FloatingPointError) as info:
            net.fit(X, y, epochs=4, batch_size=25, optimizer="sgd", lr=1e30, verbose=0)
        np.testing.assert_array_equal(net.params, before[0])
        np.testing.assert_array_equal(net.state.slots, before[1])
        assert net.epochs_trained == 2
        results[mode] = str(info.value)
    assert "epoch 3" in results["team"] and results["team"] == results["alone"]


def test_which_trainings_take_a_team(monkeypatch):
    monkeypatch.delenv(team.TEAMS_ENV)  # the suite turns teams off (conftest.py)
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    small = [64, 32, 10]  # 80 rows: 163,840 multiply-adds in the largest product
    assert team.pays(None, small, 80, False) and team.pays(Blas(4096), small, 80, False)
    assert not team.pays(None, small, 80, True)  # dropout
    assert not team.pays(None, small, 64, False)  # 131,072: too small to pay
    assert not team.pays(Blas(4096), [784, 256, 10], 128, False)  # OpenBLAS's own threads
    monkeypatch.setattr(numba, "get_num_threads", lambda: 1)
    assert not team.pays(None, small, 80, False)
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    for off in ("0", "off"):
        monkeypatch.setenv(team.TEAMS_ENV, off)
        assert not team.pays(None, small, 80, False)
    monkeypatch.setenv(team.TEAMS_ENV, "1")
    assert team.pays(None, small, 80, False)


def test_teams_in_two_python_threads_at_once(monkeypatch):
    """Two fits at once from two Python threads, each in a team of Numba's pool: both results are those of a
    fit run alone (bitwise), and OpenBLAS's thread count, which each holds at one, is given back."""
    import threading

    pytest.importorskip("threadpoolctl")
    from conftest import openblas_threads

    before = openblas_threads()
    X, y = _data()
    alone = [_fit("team", X, y, monkeypatch=monkeypatch, **RULES[r])[0].params for r in ("adam+l2", "momentum")]
    nets = [fastbp.Network([12, 40, 3], dtype="float64", seed=0) for _ in range(2)]

    def fit(net, rule):
        for _ in range(3):
            net.fit(X, y, verbose=0, epochs=2, batch_size=25, **RULES[rule])

    # The same training as alone: 6 epochs in three fits of two (the orders continue from the network's RNG).
    threads = [threading.Thread(target=fit, args=(n, r)) for n, r in zip(nets, ("adam+l2", "momentum"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for net, ref in zip(nets, alone):
        np.testing.assert_array_equal(net.params, ref)
    assert openblas_threads() == before  # each fit held OpenBLAS to one thread, and the last gave it back


def test_a_team_holds_openblas_to_one_thread(monkeypatch):
    """Its two threads call OpenBLAS at once, which a threaded OpenBLAS would serialise: during a team's fit
    OpenBLAS is on one thread, even where the products are below its own threading threshold; the thread
    count is given back after fit."""
    pytest.importorskip("threadpoolctl")
    from conftest import openblas_threads

    before = openblas_threads()
    if not before or before == {1}:
        pytest.skip("no OpenBLAS on more than one thread here")
    monkeypatch.setattr(team, "pays", lambda *a: True)
    monkeypatch.setattr(fastbp.training, "engine_for", lambda *a, **k: Blas(4096))
    X, y = _data()  # 25 x 12 x 40: far below OpenBLAS's threading threshold
    seen = []
    net = fastbp.Network([12, 40, 3], dtype="float64", seed=0)
    net.fit(X, y, epochs=2, batch_size=25, verbose=0,
            callbacks=[lambda net, epoch, logs: seen.append(openblas_threads())])
    assert seen == [{1}, {1}]
    assert openblas_threads() == before

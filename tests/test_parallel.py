"""Training in a team or a crew (several threads on one network's batches), and which trainings take one.

A team (fastbp/engine/team.py): two threads share each batch of a small network; a crew (fastbp/engine/crew.py):
each thread owns a part of every layer of a large network.

Either's result does not depend on its threads (bitwise: one thread or two for a team; two, or two of which one
never comes, for a crew), and differs from training on one thread (kernels._train_epochs) only by the order of
sums: each batch's two gradient sums for a team, the sums over the parts (the batch's cost, Σ‖W‖²) for a crew.
So within rounding, in float64, with the same epochs, stopping decisions and undo of a diverging epoch. A crew's
products are MKL's; one thread's are its engine's (the compiled loops here). tests/test_training.py runs the main
fits again on both paths as fit chooses them (the ``parallel`` fixture of conftest.py).
"""

import concurrent.futures
import threading

import numba
import numpy as np
import pytest

import fastbp
from conftest import assert_trains_as_alone, openblas_threads
from fastbp._numba import atomic as _atomic
from fastbp._numba import mkl as _mkl
from fastbp.engine import crew, plan, policy
from fastbp.engine.products import Blas, Mkl
from fastbp.specs.activations import RELU, SOFTMAX
from fastbp.specs.optimizers import get_optimizer
from fastbp.specs.schedules import Constant, InvScaling

needs_mkl = pytest.mark.skipif(not _mkl.available(), reason='a crew needs MKL (pip install "fastbp[mkl]")')


def _data(n=203, d=12, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = (X[:, :k] @ rng.standard_normal((k, k))).argmax(axis=1)
    return X, y


# --------------------------------------------------------------------------- teams

# Rules that take each path of a batch's end: plain SGD (folded into BLAS's product when alone), momentum,
# Adam with the L2 penalty added by the update, AdamW, a clip bound (the penalty added to the gradient).
TEAM_RULES = {
    "sgd": dict(optimizer="sgd", lr=0.05),
    "momentum": dict(optimizer=fastbp.SGD(lr=0.05, momentum=0.9)),
    "adam+l2": dict(optimizer="adam", l2=1e-3),
    "adamw": dict(optimizer=fastbp.AdamW(lr=1e-3)),
    "clip+l2": dict(optimizer="adam", clip_norm=0.5, l2=1e-3),
}


def _team_fit(mode, X, y, dtype="float64", sizes=(12, 40, 3), threads=2, monkeypatch=None, **kw):
    """A network trained with ``mode``: "team" (whatever its size), "alone" (never a team)."""
    monkeypatch.setattr(policy, "team_pays", lambda *a: mode == "team")
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


@pytest.mark.parametrize("rule", TEAM_RULES)
def test_a_team_trains_bitwise_the_same_on_one_thread_and_two(rule, monkeypatch):
    """On one thread the prange runs its members one after the other: the first does every task."""
    X, y = _data()
    sw = np.random.default_rng(1).random(X.shape[0])
    sw[:30] = 0.0  # whole batches of weight 0 among them (the first order is not shuffled)
    kw = dict(TEAM_RULES[rule], sample_weight=sw, shuffle=False)
    one, h1, _ = _team_fit("team", X, y, threads=1, monkeypatch=monkeypatch, **kw)
    two, h2, _ = _team_fit("team", X, y, threads=2, monkeypatch=monkeypatch, **kw)
    np.testing.assert_array_equal(one.params, two.params)
    np.testing.assert_array_equal(one.state.slots, two.state.slots)
    assert h1["loss"] == h2["loss"]


@pytest.mark.parametrize("rule", TEAM_RULES)
@pytest.mark.parametrize("n", [203, 201])  # 201: a last batch of one row, the second block empty
def test_a_team_trains_as_one_thread_does_within_rounding(rule, n, monkeypatch):
    X, y = _data(n)
    sw = np.random.default_rng(2).random(n)
    for weights in (None, sw):
        alone, ha, _ = _team_fit("alone", X, y, monkeypatch=monkeypatch, sample_weight=weights, **TEAM_RULES[rule])
        team_, ht, _ = _team_fit("team", X, y, monkeypatch=monkeypatch, sample_weight=weights, **TEAM_RULES[rule])
        assert_trains_as_alone(team_, ht, alone, ha)


def test_a_team_stops_where_one_thread_stops(monkeypatch):
    """The stopping rule judged inside the team's call, with the best epoch's parameters restored."""
    X, y = _data(400)
    stop = dict(monitor="loss", patience=2, min_delta=0.05, restore_best=True)
    kw = dict(epochs=60, optimizer="adam", lr=3e-3)
    alone, ha, _ = _team_fit("alone", X, y, monkeypatch=monkeypatch, early_stopping=fastbp.EarlyStopping(**stop), **kw)
    team_, ht, _ = _team_fit("team", X, y, monkeypatch=monkeypatch, early_stopping=fastbp.EarlyStopping(**stop), **kw)
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
        monkeypatch.setattr(policy, "team_pays", lambda *a, m=mode: m == "team")
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
    monkeypatch.delenv(policy.TEAMS_ENV)  # the suite turns teams off (conftest.py)
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    small = [64, 32, 10]  # 80 rows: 163,840 multiply-adds in the largest product
    assert policy.team_pays(None, small, 80, False) and policy.team_pays(Blas(4096), small, 80, False)
    assert not policy.team_pays(None, small, 80, True)  # dropout
    assert not policy.team_pays(None, small, 64, False)  # 131,072: too small to pay
    assert not policy.team_pays(Blas(4096), [784, 256, 10], 128, False)  # OpenBLAS's own threads
    monkeypatch.setattr(numba, "get_num_threads", lambda: 1)
    assert not policy.team_pays(None, small, 80, False)
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    for off in ("0", "off"):
        monkeypatch.setenv(policy.TEAMS_ENV, off)
        assert not policy.team_pays(None, small, 80, False)
    monkeypatch.setenv(policy.TEAMS_ENV, "1")
    assert policy.team_pays(None, small, 80, False)


def test_teams_in_two_python_threads_at_once(monkeypatch):
    """Two fits at once from two Python threads, each in a team of Numba's pool: both results are those of a
    fit run alone (bitwise), and OpenBLAS's thread count, which each holds at one, is given back."""
    pytest.importorskip("threadpoolctl")

    before = openblas_threads()
    X, y = _data()
    alone = [_team_fit("team", X, y, monkeypatch=monkeypatch, **TEAM_RULES[r])[0].params for r in ("adam+l2", "momentum")]
    nets = [fastbp.Network([12, 40, 3], dtype="float64", seed=0) for _ in range(2)]

    def fit(net, rule):
        for _ in range(3):
            net.fit(X, y, verbose=0, epochs=2, batch_size=25, **TEAM_RULES[rule])

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

    before = openblas_threads()
    if not before or before == {1}:
        pytest.skip("no OpenBLAS on more than one thread here")
    monkeypatch.setattr(policy, "team_pays", lambda *a: True)
    monkeypatch.setattr(policy, "engine_for", lambda *a, **k: Blas(4096))
    X, y = _data()  # 25 x 12 x 40: far below OpenBLAS's threading threshold
    seen = []
    net = fastbp.Network([12, 40, 3], dtype="float64", seed=0)
    net.fit(X, y, epochs=2, batch_size=25, verbose=0,
            callbacks=[lambda net, epoch, logs: seen.append(openblas_threads())])
    assert seen == [{1}, {1}]
    assert openblas_threads() == before


# --------------------------------------------------------------------------- crews

# Rules that take each path of a batch's end: momentum with the L2 penalty added by the update, Adam without a
# penalty, AdamW (the penalty added to the gradient), RMSprop with a per-step schedule.
CREW_RULES = {
    "momentum+l2": dict(optimizer=fastbp.SGD(lr=0.05, momentum=0.9), l2=1e-3),
    "adam": dict(optimizer="adam"),
    "adamw+l2": dict(optimizer=fastbp.AdamW(lr=1e-3), l2=1e-3),
    "rmsprop+schedule": dict(optimizer="rmsprop", lr=1e-3, schedule=InvScaling(power=0.5, per="step")),
}
CREW_SIZES = (12, 40, 24, 3)  # two hidden layers: parts of 16 and 24 units, then 8 and 16 (float64's 64-byte lines)

_real_helpers = crew._helpers


class _Absent:
    """A pool whose threads never come: the calling thread trains alone, taking their parts."""

    def submit(self, *args):
        return concurrent.futures.Future()  # never run; cancel() succeeds


def _crew_fit(mode, X, y, threads=2, monkeypatch=None, **kw):
    """A network trained with ``mode``: "crew" (whatever its size), "absent" (a crew of two whose second thread
    never comes), "alone" (never a crew)."""
    monkeypatch.setattr(policy, "crew_pays", lambda *a: mode != "alone")
    monkeypatch.setattr(policy, "UNITS_PER_THREAD", 8)  # a crew of Numba's threads for these narrow layers
    monkeypatch.setattr(crew, "_helpers", (lambda n: _Absent()) if mode == "absent" else _real_helpers)
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        net = fastbp.Network(list(CREW_SIZES), dtype="float64", seed=0)
        hist = net.fit(X, y, verbose=0, **{"epochs": 5, "batch_size": 25, **kw})
    finally:
        numba.set_num_threads(before)
    return net, hist


@needs_mkl
@pytest.mark.parametrize("rule", CREW_RULES)
def test_a_crew_trains_bitwise_the_same_whether_its_second_thread_comes_or_not(rule, monkeypatch):
    """Its parts' arithmetic does not depend on the thread that runs them: two threads, or one taking both parts
    (results depend on the number of parts, as the products' blocks and the sums over parts do)."""
    monkeypatch.setattr(crew, "_PATIENCE", 1 << 8)  # the lone thread takes the absent one's parts sooner
    X, y = _data()
    sw = np.random.default_rng(1).random(X.shape[0])
    sw[:30] = 0.0  # a whole batch of weight 0 among them (the first order is not shuffled)
    kw = dict(CREW_RULES[rule], sample_weight=sw, shuffle=False)
    runs = []
    for mode, threads in (("crew", 2), ("absent", 2)):
        runs.append(_crew_fit(mode, X, y, threads=threads, monkeypatch=monkeypatch, **kw))
    (one, h1), *others = runs
    for net, hist in others:
        np.testing.assert_array_equal(net.params, one.params)
        np.testing.assert_array_equal(net.state.slots, one.state.slots)
        assert hist["loss"] == h1["loss"]


@needs_mkl
@pytest.mark.parametrize("rule", CREW_RULES)
@pytest.mark.parametrize("n", [203, 201])  # 201: a last batch of one row, the first part of its rows empty
def test_a_crew_trains_as_one_thread_does_within_rounding(rule, n, monkeypatch):
    X, y = _data(n)
    sw = np.random.default_rng(2).random(n)
    for weights in (None, sw):
        alone, ha = _crew_fit("alone", X, y, monkeypatch=monkeypatch, sample_weight=weights, **CREW_RULES[rule])
        crew_, hc = _crew_fit("crew", X, y, monkeypatch=monkeypatch, sample_weight=weights, **CREW_RULES[rule])
        assert_trains_as_alone(crew_, hc, alone, ha)


@needs_mkl
def test_a_crew_stops_where_one_thread_stops(monkeypatch):
    """The stopping rule judged inside the crew's call, with the best epoch's parameters restored."""
    X, y = _data(400)
    stop = dict(monitor="loss", patience=2, min_delta=0.05, restore_best=True)
    kw = dict(epochs=60, optimizer="adam", lr=3e-3)
    alone, ha = _crew_fit("alone", X, y, monkeypatch=monkeypatch, early_stopping=fastbp.EarlyStopping(**stop), **kw)
    crew_, hc = _crew_fit("crew", X, y, monkeypatch=monkeypatch, early_stopping=fastbp.EarlyStopping(**stop), **kw)
    assert 2 < len(ha["loss"]) < 60
    assert len(hc["loss"]) == len(ha["loss"]) and crew_.epochs_trained == alone.epochs_trained
    np.testing.assert_allclose(crew_.params, alone.params, rtol=1e-9, atol=1e-12)


@needs_mkl
def test_a_crew_undoes_a_diverging_epoch(monkeypatch):
    """A cost that stops being finite: the same error (epoch and batch) as one thread's, the network put back
    to the end of the last good epoch (its parameters; its optimizer state as one thread leaves it)."""
    X, _ = _data(300)
    y = np.random.default_rng(0).standard_normal((300, 2))
    results = {}
    for mode in ("alone", "crew"):
        monkeypatch.setattr(policy, "crew_pays", lambda *a, m=mode: m == "crew")
        monkeypatch.setattr(policy, "UNITS_PER_THREAD", 8)
        net = fastbp.Network([12, 40, 24, 2], activation="identity", output="identity", loss="mse", dtype="float64",
                             seed=0)
        net.fit(X, y, epochs=2, batch_size=25, optimizer=fastbp.SGD(lr=0.01, momentum=0.5), verbose=0)
        before = net.params.copy()
        with pytest.raises(FloatingPointError) as info:
            net.fit(X, y, epochs=4, batch_size=25, optimizer=fastbp.SGD(lr=1e30, momentum=0.5), verbose=0)
        np.testing.assert_array_equal(net.params, before)
        assert net.epochs_trained == 2
        results[mode] = str(info.value), net.state.slots.copy()
    assert "epoch 3" in results["crew"][0] and results["crew"][0] == results["alone"][0]
    np.testing.assert_allclose(results["crew"][1], results["alone"][1], rtol=1e-9, atol=1e-12)


@needs_mkl
def test_which_trainings_take_a_crew(monkeypatch):
    monkeypatch.delenv(policy.CREW_ENV)  # the suite turns crews off (conftest.py)
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    mnist, acts = [784, 256, 128, 10], [RELU, RELU, SOFTMAX]  # 200 rows: 40 M multiply-adds in the largest product
    mkl = Mkl(4096, 2, 1 << 17)

    def rule(optimizer="adam", clip=0.0):
        return plan.rule(get_optimizer(optimizer), Constant(), clip, 1)

    adam = rule()
    assert policy.crew_pays(mkl, mnist, 200, acts, False, adam)
    assert policy.crew_pays(Blas(4096), mnist, 200, acts, False, adam)
    assert policy.crew_pays(mkl, mnist, 200, acts, False, rule(fastbp.SGD(lr=0.1, momentum=0.9)))
    assert not policy.crew_pays(mkl, mnist, 200, acts, False, rule("sgd"))  # plain descent: folded into the products
    assert not policy.crew_pays(None, mnist, 200, acts, False, adam)  # the compiled loops: no BLAS wanted
    assert not policy.crew_pays(mkl, mnist, 200, acts, True, adam)  # dropout
    assert not policy.crew_pays(mkl, mnist, 200, acts, False, rule(clip=1.0))  # a clip bound
    assert not policy.crew_pays(mkl, mnist, 200, [RELU, SOFTMAX, SOFTMAX], False, adam)  # a softmax hidden layer
    assert not policy.crew_pays(mkl, [4096, 32, 10], 200, acts, False, adam)  # a hidden layer too narrow for 2 parts
    assert not policy.crew_pays(mkl, [320, 128, 10], 200, acts, False, adam)  # too small to pay (8.2 M multiply-adds)
    assert policy.crew_threads(mnist) == 2 and policy.crew_threads([784, 2048, 2048, 10]) == 2
    with policy.force_engine("openblas"):
        assert not policy.crew_pays(mkl, mnist, 200, acts, False, adam)
    with policy.force_engine("mkl"):
        assert policy.crew_pays(mkl, mnist, 200, acts, False, adam)
    monkeypatch.setattr(numba, "get_num_threads", lambda: 1)
    assert not policy.crew_pays(mkl, mnist, 200, acts, False, adam)
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    for off in ("0", "off"):
        monkeypatch.setenv(policy.CREW_ENV, off)
        assert not policy.crew_pays(mkl, mnist, 200, acts, False, adam)
    monkeypatch.setenv(policy.CREW_ENV, "1")
    assert policy.crew_pays(mkl, mnist, 200, acts, False, adam)


@needs_mkl
def test_crews_in_two_python_threads_at_once(monkeypatch):
    """Two fits at once from two Python threads, each in a crew (the pool's one helper thread serves one at a
    time, the other crew's calling thread takes its helper's parts): both results are bitwise those of a fit
    run alone."""
    monkeypatch.setattr(crew, "_PATIENCE", 1 << 8)
    X, y = _data()
    rules = ("adam", "momentum+l2")
    alone = [_crew_fit("crew", X, y, monkeypatch=monkeypatch, **CREW_RULES[r])[0].params for r in rules]
    nets = [fastbp.Network(list(CREW_SIZES), dtype="float64", seed=0) for _ in rules]
    before = numba.get_num_threads()
    numba.set_num_threads(2)

    def fit(net, rule):
        for _ in range(5):  # the same training as alone: 5 epochs, one per fit
            net.fit(X, y, verbose=0, epochs=1, batch_size=25, **CREW_RULES[rule])

    try:
        threads = [threading.Thread(target=fit, args=(n, r)) for n, r in zip(nets, rules)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        numba.set_num_threads(before)
    for net, ref in zip(nets, alone):
        np.testing.assert_array_equal(net.params, ref)


@needs_mkl
@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="no fork here")
def test_a_forked_child_gets_a_pool_of_its_own(monkeypatch):
    """The parent's pool threads do not exist in a child made by fork: the child makes a pool of its own (its
    crew's second thread comes), not one whose queued work would never run."""
    import multiprocessing

    X, y = _data()
    parent, _ = _crew_fit("crew", X, y, monkeypatch=monkeypatch, **CREW_RULES["adam"])  # the parent's pool now exists
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()

    def child():
        pool = crew._helpers(1)
        queue.put(pool.submit(lambda: 7).result(timeout=30))

    proc = ctx.Process(target=child)
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0 and queue.get(timeout=5) == 7

"""Training in a crew (fastbp/units.py): each thread owns a part of every layer's units.

A crew's result does not depend on its threads (bitwise: two threads, or two of which one never comes),
and differs from training on one thread (kernels._train_epochs) only by the order of the sums over the parts
(the batch's cost, Σ‖W‖²): within rounding, in float64, with the same epochs, stopping decisions and undo of a
diverging epoch. The crew's products are MKL's; one thread's are its engine's (the compiled loops here).
"""

import concurrent.futures

import numba
import numpy as np
import pytest

import fastbp
from conftest import assert_trains_as_alone
from fastbp import _mkl, units
from fastbp.activations import RELU, SOFTMAX
from fastbp.matmul import Blas, Mkl, force_engine

pytestmark = pytest.mark.skipif(not _mkl.available(), reason='a crew needs MKL (pip install "fastbp[mkl]")')

# Rules that take each path of a batch's end: momentum with the L2 penalty added by the update, Adam without a
# penalty, AdamW (the penalty added to the gradient), RMSprop with a per-step schedule.
RULES = {
    "momentum+l2": dict(optimizer=fastbp.SGD(lr=0.05, momentum=0.9), l2=1e-3),
    "adam": dict(optimizer="adam"),
    "adamw+l2": dict(optimizer=fastbp.AdamW(lr=1e-3), l2=1e-3),
    "rmsprop+schedule": dict(optimizer="rmsprop", lr=1e-3, schedule=fastbp.schedules.InvScaling(power=0.5, per="step")),
}
SIZES = (12, 40, 24, 3)  # two hidden layers: parts of 16 and 24 units, then 8 and 16 (float64's 64-byte lines)


def _data(n=203, d=12, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = (X[:, :k] @ rng.standard_normal((k, k))).argmax(axis=1)
    return X, y


_real_helpers = units._helpers


class _Absent:
    """A pool whose threads never come: the calling thread trains alone, taking their parts."""

    def submit(self, *args):
        return concurrent.futures.Future()  # never run; cancel() succeeds


def _fit(mode, X, y, threads=2, monkeypatch=None, **kw):
    """A network trained with ``mode``: "crew" (whatever its size), "absent" (a crew of two whose second thread
    never comes), "alone" (never a crew)."""
    monkeypatch.setattr(units, "pays", lambda *a: mode != "alone")
    monkeypatch.setattr(units, "UNITS_PER_THREAD", 8)  # a crew of Numba's threads for these narrow layers
    monkeypatch.setattr(units, "_helpers", (lambda n: _Absent()) if mode == "absent" else _real_helpers)
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        net = fastbp.Network(list(SIZES), dtype="float64", seed=0)
        hist = net.fit(X, y, verbose=0, **{"epochs": 5, "batch_size": 25, **kw})
    finally:
        numba.set_num_threads(before)
    return net, hist




@pytest.mark.parametrize("rule", RULES)
def test_a_crew_trains_bitwise_the_same_whether_its_second_thread_comes_or_not(rule, monkeypatch):
    """Its parts' arithmetic does not depend on the thread that runs them: two threads, or one taking both parts
    (results depend on the number of parts, as the products' blocks and the sums over parts do)."""
    monkeypatch.setattr(units, "_PATIENCE", 1 << 8)  # the lone thread takes the absent one's parts sooner
    X, y = _data()
    sw = np.random.default_rng(1).random(X.shape[0])
    sw[:30] = 0.0  # a whole batch of weight 0 among them (the first order is not shuffled)
    kw = dict(RULES[rule], sample_weight=sw, shuffle=False)
    runs = []
    for mode, threads in (("crew", 2), ("absent", 2)):
        runs.append(_fit(mode, X, y, threads=threads, monkeypatch=monkeypatch, **kw))
    (one, h1), *others = runs
    for net, hist in others:
        np.testing.assert_array_equal(net.params, one.params)
        np.testing.assert_array_equal(net.state.slots, one.state.slots)
        assert hist["loss"] == h1["loss"]


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("n", [203, 201])  # 201: a last batch of one row, the first part of its rows empty
def test_a_crew_trains_as_one_thread_does_within_rounding(rule, n, monkeypatch):
    X, y = _data(n)
    sw = np.random.default_rng(2).random(n)
    for weights in (None, sw):
        alone, ha = _fit("alone", X, y, monkeypatch=monkeypatch, sample_weight=weights, **RULES[rule])
        crew, hc = _fit("crew", X, y, monkeypatch=monkeypatch, sample_weight=weights, **RULES[rule])
        assert_trains_as_alone(crew, hc, alone, ha)


def test_a_crew_stops_where_one_thread_stops(monkeypatch):
    """The stopping rule judged inside the crew's call, with the best epoch's parameters restored."""
    X, y = _data(400)
    stop = dict(monitor="loss", patience=2, min_delta=0.05, restore_best=True)
    kw = dict(epochs=60, optimizer="adam", lr=3e-3)
    alone, ha = _fit("alone", X, y, monkeypatch=monkeypatch, early_stopping=fastbp.EarlyStopping(**stop), **kw)
    crew, hc = _fit("crew", X, y, monkeypatch=monkeypatch, early_stopping=fastbp.EarlyStopping(**stop), **kw)
    assert 2 < len(ha["loss"]) < 60
    assert len(hc["loss"]) == len(ha["loss"]) and crew.epochs_trained == alone.epochs_trained
    np.testing.assert_allclose(crew.params, alone.params, rtol=1e-9, atol=1e-12)


def test_a_crew_undoes_a_diverging_epoch(monkeypatch):
    """A cost that stops being finite: the same error (epoch and batch) as one thread's, the network put back
    to the end of the last good epoch (its parameters; its optimizer state as one thread leaves it)."""
    X, _ = _data(300)
    y = np.random.default_rng(0).standard_normal((300, 2))
    results = {}
    for mode in ("alone", "crew"):
        monkeypatch.setattr(units, "pays", lambda *a, m=mode: m == "crew")
        monkeypatch.setattr(units, "UNITS_PER_THREAD", 8)
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


def test_which_trainings_take_a_crew(monkeypatch):
    from fastbp import plan
    from fastbp.optimizers import get_optimizer

    monkeypatch.delenv(units.CREW_ENV)  # the suite turns crews off (conftest.py)
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    mnist, acts = [784, 256, 128, 10], [RELU, RELU, SOFTMAX]  # 200 rows: 40 M multiply-adds in the largest product
    mkl = Mkl(4096, 2, 1 << 17)

    def rule(optimizer="adam", clip=0.0):
        return plan.rule(get_optimizer(optimizer), fastbp.schedules.Constant(), clip, 1)

    adam = rule()
    assert units.pays(mkl, mnist, 200, acts, False, adam) and units.pays(Blas(4096), mnist, 200, acts, False, adam)
    assert units.pays(mkl, mnist, 200, acts, False, rule(fastbp.SGD(lr=0.1, momentum=0.9)))
    assert not units.pays(mkl, mnist, 200, acts, False, rule("sgd"))  # plain descent: folded into the products
    assert not units.pays(None, mnist, 200, acts, False, adam)  # the compiled loops: no BLAS wanted
    assert not units.pays(mkl, mnist, 200, acts, True, adam)  # dropout
    assert not units.pays(mkl, mnist, 200, acts, False, rule(clip=1.0))  # a clip bound
    assert not units.pays(mkl, mnist, 200, [RELU, SOFTMAX, SOFTMAX], False, adam)  # a softmax hidden layer
    assert not units.pays(mkl, [4096, 32, 10], 200, acts, False, adam)  # a hidden layer too narrow for 2 parts
    assert not units.pays(mkl, [320, 128, 10], 200, acts, False, adam)  # too small to pay (8.2 M multiply-adds)
    assert units.threads(mnist) == 2 and units.threads([784, 2048, 2048, 10]) == 2
    with force_engine("openblas"):
        assert not units.pays(mkl, mnist, 200, acts, False, adam)
    with force_engine("mkl"):
        assert units.pays(mkl, mnist, 200, acts, False, adam)
    monkeypatch.setattr(numba, "get_num_threads", lambda: 1)
    assert not units.pays(mkl, mnist, 200, acts, False, adam)
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    for off in ("0", "off"):
        monkeypatch.setenv(units.CREW_ENV, off)
        assert not units.pays(mkl, mnist, 200, acts, False, adam)
    monkeypatch.setenv(units.CREW_ENV, "1")
    assert units.pays(mkl, mnist, 200, acts, False, adam)


def test_crews_in_two_python_threads_at_once(monkeypatch):
    """Two fits at once from two Python threads, each in a crew (the pool's one helper thread serves one at a
    time, the other crew's calling thread takes its helper's parts): both results are bitwise those of a fit
    run alone."""
    import threading

    monkeypatch.setattr(units, "_PATIENCE", 1 << 8)
    X, y = _data()
    rules = ("adam", "momentum+l2")
    alone = [_fit("crew", X, y, monkeypatch=monkeypatch, **RULES[r])[0].params for r in rules]
    nets = [fastbp.Network(list(SIZES), dtype="float64", seed=0) for _ in rules]
    before = numba.get_num_threads()
    numba.set_num_threads(2)

    def fit(net, rule):
        for _ in range(5):  # the same training as alone: 5 epochs, one per fit
            net.fit(X, y, verbose=0, epochs=1, batch_size=25, **RULES[rule])

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


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="no fork here")
def test_a_forked_child_gets_a_pool_of_its_own(monkeypatch):
    """The parent's pool threads do not exist in a child made by fork: the child makes a pool of its own (its
    crew's second thread comes), not one whose queued work would never run."""
    import multiprocessing

    X, y = _data()
    parent, _ = _fit("crew", X, y, monkeypatch=monkeypatch, **RULES["adam"])  # the parent's pool now exists
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()

    def child():
        pool = units._helpers(1)
        queue.put(pool.submit(lambda: 7).result(timeout=30))

    proc = ctx.Process(target=child)
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0 and queue.get(timeout=5) == 7

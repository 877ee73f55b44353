"""How many threads a fit takes: the CPUs the process may use, the cores other processes leave, other fits."""

import os
import subprocess
import sys
import threading
import time

import numba
import numpy as np
import pytest

import fastbp
from fastbp.engine import policy
from fastbp.engine.products import Blas, Loops


@pytest.fixture
def unset(monkeypatch):
    """The thread choice as a user gets it (the suite fixes it: conftest.py)."""
    monkeypatch.delenv(policy.THREADS_ENV, raising=False)
    for name in policy.LIMIT_ENVS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_fastbp_threads_sets_the_count(monkeypatch):
    monkeypatch.setattr(policy, "others_running", lambda: 99)
    monkeypatch.setenv(policy.THREADS_ENV, "3")
    assert policy.fit_threads() == 3
    for bad in ("0", "-1", "two", ""):  # not a count: the choice as without it
        monkeypatch.setenv(policy.THREADS_ENV, bad)
        assert policy.fit_threads() == 1


def test_the_environment_s_thread_limits_cap_the_cpus(unset):
    cpus = len(os.sched_getaffinity(0))
    assert policy.process_cpus() == min(cpus, policy._cgroup_cpus() or cpus)
    for name in policy.LIMIT_ENVS:  # as joblib's loky workers and Dask's workers are started
        unset.setenv(name, "1")
        assert policy.process_cpus() == 1
        unset.delenv(name)
    unset.setattr(os, "sched_getaffinity", lambda pid: {0})  # taskset -c 0
    assert policy.process_cpus() == 1


def test_busy_cores_leave_a_fit_fewer_threads(unset):
    unset.setattr(policy, "process_cpus", lambda: 8)
    unset.setattr(numba, "get_num_threads", lambda: 8)
    unset.setattr(os, "cpu_count", lambda: 8)
    for others, threads in ((0, 8), (1, 7), (6, 2), (7, 1), (30, 1)):
        unset.setattr(policy, "others_running", lambda others=others: others)
        assert policy.fit_threads() == threads


def test_fits_running_in_this_process_share_the_threads(unset):
    unset.setattr(policy, "others_running", lambda: 0)
    unset.setattr(policy, "process_cpus", lambda: 4)
    unset.setattr(numba, "get_num_threads", lambda: 4)
    unset.setattr(os, "cpu_count", lambda: 4)
    class Run:
        pass

    alone = policy.Choice(None, policy.ALONE, 1, False)
    first, second = Run(), Run()
    assert policy.fit_threads() == 4
    with policy.running(first, alone):
        assert policy.fit_threads() == 2
        with policy.running(second, alone):
            assert policy.fit_threads() == 1
        assert policy.fit_threads() == 2
    assert policy.fit_threads() == 4
    # A fit whose loop was left without its end (an interrupt at the wrong moment) stops counting with its run.
    gone = Run()
    policy._fits.add(gone)
    assert policy.fit_threads() == 2
    del gone
    assert policy.fit_threads() == 4


def test_the_running_threads_are_read_from_the_system(tmp_path, unset):
    # /proc/loadavg's fourth field counts the machine's running threads, each stat file's third its state.
    (tmp_path / "loadavg").write_bytes(b"0.50 0.40 0.30 5/321 4242\n")
    for i, state in enumerate(["R", "S", "R", "D"]):
        (tmp_path / f"{i}.stat").write_bytes(f"{100 + i} (a (b) c) {state} 1 2 3\n".encode())
    unset.setattr(policy, "LOADAVG", str(tmp_path / "loadavg"))
    unset.setattr(policy, "OWN_TASKS", str(tmp_path / "*.stat"))
    assert policy.others_running() == 3  # 5 running, 2 of them this process's
    unset.setattr(policy, "LOADAVG", str(tmp_path / "missing"))
    assert policy.others_running() == 0


def test_a_fit_with_one_thread_stays_on_the_calling_thread(unset):
    acts = fastbp.Network([64, 256, 10]).kernel_net(None).acts
    rule = None
    unset.setenv(policy.TEAMS_ENV, "1")
    one = policy.choose([64, 256, 10], 64, 19210, acts, False, rule, threads=1)
    assert one.parallel == policy.ALONE and one.threads == 1
    assert one.mm is None or isinstance(one.mm, Blas)  # never Loops(threads) nor MKL on several threads
    with policy.force_engine("openblas", smallest=0):
        one = policy.choose([64, 256, 10], 64, 19210, acts, False, rule, threads=1)
        assert isinstance(one.mm, Blas) and one.hold_blas  # OpenBLAS held to one thread
    with policy.force_engine("loops"):
        assert policy.choose([784, 256, 10], 128, 203530, acts, False, rule, threads=1).mm is None
        assert policy.choose([784, 256, 10], 128, 203530, acts, False, rule, threads=2).mm == Loops(2)


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or not os.path.exists("/proc/loadavg"),
                    reason="Linux's /proc tells the running threads")
def test_beside_a_busy_process_a_fit_takes_the_cores_it_leaves(unset):
    cpus = os.cpu_count()
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cpus)]
    try:
        time.sleep(0.5)
        # Every core busy: one thread, whatever else the machine runs.
        assert min(policy.fit_threads() for _ in range(5)) == 1
    finally:
        for p in busy:
            p.kill()
            p.wait()


def test_a_fit_beside_another_fit_in_a_thread_trains_as_alone(unset):
    # Two fits in two Python threads: each as it trains alone (fit_threads shares the cores, never the results
    # of the loops engine, whose sums do not depend on the threads).
    rng = np.random.default_rng(0)
    X = rng.standard_normal((256, 20)).astype(np.float32)
    y = rng.integers(0, 3, 256)
    with policy.force_engine("loops"):
        ref = fastbp.Network([20, 16, 3], seed=1)
        ref.fit(X, y, epochs=3, verbose=0)
        nets = [fastbp.Network([20, 16, 3], seed=1) for _ in range(2)]
        threads = [threading.Thread(target=n.fit, args=(X, y), kwargs={"epochs": 3, "verbose": 0}) for n in nets]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for n in nets:
        np.testing.assert_array_equal(n.params, ref.params)

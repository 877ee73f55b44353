"""What a network runs on, decided in one place, once per fit or pass.

- the engine of its products (``engine_for``: the compiled loops, OpenBLAS or MKL, and their threads), from
  this machine's calibration (calibration.py) or the built-in rule, unless one is forced (``FASTBP_ENGINE``,
  ``force_engine``);
- for one network training alone, whether it trains alone, in a team (team.py: two threads share each batch
  of a small network) or in a crew (crew.py: each thread owns a part of every layer of a large network), and
  with how many threads (``choose``);
- for a population (a sweep's networks side by side, one per core), the engine each member takes on its
  core (``population_engine``);
- whether OpenBLAS is held to one thread meanwhile (``one_blas_thread``);
- how many threads a fit may take (``fit_threads``): the cores this process may run on and other processes
  leave idle now, shared with the other fits of this process; on a busy machine, inside a loky or Dask worker
  (which set the thread limits of the environment) or beside another fit, a fit takes its one-thread path.

calibration.py only measures and stores; products.py only multiplies; the training loop asks here.
"""

import contextlib
import functools
import glob
import os
import sys
import threading
import time
import weakref
from typing import NamedTuple

import numba

from .._numba import mkl as _mkl
from .._numba.atomic import AVAILABLE as _ATOMICS
from ..specs.activations import SOFTMAX
from ..specs.optimizers import _plain_descent
from . import calibration, plan
from .products import BLAS_ONE_THREAD_MACS, PAR_UPDATE_MIN, SERIAL_MACS, Blas, Loops, Mkl, largest_product

__all__ = ["ENGINES", "Choice", "choose", "engine_for", "force_engine", "forced_engine", "one_blas_thread",
           "population_engine", "validation_rows", "describe"]

ENGINES = ("loops", "openblas", "mkl")
ENGINE_ENV = "FASTBP_ENGINE"
_forced = []  # force_engine's stack: (name, smallest or None)


def forced_engine():
    """``(name, smallest)`` of the engine every network is made to use, or None: the innermost
    ``force_engine``, else ``$FASTBP_ENGINE`` (read at each call; ``smallest`` None: the rule's)."""
    if _forced:
        return _forced[-1]
    name = os.environ.get(ENGINE_ENV, "").strip().lower()
    return (_check_engine(name, ENGINE_ENV), None) if name else None


def _check_engine(name, what):
    if name not in ENGINES:
        raise ValueError(f"{what}: expected one of {', '.join(ENGINES)}, got {name!r}")
    if name == "mkl" and not _mkl.available():
        raise ValueError(f'{what}: mkl is not installed (pip install "fastbp[mkl]"), or its libmkl_rt '
                         f"could not be loaded")
    return name


@contextlib.contextmanager
def force_engine(name, smallest=None):
    """Make every network use engine ``name`` ("loops", "openblas" or "mkl") inside the ``with`` block,
    whatever its size and the calibration (FASTBP_ENGINE does the same for a whole process). A BLAS engine
    takes the products of at least ``smallest`` multiply-adds (default: the rule's threshold for it; 0: every
    product, to test it) and leaves the smaller ones to the compiled loops on one core.

    The engine is chosen when a pass or ``fit`` starts: a network already training keeps its own."""
    _forced.append((_check_engine(name, "force_engine"), smallest))
    try:
        yield
    finally:
        _forced.pop()


def _blas_mm(name, smallest, threads, rule):
    def macs(x):  # a threshold as the kernels' integer (inf: never)
        return int(min(x, 1 << 62))

    return Mkl(macs(smallest), threads, macs(rule.mkl_parallel)) if name == "mkl" else Blas(macs(smallest))


def engine_for(sizes, rows, n_params, threads=None):
    """``mm`` for passes over batches of ``rows`` samples of a network of layer widths ``sizes``:
    ``None`` when every product and the update stay on one core in the compiled loops, else
    ``Loops(threads)``, ``Blas(smallest)`` or ``Mkl(smallest, threads, parallel)``; the kernels are
    compiled for that engine only.

    The engine is the forced one (``forced_engine``) if any; else the rule's BLAS (calibration.rule: this
    machine's calibration, or the built-in rule) if the network's largest product reaches the BLAS's
    threshold (the other BLAS past ``rule.large``'s size, on several threads); else the compiled loops.
    ``threads`` (default Numba's current count) is the loops' or MKL's."""
    threads = numba.get_num_threads() if threads is None else threads
    largest = largest_product(sizes, rows)
    forced = forced_engine()
    rule = calibration.rule()
    if forced is not None:
        name, smallest = forced
    else:
        name, smallest = "loops", None
        if rule.blas is not None and largest >= rule.thresholds[rule.blas][0]:
            name = rule.blas
            # The other BLAS from the size where it was the faster, measured on several threads.
            if rule.large is not None and threads > 1 and largest >= rule.large[1]:
                name = rule.large[0]
            # A calibration made with MKL stands while the same version is installed; if it cannot load, OpenBLAS.
            name = name if name != "mkl" or _mkl.available() else "openblas"
        elif rule.small_openblas <= largest <= SERIAL_MACS:
            # OpenBLAS on the calling thread: its own up to BLAS_ONE_THREAD_MACS, beyond that where training
            # holds it to one thread (``one_blas_thread``); one core's OpenBLAS beats one core's loops there too.
            name, smallest = "openblas", int(rule.small_openblas)
    if name != "loops":
        return _blas_mm(name, rule.thresholds[name][1] if smallest is None else smallest, threads, rule)
    if threads < 2 or (largest < SERIAL_MACS and n_params < PAR_UPDATE_MIN):
        return None
    return Loops(threads)


def population_engine(sizes, rows, n_params):
    """``mm`` for one network trained on one core beside others (a sweep's ``prange`` population): the
    engine of ``engine_for`` where every product then stays on the calling thread (MKL always: it is told
    so per product; OpenBLAS up to BLAS_ONE_THREAD_MACS), else the compiled loops on one core, whose results
    do not depend on the thread count."""
    mm = engine_for(sizes, rows, n_params, threads=1)
    if isinstance(mm, Mkl) or (isinstance(mm, Blas) and largest_product(sizes, rows) <= BLAS_ONE_THREAD_MACS):
        return mm
    return None


def holds_one_thread(mm, sizes, rows):
    """Whether training a network of widths ``sizes`` on batches of ``rows`` holds OpenBLAS to one thread:
    the engine is OpenBLAS and the largest product is below SERIAL_MACS (too small for a second core to pay)
    but past OpenBLAS's own threading threshold (BLAS_ONE_THREAD_MACS), which would wake its pool."""
    return isinstance(mm, Blas) and BLAS_ONE_THREAD_MACS < largest_product(sizes, rows) <= SERIAL_MACS


def one_thread_rows(sizes):
    """The most rows for which every product of a network of widths ``sizes`` stays on the calling
    thread of the BLAS (what a population's validation chunks are cut to): any number on MKL."""
    forced = forced_engine()
    if (forced[0] if forced else calibration.rule().blas) == "mkl":
        return sys.maxsize
    return max(1, BLAS_ONE_THREAD_MACS // largest_product(sizes, 1))


# ----------------------------------------------------------------------------- one network: alone, team or crew

# A team pays where the largest product (multiply-adds of a whole batch) is more than this: below, a batch's
# two blocks take too little for the hand-offs between the threads, and a network that small trains fast
# enough alone that a team's first compile (~10 s more than alone) would not pay back (docs/performance.md).
TEAM_FROM = 1 << 17
TEAM_THREADS = 2
# A crew pays where the largest product is at least this (docs/performance.md: crews).
CREW_FROM = 1 << 23
# Units of the narrowest hidden layer per crew thread, at least: narrower parts make products too thin to run at
# speed (and the parts are cut on 16 units of float32 anyway).
UNITS_PER_THREAD = 64
TEAMS_ENV = "FASTBP_TEAMS"
CREW_ENV = "FASTBP_CREW"
ALONE, TEAM, CREW = "alone", "team", "crew"


class Choice(NamedTuple):
    """How one network trains: its engine ``mm`` (``engine_for``); ``parallel``, ``"alone"``, ``"team"`` or
    ``"crew"``; the threads that share its batches (1 alone); whether OpenBLAS is held to one thread while it
    trains (``hold_blas``)."""

    mm: object
    parallel: str
    threads: int
    hold_blas: bool


def _off(env):
    return os.environ.get(env, "").strip().lower() in ("0", "off", "false", "no")


def _layer_ok():
    """Whether Numba's threading layer takes parallel regions from several threads at once (TBB, OpenMP;
    not the workqueue, its fallback where neither is installed)."""
    try:
        return numba.threading_layer() != "workqueue"
    except ValueError:  # pragma: no cover - not started yet (products.py starts it on import)
        return False


def team_pays(mm, sizes, rows, dropout, threads=None):
    """Whether a network of widths ``sizes`` training alone on batches of ``rows`` with engine ``mm`` trains
    in a team: teams are not turned off (``FASTBP_TEAMS=0``), Numba has two threads or more on TBB or OpenMP,
    the products stay on the calling thread (the compiled loops on one core, or OpenBLAS, held to one thread
    there), the largest is more than TEAM_FROM, and no layer's input is dropped out. ``threads``: the threads
    the fit may take (default Numba's count)."""
    threads = numba.get_num_threads() if threads is None else threads
    if _off(TEAMS_ENV) or not _ATOMICS or dropout or threads < TEAM_THREADS or not _layer_ok():
        return False
    largest = largest_product(sizes, rows)
    return largest > TEAM_FROM and (mm is None or (isinstance(mm, Blas) and largest <= SERIAL_MACS))


def crew_threads(sizes, threads=None):
    """A crew's size for a network of widths ``sizes``: ``threads`` (default Numba's count), at most one
    thread per UNITS_PER_THREAD units of the narrowest hidden layer."""
    hidden = min(sizes[1:-1]) if len(sizes) > 2 else sizes[-1]
    threads = numba.get_num_threads() if threads is None else threads
    return min(threads, max(1, hidden // UNITS_PER_THREAD))


def crew_pays(mm, sizes, rows, acts, dropout, rule, threads=None):
    """Whether a network of widths ``sizes`` and activation codes ``acts`` training alone on batches of ``rows``
    with engine ``mm`` and training rule ``rule`` (plan.Rule) trains in a crew: crews are not turned off
    (``FASTBP_CREW=0``), the engine is a BLAS and no engine but MKL is forced, MKL is there, a crew would have
    two threads or more (``crew_threads``), the largest product is at least CREW_FROM, no hidden layer is
    softmax, there is no dropout or clip bound, and the rule has an update pass of its own (plain gradient
    descent is folded into BLAS's products, and there a crew was no faster: docs/performance.md)."""
    if _off(CREW_ENV) or not _ATOMICS or dropout or rule.clip > 0 or crew_threads(sizes, threads) < 2:
        return False
    forced = forced_engine()
    if not isinstance(mm, (Blas, Mkl)) or (forced is not None and forced[0] != "mkl"):
        return False
    if _plain_descent(rule.opt_code, rule.hyper, rule.clip):
        return False
    if any(a == SOFTMAX for a in acts[:-1]) or largest_product(sizes, rows) < CREW_FROM:
        return False
    if max(*sizes, rows) >= 1 << 31:  # MKL's 32-bit sizes
        return False
    return _mkl.available()


def choose(sizes, rows, n_params, acts, dropout, rule, threads=None):
    """The Choice for one network of widths ``sizes`` and activation codes ``acts`` training alone on batches
    of ``rows`` with the training rule ``rule`` (``dropout``: whether any layer's input is dropped out), on at
    most ``threads`` threads (default ``fit_threads()``). On one thread the products stay on the calling
    thread: the compiled loops, MKL told so, or OpenBLAS held to one thread."""
    threads = fit_threads() if threads is None else threads
    mm = engine_for(sizes, rows, n_params, threads)
    if team_pays(mm, sizes, rows, dropout, threads):
        return Choice(mm, TEAM, TEAM_THREADS, isinstance(mm, Blas))
    if crew_pays(mm, sizes, rows, acts, dropout, rule, threads):
        return Choice(mm, CREW, crew_threads(sizes, threads), False)
    hold = holds_one_thread(mm, sizes, rows) or (threads < 2 and isinstance(mm, Blas))
    return Choice(mm, ALONE, 1, hold)


# ----------------------------------------------------------------------------- the threads a fit may take

THREADS_ENV = "FASTBP_THREADS"
# The thread limits a process may be started with (joblib's loky workers and Dask's set them, as may a user).
LIMIT_ENVS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# Where Linux tells the threads running or ready to run: the whole machine's, and each of this process's.
LOADAVG, OWN_TASKS = "/proc/loadavg", "/proc/self/task/*/stat"
# The runs of this process's fits in their training loop now (``running``): a weak set, with no lock, so that an
# interrupt at any moment can neither leave a lock held nor a fit counted for longer than its run lives.
_fits = weakref.WeakSet()


def _env_threads(name):
    """A positive thread count from the environment variable ``name``, or None (unset, or not a count)."""
    value = os.environ.get(name, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


@functools.cache
def _cgroup_cpus():
    """The CPUs of this process's cgroup quota (cgroup v2's cpu.max, or v1's CFS quota), None without one."""
    for quota_file, period_file in (("/sys/fs/cgroup/cpu.max", None),
                                    ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us")):
        try:
            with open(quota_file) as f:
                fields = f.read().split()
            if period_file is not None:
                with open(period_file) as f:
                    fields = fields[:1] + f.read().split()[:1]
            if fields[0] in ("max", "-1"):
                return None
            return max(1, int(fields[0]) // int(fields[1]))
        except (OSError, ValueError, IndexError):
            continue
    return None


def process_cpus():
    """The CPUs this process may use: its CPU affinity, its cgroup's CPU quota, and the thread limits of its
    environment (``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``: what joblib's workers
    and Dask's are started with); Numba's own count (``NUMBA_NUM_THREADS``) caps every fit besides."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    for cap in (_cgroup_cpus(), *map(_env_threads, LIMIT_ENVS)):
        if cap is not None:
            n = min(n, cap)
    return max(1, n)


def _running_threads(stat_files):
    """How many of the threads whose ``stat`` files are given are running or ready to run now."""
    n = 0
    for path in stat_files:
        try:
            with open(path, "rb") as f:
                state = f.read().rpartition(b")")[2].split(None, 1)[0]
        except (OSError, IndexError):
            continue
        n += state == b"R"
    return n


def _running_now():
    """Threads of the machine running or ready to run now (/proc/loadavg), None where the system does not tell."""
    try:
        with open(LOADAVG, "rb") as f:
            return int(f.read().split()[3].split(b"/")[0])
    except (OSError, ValueError, IndexError):
        return None


# How often the count is read, and how far apart, where the first read sees another thread: a thread ready to run
# for a moment (a daemon waking, the kernel's own work, a benchmark harness collecting results) is not another
# process's load. Measured here: 1-2 % of single reads on an idle machine saw one; under asv, 15 % of fits saw
# one in three reads 0.1 ms apart, 3 % in five reads 0.5 ms apart (2 ms at most a fit, where another thread
# runs; one read on an idle machine).
SAMPLES, SAMPLE_SECONDS = 5, 5e-4


def others_running():
    """Threads of other processes running or ready to run now: the machine's count (/proc/loadavg) less this
    process's own (its threads in state R, this one and any pool thread still spinning after its last
    region), the least of SAMPLES reads; 0 where the system does not tell. An idle machine costs one read."""
    least = None
    for k in range(SAMPLES):
        if k:
            time.sleep(SAMPLE_SECONDS)
        running = _running_now()
        if running is None or running <= 1:
            return 0
        others = max(0, running - max(1, _running_threads(glob.glob(OWN_TASKS))))
        least = others if least is None else min(least, others)
        if least == 0:
            return 0
    return least


def fit_threads():
    """The threads one fit may take, decided as it starts: ``FASTBP_THREADS`` where set; else Numba's count,
    capped by ``process_cpus()`` and by the cores that other processes' running threads leave (on a machine
    whose cores are all busy, one), shared with the other fits of this process running now (Python threads).

    A fit that shares its cores runs faster on one thread: the threads of a team, a crew or a BLAS that wait
    for a descheduled partner burn the core that partner needs."""
    forced = _env_threads(THREADS_ENV)
    if forced is not None:
        return forced
    threads = min(numba.get_num_threads(), process_cpus())
    if threads < 2:
        return 1
    threads = min(threads, max(1, (os.cpu_count() or 1) - others_running()))
    return max(1, threads // (len(_fits) + 1))


@contextlib.contextmanager
def running(run, choice):
    """The training loop of the fit ``run`` (any object that lives as long as the fit) with the Choice ``choice``:
    counted as running (``fit_threads``), with OpenBLAS held to one thread where the choice says so."""
    _fits.add(run)
    try:
        with one_blas_thread(choice.mm, choice.hold_blas):
            yield
    finally:
        _fits.discard(run)


# ----------------------------------------------------------------------------- OpenBLAS on one thread

_BLAS_CONTROLLER = None
_BLAS_HOLD = threading.Lock()
_blas_holders = 0
_blas_limit = None


@contextlib.contextmanager
def one_blas_thread(mm, on=True):
    """OpenBLAS on one thread while a population runs on it: each member's products stay on its own
    calling thread anyway, but a threaded OpenBLAS serialises calls that come from several threads at once
    (a population on two cores then runs no faster than on one). Also while one network small enough to
    train in OpenBLAS on the calling thread (``engine_for``) trains: its products are too small for
    a second thread to pay, and a sleeping pool stays asleep beside another library's; and while a team
    trains (team.py), whose two threads call it at once. Nothing without ``on``."""
    global _BLAS_CONTROLLER, _blas_holders, _blas_limit
    if not (on and isinstance(mm, Blas)):
        yield
        return
    if _BLAS_CONTROLLER is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - a core dependency
            yield
            return
        # Finding the loaded libraries takes a millisecond or more (more with scikit-learn loaded): once per
        # process. The BLAS the engines call (SciPy's) is loaded with fastbp; each limit reads and restores
        # the thread counts as they are when it starts.
        _BLAS_CONTROLLER = ThreadpoolController()
    # Fits in several Python threads at once hold it together: the first sets the limit, the last gives the
    # thread counts back (limits set and restored per fit would restore one another's limit, and the last
    # to end could leave OpenBLAS on one thread).
    with _BLAS_HOLD:
        if _blas_holders == 0:
            _blas_limit = _BLAS_CONTROLLER.limit(limits=1, user_api="blas")
        _blas_holders += 1
    try:
        yield
    finally:
        with _BLAS_HOLD:
            _blas_holders -= 1
            if _blas_holders == 0:
                _blas_limit.restore_original_limits()
                _blas_limit = None


def validation_rows(sizes, n, batch_rows, n_params):
    """Rows per chunk of a validation pass over ``n`` rows, which runs with the training's engine: as for any
    pass, but where a population keeps BLAS on the calling thread, few enough rows that validating does too, so
    that a population member validates exactly as ``fit`` does (``fit`` takes the same chunks)."""
    rows = plan.chunk_rows(sizes, n)
    if population_engine(sizes, batch_rows, n_params) is not None:
        rows = min(rows, one_thread_rows(sizes))
    return rows


def describe():
    """Lines for ``fastbp info``: the engine rule in force (calibration.describe) and any forced engine."""
    return calibration.describe(calibration.rule(), forced_engine())

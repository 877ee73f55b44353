"""Which engine runs a network's matrix products on this machine: measured once, kept like FFTW's wisdom.

``fastbp calibrate`` (``calibrate()``) times the three products of a layer
(Z = A Wᵀ, G = Dᵀ A, E = D W) for a range of sizes on every engine: the
compiled loops on one core and on Numba's threads, OpenBLAS (SciPy's, through
``np.dot``) and MKL when it is installed. From those times it derives, for each
BLAS, the size of product from which it beats the loops, which BLAS is the
faster, and the size from which the other is the faster if it is on the
largest products. The result is stored as JSON in the cache directory, under a
key made of the CPU model, the thread count and the versions of fastbp, Numba, SciPy (its
OpenBLAS) and MKL, so a new library version or another machine sharing the
directory is not mistaken for this one. Until a machine is calibrated the
built-in rule applies (OpenBLAS from the sizes in ``products.BLAS_FROM``).

``FASTBP_ENGINE=loops|openblas|mkl`` forces an engine (see ``policy.forced_engine``).
"""

import datetime
import functools
import importlib.metadata
import itertools
import json
import math
import os
import platform
import time
from typing import NamedTuple

import numba
import numpy as np
from numba import njit

from .._numba import mkl as _mkl
from .._version import __version__
from . import products
from ..common.files import atomic_write

__all__ = ["calibrate", "rule", "path", "Rule"]

FILE = "engines.json"
BLASES = ("openblas", "mkl")

# Layers (rows, n_in, n_out) timed: the products of networks from 64-32-10 at batch 16 to wide ones at batch 256,
# narrow output layers included (BLAS and the loops do not scale alike on them).
SHAPES = [(16, 16, 16), (32, 64, 32), (32, 128, 10), (32, 128, 64), (64, 256, 128), (128, 784, 10),
          (32, 784, 256), (128, 784, 256), (256, 1024, 512), (256, 1024, 1024), (256, 2048, 2048)]
# The other BLAS takes the large networks where it is faster by this factor at every larger point.
LARGE_MARGIN = 1.02
# Seconds of one timed repeat of a point, and repeats (the best is kept: other processes only slow it down).
REPEAT_SECONDS, REPEATS = 0.01, 4


class Rule(NamedTuple):
    """How ``policy.engine_for`` chooses: the BLAS (``"openblas"``, ``"mkl"`` or None: the loops only); per
    BLAS, (largest product from which a network uses it, smallest product it then takes), in multiply-adds;
    the smallest product MKL splits over threads; where this came from; the calibration entry (None for the
    built-in rule); ``small_openblas``: the largest product from which a network whose products all stay on
    OpenBLAS's calling thread (up to products.BLAS_ONE_THREAD_MACS: no thread pool wakes, whatever the BLAS
    of the larger networks) runs them in OpenBLAS (inf: never); ``large``: (the other BLAS, largest product
    from which a network on several threads uses it instead of ``blas``), or None."""

    blas: str | None
    thresholds: dict
    mkl_parallel: float
    source: str
    entry: dict | None
    small_openblas: float = math.inf
    large: tuple | None = None


def cache_dir():
    """Where the calibration is kept: $FASTBP_CACHE_DIR, Numba's cache directory, or ~/.cache/fastbp."""
    for d in (os.environ.get("FASTBP_CACHE_DIR"), numba.config.CACHE_DIR):
        if d:
            return d
    return os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
                        "fastbp")


def path():
    """The calibration file."""
    return os.path.join(cache_dir(), FILE)


def cpu_model():
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_key():
    """What a calibration holds for: CPU, threads and library versions (cheap: no library is loaded)."""
    return {"cpu": cpu_model(), "avx512": bool(products.host_features().get("avx512f")),
            "threads": numba.config.NUMBA_NUM_THREADS, "fastbp": __version__, "numba": numba.__version__,
            "scipy": _version("scipy"), "mkl": _version("mkl") if _mkl.installed() else None}


def _key_text(key):
    return json.dumps(key, sort_keys=True)


def _read(file):
    try:
        with open(file) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def builtin_rule():
    """The rule of an uncalibrated machine: OpenBLAS from this host's ``BLAS_FROM``; MKL, when forced, the same."""
    t = products.blas_from()
    return Rule("openblas", {"openblas": t, "mkl": t}, products.SERIAL_MACS,
                "built-in rule (not calibrated: run `fastbp calibrate`)", None)


@functools.cache
def rule():
    """The rule for this machine: its calibration if there is one for its key, else the built-in rule."""
    file = path()
    entry = _read(file).get(_key_text(machine_key()))
    if not isinstance(entry, dict):
        return builtin_rule()
    try:
        thresholds = {b: (float(t[0]), float(t[1])) for b, t in entry["thresholds"].items() if b in BLASES}
        blas = entry["blas"]
        if blas is not None and blas not in thresholds:
            raise KeyError(blas)
        parallel = float(entry.get("mkl_parallel", products.SERIAL_MACS))
        small = float(entry.get("small_openblas", math.inf))
        large = entry.get("large_blas")
        if large is not None:
            large = (str(large[0]), float(large[1]))
            if large[0] not in thresholds:
                raise KeyError(large[0])
    except (KeyError, TypeError, ValueError, IndexError):
        return builtin_rule()
    built = builtin_rule().thresholds
    return Rule(blas, {**built, **thresholds}, parallel, f"calibrated {entry.get('date', '?')} ({file})", entry,
                small, large)


# ----------------------------------------------------------------------------- measuring


@njit(cache=True, error_model="numpy")
def _layer(A, W, D, Z, G, E, mm, reps):
    """The three products of one layer, ``reps`` times, on engine ``mm``."""
    for _ in range(reps):
        products.matmul_nt(A, W, Z, mm)
        products.matmul_tn(D, A, G, mm)
        products.matmul_nn(D, W, E, mm)


def _time(arrays, mm, reps):
    """Seconds of one run of the three products, over ``reps`` runs."""
    t0 = time.perf_counter()
    _layer(*arrays, mm, reps)
    return (time.perf_counter() - t0) / reps


def _threshold(points, wins):
    """Multiply-adds from which ``wins(point)`` holds at every larger point: halfway (geometrically) between
    the last point where it fails and the next; inf if it fails at the largest."""
    points = sorted(points, key=lambda p: p["macs"])
    last_loss = max((i for i, p in enumerate(points) if not wins(p)), default=-1)
    if last_loss == len(points) - 1:
        return math.inf
    if last_loss < 0:
        return float(points[0]["macs"])
    return float(round(math.sqrt(points[last_loss]["macs"] * points[last_loss + 1]["macs"])))


def _geomean_ratio(points, num, den):
    return math.exp(sum(math.log(p["seconds"][num] / p["seconds"][den]) for p in points) / len(points))


def measure(shapes=SHAPES, rounds=REPEATS):
    """Best seconds of a layer's three products (float32) per shape and engine: ``loops1`` (one core),
    ``loops`` (Numba's threads from products.SERIAL_MACS on), ``openblas`` and, when installed, ``mkl1`` (MKL on
    one thread) and ``mkl`` (on Numba's thread count), over ``rounds`` rounds through all engines."""
    threads = numba.get_num_threads()
    engines = {"loops1": None, "loops": products.Loops(threads), "openblas": products.Blas(0)}
    if _mkl.available():
        engines.update(mkl1=products.Mkl(0, 1, 0), mkl=products.Mkl(0, threads, 0))
    rng = np.random.default_rng(0)
    data = []
    for n, k, m in shapes:
        A, W, D = (rng.standard_normal(s).astype(np.float32) for s in ((n, k), (m, k), (n, m)))
        data.append((A, W, D, np.empty((n, m), np.float32), np.empty((m, k), np.float32),
                     np.empty((n, k), np.float32)))
    seconds = [dict.fromkeys(engines, math.inf) for _ in shapes]
    reps = {}
    # Rounds through the engines, each timed alone (two BLASes' spinning threads would fight): a burst of
    # load from other processes spoils one round's times, not an engine's.
    for _ in range(rounds):
        for name, mm in engines.items():
            for i, (arrays, s) in enumerate(zip(data, seconds)):
                if (i, name) not in reps:  # compile (once per engine), then runs for about REPEAT_SECONDS
                    _layer(*arrays, mm, 1)
                    reps[i, name] = max(1, int(REPEAT_SECONDS / max(_time(arrays, mm, 1), 1e-7)))
                s[name] = min(s[name], _time(arrays, mm, reps[i, name]))
            if name != "loops1":
                time.sleep(0.1)  # let these threads stop spinning before the next engine's start
    return [{"shape": list(shape), "macs": int(np.prod(shape)), "seconds": s} for shape, s in zip(shapes, seconds)]


def decide(points):
    """The rule's content from measured points: per BLAS its thresholds, and the faster BLAS. MKL's time is
    that of one thread below the size from which its threads gain, of all threads above."""
    thresholds, speed = {}, {}
    if all("mkl" in p["seconds"] for p in points):
        parallel = _threshold(points, lambda p: p["seconds"]["mkl"] < p["seconds"]["mkl1"])
        speed["mkl_parallel"] = parallel
        points = [{**p, "seconds": {**p["seconds"], "mkl": p["seconds"]["mkl" if p["macs"] >= parallel else "mkl1"]}}
                  for p in points]
    for b in BLASES:
        if not all(b in p["seconds"] for p in points):
            continue
        thresholds[b] = (_threshold(points, lambda p: p["seconds"][b] < min(p["seconds"]["loops1"],
                                                                           p["seconds"]["loops"])),
                         _threshold(points, lambda p: p["seconds"][b] < p["seconds"]["loops1"]))
    used = {b: t for b, t in thresholds.items() if math.isfinite(t[0])}
    blas = None
    if used:
        # Over the products a BLAS network runs in BLAS, the BLAS with the smaller times (geometric mean).
        frm = min(t[1] for t in used.values())
        big = [p for p in points if p["macs"] >= frm]
        blas = min(used, key=lambda b: _geomean_ratio(big, b, "openblas") if big else 1.0)
        # The two BLASes block large products differently: the other may be the faster from some size on
        # (OpenBLAS beside MKL on AVX-512: docs/performance.md). Then the networks past it use the other.
        for other in (b for b in used if b != blas) if big else ():
            switch = _threshold(big, lambda p: p["seconds"][other] * LARGE_MARGIN < p["seconds"][blas])
            if math.isfinite(switch):
                speed["large_blas"] = [other, max(switch, used[other][0])]
    if "mkl" in thresholds:
        big = [p for p in points if p["macs"] >= min(t[1] for t in thresholds.values())] or points
        speed["mkl_over_openblas"] = _geomean_ratio(big, "openblas", "mkl")
    # Small networks: OpenBLAS computes products up to BLAS_ONE_THREAD_MACS on the calling thread, so it can
    # serve them beside another BLAS without waking a second thread pool.
    small = [p for p in points if p["macs"] <= products.BLAS_ONE_THREAD_MACS and "openblas" in p["seconds"]]
    if small:
        speed["small_openblas"] = _threshold(small, lambda p: p["seconds"]["openblas"] < p["seconds"]["loops1"])
    return {"blas": blas, "thresholds": {b: list(t) for b, t in thresholds.items()}, **speed}


def calibrate(file=None):
    """Measure, decide and store this machine's engine rule in ``file`` (default: ``path()``); the entry."""
    points = measure()
    entry = {"date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
             "key": machine_key(), **decide(points), "mkl_version": _mkl.version(), "points": points}
    file = file or path()
    os.makedirs(os.path.dirname(os.path.abspath(file)), exist_ok=True)
    data = _read(file)
    data[_key_text(entry["key"])] = entry
    text = json.dumps(data, indent=1, allow_nan=True).encode()
    atomic_write(file, lambda f: f.write(text))
    rule.cache_clear()
    return entry


# ----------------------------------------------------------------------------- describing


def _macs(x):
    if not math.isfinite(x):
        return "never"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x:.0f}"


_NAMES = {"openblas": "OpenBLAS", "mkl": "MKL", "loops": "the compiled loops"}


def describe(r, forced=None):
    """Lines for ``fastbp info``: the engine rule ``r``, where it came from, the measured table, and MKL's gain;
    ``forced``: the engine every network is made to use ((name, smallest) or None)."""
    lines = [f"engine rule: {r.source}"]
    if forced:
        lines.append(f"  forced: FASTBP_ENGINE={forced[0]} (every network uses {_NAMES[forced[0]]})")
    if r.blas is None:
        lines.append("  every network uses the compiled loops (no BLAS beat them here)")
    else:
        frm, smallest = r.thresholds[r.blas]
        lines.append(f"  a network uses {_NAMES[r.blas]} when its largest product has >= {_macs(frm)} "
                     f"multiply-adds (batch x n_in x n_out), for every product >= {_macs(smallest)}; "
                     f"the compiled loops otherwise")
    if r.large is not None:
        lines.append(f"  from {_macs(r.large[1])} multiply-adds on (several threads) it uses {_NAMES[r.large[0]]}, "
                     f"the faster there")
    if math.isfinite(r.small_openblas) and r.blas != "openblas":
        lines.append(f"  a network whose largest product has {_macs(r.small_openblas)} to "
                     f"{_macs(products.SERIAL_MACS)} multiply-adds uses OpenBLAS on the calling thread")
    if r.entry is not None:
        points = r.entry["points"]
        names = [n for n in ("loops1", "loops", "openblas", "mkl1", "mkl") if n in points[0]["seconds"]]
        lines.append("  layer (rows x in x out)   multiply-adds  " + "  ".join(f"{n:>9}" for n in names)
                     + "  (us, 3 products)  fastest")
        for p in points:
            s = p["seconds"]
            lines.append(f"  {'x'.join(map(str, p['shape'])):>24}  {_macs(p['macs']):>13}  "
                         + "  ".join(f"{s[n] * 1e6:9.1f}" for n in names) + f"  {min(names, key=s.get):>18}")
    lines.append(_mkl_advice(r))
    return [line for line in lines if line]


def _mkl_advice(r):
    """What MKL gives or would give on this machine."""
    if _mkl.available():
        ratio = (r.entry or {}).get("mkl_over_openblas")
        found = f"MKL: {_mkl.version()}, threading layer {_mkl.threading_layer()}"
        if ratio is None:
            return f"{found}; run `fastbp calibrate` to measure it"
        return f"{found}; {ratio:.2f}x OpenBLAS's speed on the products a BLAS takes here"
    # Not installed: a calibration of this CPU made while it was (any library versions) tells what it gives.
    cpu = cpu_model()
    ratios = [e["mkl_over_openblas"] for e in _read(path()).values() if isinstance(e, dict)
              and e.get("key", {}).get("cpu") == cpu and isinstance(e.get("mkl_over_openblas"), (int, float))]
    if ratios and ratios[-1] > 1.05:
        return (f"MKL: not installed; measured {ratios[-1]:.2f}x OpenBLAS's speed on this CPU: "
                f'pip install "fastbp[mkl]" and run `fastbp calibrate`')
    if not ratios and "intel" in cpu.lower():
        return ('MKL: not installed; on Intel CPUs it is often faster than OpenBLAS (1.25-1.6x measured): '
                'pip install "fastbp[mkl]" and run `fastbp calibrate` to see')
    return "MKL: not installed" + ("" if not ratios else f" (measured {ratios[-1]:.2f}x OpenBLAS here: no gain)")

#!/usr/bin/env python
"""Benchmark fastbp against PyTorch (eager and torch.compile), JAX and scikit-learn: samples/s of one epoch.

    python scripts/bench.py --help
    python scripts/bench.py --quick --only tiny --peers none     # a smoke run, seconds
    python scripts/bench.py --json bench.json --plot bench.png   # the full run (see docs/performance.md)

The same workload for everyone: ReLU hidden layers, a softmax output with the
cross-entropy cost, plain SGD (no momentum, no weight decay) at lr 0.01, the
rows shuffled every epoch, on random data (X ~ N(0, 1) in float32, integer
labels uniform over the classes) made from a fixed seed in each process; the
configurations and the data are those of the asv suite
(asv_benchmarks/benchmarks/common.py). fastbp also runs in float64 (the same
numbers, converted), once per engine forced through FASTBP_ENGINE, and with
each option of the fit-extras table (Adam at lr 1e-3, for every framework);
the predict rows time class labels for 10,000 rows and for one row.

Every measurement runs in its own subprocess (``python scripts/bench.py
--worker SPEC``), one at a time so the workers never share the cores; a worker
prints one JSON line per job and the parent collects them (what a worker does:
scripts/benchlib/workers.py); a ``--quick`` smoke run gives all the jobs of
one framework and environment to one worker. Every worker runs ``--rounds``
times, one round of all of them after another, and each is quoted at its best
round.

"matmul alone" is the time of just the matrix products of backpropagation,
per layer and batch: the forward Z = A Wᵀ, the weight gradient Dᵀ A and the
input gradient D W (not for the first layer), in a Numba loop calling
``np.dot`` into preallocated arrays: the BLAS that fastbp's large products use
(Numba's np.dot calls scipy's OpenBLAS).

Peers: pip install -e '.[bench]' (scikit-learn, JAX, matplotlib, threadpoolctl)
and pip install torch==2.13.0 (a CPU build).
"""

import argparse
import ctypes.util
import glob
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import machine as mach
from benchlib.configs import CONFIGS, LR, parse_config
from benchlib.report import plot, print_report
from benchlib.workers import EXTRAS_CONFIG, FIT_EXTRAS, MARK, PREDICT_ROWS, PREDICTORS, SWEEP_SPACE, worker

SEED = 0
PEERS = ("torch", "torch-compile", "jax", "sklearn")
PEER_MODULES = {"torch": "torch", "torch-compile": "torch", "jax": "jax", "sklearn": "sklearn"}
ENGINES = ("loops", "openblas", "mkl")
TRAINING_SAMPLES = 60000  # mnist-sized: 784-256-128-10, batch 128
SWEEP_EPOCHS = 20
SWEEP_TRIALS = math.prod(len(v) for v in SWEEP_SPACE.values())  # 48
WIDTHS = (64, 128, 256, 512, 1024, 2048, 4096)
WIDTH_BATCH = 128
HERE = os.path.dirname(os.path.abspath(__file__))

# The start-up script: import fastbp, build the tiny network, one epoch (8000 rows, batch 32).
STARTUP_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import fastbp
t1 = time.perf_counter()
net = fastbp.Network([64, 32, 10], activation="relu", output="softmax", loss="cross_entropy",
                     dtype="float32", seed=0)
t2 = time.perf_counter()
rng = np.random.default_rng(0)
X = rng.standard_normal((8000, 64), dtype=np.float32)
y = rng.integers(0, 10, 8000)
t3 = time.perf_counter()
net.fit(X, y, epochs=1, batch_size=32, lr=0.01, verbose=0)
t4 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "build": t2 - t1, "data": t3 - t2, "fit": t4 - t3,
                  "script": (t1 - t0) + (t2 - t1) + (t4 - t3)}))
"""


# ----------------------------------------------------------------------------- arguments

def _names(text):
    return [s.strip() for s in str(text).split(",") if s.strip()]


def _parser():
    p = argparse.ArgumentParser(
        prog="scripts/bench.py",
        description="Samples per second of one epoch of plain SGD: fastbp (float32 and float64, every engine) "
                    "against PyTorch eager, torch.compile, JAX and scikit-learn, and the matrix products alone; "
                    "Adam, predict, start-up time and memory.",
        epilog="Peers that are not installed are skipped. Install them with: pip install 'fastbp[bench]' "
               "and, for PyTorch, pip install torch==2.13.0 (a CPU build).")
    p.add_argument("--only", type=_names, metavar="NAMES",
                   help=f"built-in configurations to run, comma-separated, from {', '.join(CONFIGS)} "
                        "(default: all; 'none' for none); --config ones always run")
    p.add_argument("--config", action="append", type=parse_config, default=[], metavar="SIZES:BATCH:SAMPLES",
                   help="an extra configuration such as 784,512,10:64:20000 (repeatable)")
    p.add_argument("--repeats", type=int, default=5, help="timed epochs per measurement, median quoted (default 5)")
    p.add_argument("--peers", type=_names, metavar="NAMES",
                   help=f"frameworks to compare with, from {', '.join(PEERS)} (default: all installed; "
                        "'none' for none)")
    p.add_argument("--engines", type=_names, metavar="NAMES",
                   help=f"also run fastbp float32 with each of these engines forced (FASTBP_ENGINE), from "
                        f"{', '.join(ENGINES)} (default: every available one; 'none' with --quick)")
    p.add_argument("--extras", action=argparse.BooleanOptionalAction, default=None,
                   help=f"the fit-extras rows on {EXTRAS_CONFIG} ({', '.join(FIT_EXTRAS)}) for fastbp and the "
                        "peers (default: on, off with --quick)")
    p.add_argument("--predict", action=argparse.BooleanOptionalAction, default=None,
                   help=f"time predict on {PREDICT_ROWS:,} rows and on one row of the mnist network, fastbp and "
                        "the peers (default: on, off with --quick)")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: 1 repeat, at most 1024 samples per configuration, no start-up timing, no "
                        "sample of the machine's load before each worker, and one worker for all the jobs "
                        "of a framework and environment (its memory figures then include the earlier jobs')")
    p.add_argument("--no-startup", action="store_true",
                   help="skip the start-up timings (the first-compile one takes ~20 s)")
    p.add_argument("--no-matmul", action="store_true", help="skip the 'matmul alone' ceiling")
    p.add_argument("--training", action=argparse.BooleanOptionalAction, default=None,
                   help="measure what fit's extras cost on mnist: Adam, AdamW and RMSprop against plain SGD, "
                        "validation and the progress bar (default: on, off with --quick)")
    p.add_argument("--sweep", action=argparse.BooleanOptionalAction, default=None,
                   help="time a 48-trial sweep on digits against Network.fit one trial after another and "
                        "scikit-learn's GridSearchCV (default: on, off with --quick)")
    p.add_argument("--plot", nargs="?", const="bench.png", metavar="PATH",
                   help="also sweep the hidden width of 784-H-H-10 and plot samples/s (default PATH bench.png; "
                        "needs matplotlib)")
    p.add_argument("--json", metavar="PATH", help="write every raw number here")
    p.add_argument("--lr", type=float, default=LR, help=f"learning rate (default {LR})")
    p.add_argument("--seed", type=int, default=SEED, help=f"seed of the data and the weights (default {SEED})")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per worker (default 1800)")
    p.add_argument("--wait-idle", type=float, metavar="SECONDS",
                   help="before each worker, wait up to this long for other processes to leave the CPU "
                        "(default 300; 0 with --quick)")
    p.add_argument("--rounds", type=int,
                   help="run every worker this many times, one round of all of them after another, and quote "
                        "each one's best round: a slow spell of a shared machine then has to hit the same "
                        "worker in every round to count (default 2; 1 with --quick)")
    p.add_argument("--retries", type=int,
                   help="measure again when another process took CPU time during a worker (default 2; "
                        "0 with --quick)")
    return p


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        if len(argv) != 2:
            print("usage: python scripts/bench.py --worker SPEC_JSON", file=sys.stderr)
            return 2
        return worker(json.loads(argv[1]))
    try:
        return run(_parser().parse_args(argv))
    except ValueError as e:  # a bad option value: one line, like argparse's own errors
        print(f"scripts/bench.py: error: {e}", file=sys.stderr)
        return 2


# ----------------------------------------------------------------------------- what runs

def _selected_configs(args):
    only = args.only
    if only is None:
        names = list(CONFIGS)
    elif only == ["none"]:
        names = []
    else:
        unknown = [n for n in only if n not in CONFIGS]
        if unknown:
            raise ValueError(f"--only: unknown configuration {unknown[0]!r}; expected some of {list(CONFIGS)}")
        names = [n for n in CONFIGS if n in only]
    configs = {n: CONFIGS[n] for n in names}
    for name, cfg in args.config:
        configs[name] = cfg
    startup = not (args.quick or args.no_startup)
    if not configs and not (args.training or args.sweep or args.plot or args.extras or args.predict or startup):
        raise ValueError("--only: no configuration and no other section selected (see --config, --training, "
                         "--sweep, --extras, --predict, --plot and the start-up timings, which --quick and "
                         "--no-startup turn off)")
    return {n: _quick(args, cfg) for n, cfg in configs.items()}


def _quick(args, cfg):
    sizes, batch, n = cfg
    return (sizes, batch, min(n, max(2 * batch, 1024))) if args.quick else cfg


def _selected_peers(args):
    wanted = list(PEERS) if args.peers is None else ([] if args.peers == ["none"] else args.peers)
    unknown = [p for p in wanted if p not in PEERS]
    if unknown:
        raise ValueError(f"--peers: unknown framework {unknown[0]!r}; expected some of {list(PEERS)} or 'none'")
    run_, missing = [], []
    for p in PEERS:
        if p in wanted:
            (run_ if mach.installed(PEER_MODULES[p]) else missing).append(p)
    return run_, missing


def _mkl_installed():
    """Whether Intel MKL's single dynamic library (the ``mkl`` package's libmkl_rt) can be found."""
    return bool(ctypes.util.find_library("mkl_rt") or glob.glob(os.path.join(sys.prefix, "lib", "libmkl_rt.so*")))


def _selected_engines(args):
    if args.engines is None:
        wanted = [] if args.quick else list(ENGINES)
    else:
        wanted = [] if args.engines == ["none"] else args.engines
    unknown = [e for e in wanted if e not in ENGINES]
    if unknown:
        raise ValueError(f"--engines: unknown engine {unknown[0]!r}; expected some of {list(ENGINES)} or 'none'")
    missing = [e for e in wanted if e == "mkl" and not _mkl_installed()]
    return [e for e in ENGINES if e in wanted and e not in missing], missing


def _spawn(spec, timeout, env=None):
    """Run one worker; its result lines (a list of dicts), or one error dict."""
    cmd = [sys.executable, os.path.join(HERE, "bench.py"), "--worker", json.dumps(spec)]
    full_env = dict(os.environ, **(env or {}))
    if "FASTBP_ENGINE" not in (env or {}):  # fastbp's own choice unless this worker forces one
        full_env.pop("FASTBP_ENGINE", None)
    if spec["framework"] == "jax":
        full_env.setdefault("JAX_PLATFORMS", "cpu")
    try:
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout, env=full_env)
    except subprocess.TimeoutExpired:
        return [{"error": f"timed out after {timeout:.0f} s"}]
    out = [json.loads(line[len(MARK):]) for line in proc.stdout.splitlines() if line.startswith(MARK)]
    if proc.returncode != 0 and not out:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return [{"error": f"exit status {proc.returncode}: " + " | ".join(tail)}]
    return out


def _job(layers, batch, samples, dtype="float32", repeats=5, **more):
    return {"layers": list(layers), "batch": batch, "samples": samples, "dtype": dtype, "repeats": repeats, **more}


def _measure(spec, args, timeout, env=None):
    """Run one worker when the machine is idle; again (up to ``args.retries`` times) if another process
    took CPU time while it ran. Returns (result lines, busy before, foreign load during, attempts)."""
    best = None
    for attempt in range(1, args.retries + 2):
        # A quick run is a smoke run, not a measurement: no 0.3 s sample of the load before each worker.
        busy = mach.wait_idle(args.wait_idle) if args.wait_idle > 0 else None if args.quick else mach.cpu_busy()
        c0, t0 = mach.cpu_times(), time.perf_counter()
        out = _spawn(spec, timeout, env)
        during = mach.foreign_load(c0, mach.cpu_times(), time.perf_counter() - t0)
        worst = max(x for x in (busy, during, 0.0) if x is not None)
        if best is None or worst < best[0]:
            best = (worst, out, busy, during, attempt)
        if worst <= mach.BUSY_WARN or attempt > args.retries:
            break
        mach.log(f"  other processes used {100 * worst:.0f}% of the CPU: measuring again")
    return best[1], best[2], best[3], best[4]


def _startup(timeout, wait_idle=0):
    """(first compile with an empty cache, warm start medians) in fresh processes."""
    res = {}
    with tempfile.TemporaryDirectory(prefix="fastbp-bench-cache-") as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        runs = []
        for i in range(4):  # the first fills the cache: the first-ever compile
            if wait_idle > 0:
                mach.wait_idle(wait_idle)
            t0 = time.perf_counter()
            try:
                proc = subprocess.run([sys.executable, "-c", STARTUP_SCRIPT], check=False, capture_output=True,
                                      text=True, env=env, timeout=timeout)
            except subprocess.TimeoutExpired:
                return {"error": f"timed out after {timeout:.0f} s"}
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                return {"error": f"exit status {proc.returncode}: " + " | ".join(proc.stderr.strip().splitlines()[-3:])}
            inner = json.loads(proc.stdout.strip().splitlines()[-1])
            runs.append({"wall": wall, **inner})
            mach.log(f"  start-up run {i + 1}/4 ({'empty cache' if i == 0 else 'warm cache'}): {wall:.2f} s")
    res["cold"] = runs[0]
    res["warm_runs"] = runs[1:]
    res["warm"] = {k: _median([r[k] for r in runs[1:]]) for k in runs[1]}
    return res


def _median(xs):
    return statistics.median(xs) if xs else None


def _plan(args, configs, peers, engines, repeats):
    """Every worker of a round, in order: (key, label, framework, job, environment)."""
    plan = []
    for name, (sizes, batch, samples) in configs.items():
        for dtype in ("float32", "float64"):
            plan.append((("main", name, "fastbp", dtype), f"{name} fastbp {dtype}", "fastbp",
                         _job(sizes, batch, samples, dtype, repeats, memory=True), None))
        for p in peers + ([] if args.no_matmul else ["matmul"]):
            plan.append((("main", name, p, "float32"), f"{name} {p}", p, _job(sizes, batch, samples,
                                                                              repeats=repeats), None))
        for e in engines:
            plan.append((("engine", name, "fastbp", e), f"{name} fastbp FASTBP_ENGINE={e}", "fastbp",
                         _job(sizes, batch, samples, repeats=repeats), {"FASTBP_ENGINE": e}))
    if args.extras:
        sizes, batch, samples = _quick(args, CONFIGS[EXTRAS_CONFIG])
        for row, options in FIT_EXTRAS.items():
            for fw in ["fastbp", *peers]:
                if fw in options:
                    plan.append((("extra", row, fw, "float32"), f"{EXTRAS_CONFIG} {row} {fw}", fw,
                                 _job(sizes, batch, samples, repeats=repeats, extra=options[fw]), None))
    if args.predict:
        for fw in [f for f in PREDICTORS if f == "fastbp" or f in peers]:
            plan.append((("predict", "mnist", fw, "float32"), f"predict {fw}", fw, _predict_job(args, repeats), None))
    return plan


def _workers(plan, quick):
    """The workers of a round, each a list of plan entries: one entry each; with ``quick`` (a smoke run, not a
    measurement), one worker for all the jobs of a framework and environment, in plan order."""
    if not quick:
        return [[e] for e in plan]
    shared = {}
    for e in plan:
        shared.setdefault((e[2], json.dumps(e[4], sort_keys=True)), []).append(e)
    return list(shared.values())


def _predict_job(args, repeats):
    sizes, _, _ = CONFIGS["mnist"]
    return _job(sizes, PREDICT_ROWS, 1024 if args.quick else PREDICT_ROWS, repeats=repeats, kind="predict")


def _merge(best, r):
    """The better of two rounds of one worker (the higher samples/s; the lower one-row latency kept apart)."""
    rounds = (best["rounds"] if best else []) + [r.get("samples_per_second")]
    if best is None or "error" in best or r.get("samples_per_second", 0) > best.get("samples_per_second", 0):
        ones = [x.get("one_row_seconds") for x in (best, r) if x and x.get("one_row_seconds")]
        best = r
        if ones:
            best["one_row_seconds"] = min(ones)
    elif r.get("one_row_seconds"):
        best["one_row_seconds"] = min(best.get("one_row_seconds") or math.inf, r["one_row_seconds"])
    best["rounds"] = rounds
    return best


def run(args):
    """Run the benchmark for parsed ``args``; prints the report, returns 0."""
    if args.repeats < 1:
        raise ValueError(f"--repeats: expected an integer >= 1, got {args.repeats}")
    if args.lr <= 0:
        raise ValueError(f"--lr: expected a positive number, got {args.lr}")
    repeats = 1 if args.quick else args.repeats
    if args.wait_idle is None:
        args.wait_idle = 0.0 if args.quick else 300.0
    if args.retries is None:
        args.retries = 0 if args.quick else 2
    if args.rounds is None:
        args.rounds = 1 if args.quick else 2
    if args.retries < 0 or args.wait_idle < 0:
        raise ValueError("--retries, --wait-idle: expected numbers >= 0")
    if args.rounds < 1:
        raise ValueError(f"--rounds: expected an integer >= 1, got {args.rounds}")
    for section in ("training", "sweep", "extras", "predict"):
        if getattr(args, section) is None:
            setattr(args, section, not args.quick)
    configs = _selected_configs(args)
    peers, missing = _selected_peers(args)
    engines, engines_missing = _selected_engines(args)
    if args.plot and not mach.installed("matplotlib"):
        raise ValueError("--plot: needs matplotlib (pip install matplotlib)")
    t_start = time.perf_counter()
    machine = mach.machine()
    report = {"machine": machine,
              "settings": {"repeats": repeats, "lr": args.lr, "seed": args.seed, "wait_idle": args.wait_idle,
                           "retries": args.retries, "rounds": args.rounds, "quick": args.quick, "peers": peers,
                           "peers_missing": missing + [f"FASTBP_ENGINE={e}" for e in engines_missing],
                           "engines": engines, "extras": list(FIT_EXTRAS) if args.extras else [],
                           "extras_config": EXTRAS_CONFIG, "extras_layers": CONFIGS[EXTRAS_CONFIG][0],
                           "predict": [f for f in PREDICTORS if f == "fastbp" or f in peers] if args.predict else [],
                           "predict_job": _predict_job(args, repeats)},
              "fastbp_source": mach.source_digest(), "configs": {}, "versions": {}, "blas": {}}
    base = {"lr": args.lr, "seed": args.seed, "quick": args.quick}
    for name, (sizes, batch, samples) in configs.items():
        report["configs"][name] = {"layers": sizes, "batch": batch, "samples": samples}

    plan = _plan(args, configs, peers, engines, repeats)
    results = {}
    i = 0
    for entries in _workers(plan, args.quick) * args.rounds:
        t0 = time.perf_counter()
        fw, env = entries[0][2], entries[0][4]
        out, busy, during, attempts = _measure({"framework": fw, **base, "jobs": [e[3] for e in entries]}, args,
                                               args.timeout, env)
        stopped = out[-1] if out and "error" in out[-1] else {"error": "no result: the worker stopped before it"}
        for (key, label, _, _, _), line in zip(entries, out + [stopped] * (len(entries) - len(out))):
            i += 1
            r = {"section": key[0], "config": key[1], "framework": fw, "dtype": key[3], "busy_before": busy,
                 "foreign_load": during, "attempts": attempts, **line}
            _note_process(report, fw if env is None else f"{fw} [{' '.join(f'{k}={v}' for k, v in env.items())}]",
                          r.pop("process", None))
            results[key] = _merge(results.get(key), r)
            shown = r["error"] if "error" in r else (f"{r['samples_per_second']:,.0f} samples/s"
                                                     + (f" (engine {r['engine']})" if r.get("engine") else ""))
            worst = mach.load(r)
            if worst > mach.BUSY_WARN:
                shown += f"  [other processes used up to {100 * worst:.0f}% of the CPU: not trustworthy]"
            mach.log(f"[{i}/{len(plan) * args.rounds}] {label}: {shown}  ({time.perf_counter() - t0:.1f} s)")
    sections = {"main": "results", "engine": "engines", "extra": "extras", "predict": "predict"}
    for s in sections.values():
        report[s] = []
    for key, r in results.items():
        report[sections[key[0]]].append(r)

    if not args.quick and not args.no_startup:
        mach.log("start-up: import fastbp + build + one epoch of tiny, in fresh processes")
        report["startup"] = _startup(args.timeout, args.wait_idle)

    if args.training:
        mach.log("training extras: optimizers, validation and the progress bar on mnist (fastbp float32)")
        report["training"] = _section(args, base, "fastbp-training",
                                      {"samples": 4096 if args.quick else TRAINING_SAMPLES, "repeats": repeats},
                                      report)
    if args.sweep:
        mach.log(f"sweep: a {SWEEP_TRIALS}-trial grid on digits, three ways")
        report["sweep"] = _section(args, base, "fastbp-sweep",
                                   {"epochs": 2 if args.quick else SWEEP_EPOCHS, "repeats": 3 if args.quick else 5,
                                    "sklearn": "sklearn" in peers}, report)

    if args.plot:
        report["width_sweep"] = _width_sweep(args, peers, base, min(repeats, 3))
        plot(args.plot, report["width_sweep"], machine)

    report["seconds"] = time.perf_counter() - t_start
    print_report(report, configs, results, peers, args)
    if args.json:
        d = os.path.dirname(os.path.abspath(args.json))
        os.makedirs(d, exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
        print(f"\nraw numbers: {args.json}")
    return 0


def _note_process(report, who, info):
    """Keep the versions and the BLAS libraries a worker reported (the first report of each kind of worker)."""
    if not info:
        return
    report["versions"].update(info.get("versions", {}))
    report["blas"].setdefault(who, info.get("blas", []))


def _section(args, base, framework, job, report):
    """Run one of the extra sections (a worker of its own); its result dict with the load seen."""
    out, busy, during, attempts = _measure({"framework": framework, **base, "jobs": [job]}, args, args.timeout)
    r = {"busy_before": busy, "foreign_load": during, "attempts": attempts, **out[0]}
    _note_process(report, framework, r.pop("process", None))
    mach.log("  " + r.get("error", "done"))
    return r


# ----------------------------------------------------------------------------- width sweep

def _width_samples(h, quick):
    """Rows for one epoch of 784-h-h-10 so that it takes about half a second (a whole number of batches)."""
    macs = 784 * h + h * h + 10 * h
    n = int(1.2e10 / (6 * macs)) if not quick else 512
    n = max(2 * WIDTH_BATCH, min(60000, n))
    return n - n % WIDTH_BATCH


def _width_sweep(args, peers, base, repeats):
    sweep = {"widths": list(WIDTHS), "batch": WIDTH_BATCH, "samples": [_width_samples(h, args.quick) for h in WIDTHS],
             "series": {}}
    frameworks = ["fastbp", *peers] + ([] if args.no_matmul else ["matmul"])
    for fw in frameworks:
        jobs = [_job([784, h, h, 10], WIDTH_BATCH, n, "float32", repeats)
                for h, n in zip(WIDTHS, sweep["samples"])]
        t0 = time.perf_counter()
        out, _, during, _ = _measure({"framework": fw, **base, "jobs": jobs}, args, args.timeout * 2)
        for r in out:
            r.pop("process", None)
        sps = [r.get("samples_per_second") for r in out] + [None] * (len(WIDTHS) - len(out))
        sweep["series"][fw] = {"samples_per_second": sps[:len(WIDTHS)], "foreign_load": during, "raw": out}
        warn = f"  [other processes used {100 * during:.0f}% of the CPU]" if during and during > mach.BUSY_WARN else ""
        mach.log(f"width sweep {fw}: " + ", ".join("–" if v is None else f"{v:,.0f}" for v in sps[:len(WIDTHS)])
                 + f"  ({time.perf_counter() - t0:.1f} s){warn}")
    return sweep


if __name__ == "__main__":
    sys.exit(main())

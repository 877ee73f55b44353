"""``fastbp bench``: one epoch of plain SGD, samples per second, fastbp against PyTorch, JAX and scikit-learn.

The same workload for everyone: ReLU hidden layers, a softmax output with the
cross-entropy cost, plain SGD (no momentum, no weight decay) at lr 0.01, the
rows shuffled every epoch, on random data (X ~ N(0, 1) in float32, integer
labels uniform over the classes) made from a fixed seed in each process.
fastbp also runs in float64 (the same numbers, converted).

Every measurement runs in its own subprocess (``python -m fastbp.bench
--worker SPEC``), one at a time so the workers never share the cores; a worker
prints one JSON line per job and the parent collects them. Each worker warms up
first (fastbp: a two-batch fit that compiles the kernels or loads them from
Numba's cache, then one whole epoch; PyTorch, JAX and scikit-learn: one whole
epoch, which for JAX includes the jit compile) and then times ``repeats``
epochs; the median is quoted.

"matmul alone" is the time of just the matrix products of backpropagation,
per layer and batch: the forward Z = A Wᵀ, the weight gradient Dᵀ A and the
input gradient D W (not for the first layer), in a Numba loop calling
``np.dot`` into preallocated arrays: the BLAS that fastbp's large products use
(Numba's np.dot calls scipy's OpenBLAS). No trainer does this work much faster.

This module imports only the standard library at the top, so that ``fastbp
--help`` stays fast; the workers import what they measure.
"""

import argparse
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

__all__ = ["CONFIGS", "add_arguments", "main", "parse_config", "run"]

LR = 0.01
SEED = 0
MARK = "@@fastbp-bench "
PEERS = ("torch", "jax", "sklearn")
PEER_MODULES = {"torch": "torch", "jax": "jax", "sklearn": "sklearn"}
PEER_INSTALL = {"torch": "pip install torch==2.13.0", "jax": "pip install jax jaxlib",
                "sklearn": "pip install scikit-learn"}
DASH = "–"

# name: (layer sizes, batch size, samples per epoch)
CONFIGS = {
    "tiny": ([64, 32, 10], 32, 8000),
    "mnist": ([784, 256, 128, 10], 128, 60000),
    "mnist-b32": ([784, 256, 128, 10], 32, 60000),
    "wide": ([784, 2048, 2048, 10], 256, 16384),
}
MEMORY_CONFIG = "mnist"
TRAINING_SAMPLES = 60000  # mnist-sized: 784-256-128-10, batch 128
TRAINING_OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SWEEP_EPOCHS = 20
SWEEP_SPACE = {"lr": [0.01, 0.03, 0.1, 0.3], "momentum": [0.0, 0.5, 0.9], "seed": [0, 1, 2, 3]}
SWEEP_TRIALS = math.prod(len(v) for v in SWEEP_SPACE.values())  # 48
WIDTHS = (64, 128, 256, 512, 1024, 2048, 4096)
WIDTH_BATCH = 128
STARTUP_TARGET_WARM = 1.5
STARTUP_TARGET_COLD = 20.0

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

def parse_config(text):
    """``"784,512,10:64:20000"`` (layer sizes : batch : samples) -> (name, (sizes, batch, samples))."""
    parts = str(text).split(":")
    try:
        if len(parts) != 3:
            raise ValueError
        sizes = [int(w) for w in parts[0].split(",") if w.strip()]
        batch, samples = int(parts[1]), int(parts[2])
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected sizes:batch:samples such as 784,512,10:64:20000, got {text!r}") from None
    if len(sizes) < 2 or any(w < 1 for w in sizes) or sizes[-1] < 2 or batch < 1 or samples < 1:
        raise argparse.ArgumentTypeError(
            f"expected at least two widths >= 1 (the output >= 2 for softmax), batch >= 1 and samples >= 1, "
            f"got {text!r}")
    return "-".join(map(str, sizes)) + f"/b{batch}", (sizes, batch, samples)


def _names(text):
    return [s.strip() for s in str(text).split(",") if s.strip()]


def add_arguments(p):
    """The options of ``fastbp bench`` (and of ``python scripts/bench.py``), added to parser ``p``."""
    p.add_argument("--only", type=_names, metavar="NAMES",
                   help=f"built-in configurations to run, comma-separated, from {', '.join(CONFIGS)} "
                        "(default: all; 'none' for none); --config ones always run")
    p.add_argument("--config", action="append", type=parse_config, default=[], metavar="SIZES:BATCH:SAMPLES",
                   help="an extra configuration such as 784,512,10:64:20000 (repeatable)")
    p.add_argument("--repeats", type=int, default=5, help="timed epochs per measurement, median quoted (default 5)")
    p.add_argument("--peers", type=_names, metavar="NAMES",
                   help=f"frameworks to compare with, from {', '.join(PEERS)} (default: all installed; "
                        "'none' for none)")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: 1 repeat, at most 1024 samples per configuration, no start-up timing")
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


def _parser():
    return add_arguments(argparse.ArgumentParser(
        prog="fastbp bench",
        description="Samples per second of one epoch of plain SGD: fastbp (float32 and float64) against "
                    "PyTorch, JAX and scikit-learn, and the matrix products alone; start-up time and memory.",
        epilog="Peers that are not installed are skipped. Install them with: pip install 'fastbp[bench]' "
               "and, for PyTorch, pip install torch==2.13.0 (a CPU build)."))


def main(argv=None):
    """Entry point: ``python -m fastbp.bench [options]``, ``python scripts/bench.py``, ``fastbp bench``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        if len(argv) != 2:
            print("usage: python -m fastbp.bench --worker SPEC_JSON", file=sys.stderr)
            return 2
        return _worker(json.loads(argv[1]))
    try:
        return run(_parser().parse_args(argv))
    except ValueError as e:  # a bad option value: one line, like argparse's own errors
        print(f"fastbp bench: error: {e}", file=sys.stderr)
        return 2


# ----------------------------------------------------------------------------- the parent

def _log(msg):
    print(msg, file=sys.stderr, flush=True)


def _installed(module):
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


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
    if not configs and not (args.training or args.sweep or args.plot or startup):
        raise ValueError("--only: no configuration and no other section selected (see --config, --training, "
                         "--sweep, --plot and the start-up timings, which --quick and --no-startup turn off)")
    if args.quick:
        configs = {n: (s, b, min(n_, max(2 * b, 1024))) for n, (s, b, n_) in configs.items()}
    return configs


def _selected_peers(args):
    wanted = list(PEERS) if args.peers is None else ([] if args.peers == ["none"] else args.peers)
    unknown = [p for p in wanted if p not in PEERS]
    if unknown:
        raise ValueError(f"--peers: unknown framework {unknown[0]!r}; expected some of {list(PEERS)} or 'none'")
    run_, missing = [], []
    for p in PEERS:
        if p in wanted:
            (run_ if _installed(PEER_MODULES[p]) else missing).append(p)
    return run_, missing, wanted


def _spawn(spec, timeout, env=None):
    """Run one worker; its result lines (a list of dicts), or one error dict."""
    cmd = [sys.executable, "-m", "fastbp.bench", "--worker", json.dumps(spec)]
    full_env = dict(os.environ, **(env or {}))
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


def _job(layers, batch, samples, dtype="float32", repeats=5, memory=False):
    return {"layers": list(layers), "batch": batch, "samples": samples, "dtype": dtype, "repeats": repeats,
            "memory": memory}


def _machine():
    info = {"cores": os.cpu_count(), "python": sys.version.split()[0], "platform": sys.platform}
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        for line in text.splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in text.splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                info["simd"] = [f for f in ("avx2", "fma", "avx512f") if f in flags]
                break
    except OSError:
        import platform

        info["cpu"] = platform.processor() or platform.machine()
    blas = []
    try:
        import numpy as np
        import scipy.linalg  # noqa: F401  (loads scipy's OpenBLAS, the one Numba's np.dot calls)

        info["numpy"] = np.__version__
        try:
            from threadpoolctl import threadpool_info

            for lib in threadpool_info():
                if lib.get("user_api") == "blas":
                    blas.append(f"{lib.get('internal_api')} {lib.get('version')} "
                                f"({os.path.basename(lib.get('filepath', ''))}, {lib.get('architecture', '?')}, "
                                f"{lib.get('num_threads')} threads)")
        except ImportError:
            try:
                dep = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
                blas.append(f"numpy: {dep.get('name')} {dep.get('version')} (install threadpoolctl for scipy's)")
            except Exception:  # noqa: BLE001 - older numpy: no dict mode
                blas.append("unknown (install threadpoolctl)")
    except ImportError:
        pass
    info["blas"] = blas
    return info


def _source_digest():
    """A short hash of fastbp's kernel sources: which code these numbers belong to."""
    import hashlib

    here = os.path.dirname(os.path.abspath(__file__))
    h = hashlib.sha256()
    for name in ("kernels.py", "matmul.py", "network.py", "activations.py", "losses.py", "optimizers.py"):
        try:
            with open(os.path.join(here, name), "rb") as f:
                h.update(f.read())
        except OSError:
            pass
    return h.hexdigest()[:12]


def _cpu_busy(seconds=0.3):
    """Fraction of the machine's CPU time used by other processes over ``seconds`` (None off Linux)."""
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return sum(v[:8]) if len(v) >= 8 else sum(v), idle

    try:
        t0, i0 = snap()
        time.sleep(seconds)
        t1, i1 = snap()
    except (OSError, ValueError):
        return None
    return 1.0 - (i1 - i0) / (t1 - t0) if t1 > t0 else 0.0


BUSY_WARN = 0.15


def _cpu_times():
    """(busy seconds of the whole machine, CPU seconds of our finished children), or None off Linux."""
    import resource

    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (sum(v) - v[3] - v[4]) / tick, ru.ru_utime + ru.ru_stime


def _foreign_load(before, after, wall):
    """Fraction of the machine used by processes other than our workers between two ``_cpu_times``."""
    if before is None or after is None or wall <= 0:
        return None
    other = (after[0] - before[0]) - (after[1] - before[1])
    return max(0.0, other / (wall * (os.cpu_count() or 1)))


def _wait_idle(max_wait):
    """Wait (up to ``max_wait`` s) until other processes use < 10% of the CPU; returns the last busy fraction."""
    deadline = time.perf_counter() + max_wait
    said = False
    while True:
        busy = _cpu_busy(0.5)
        if busy is None or busy < 0.10 or time.perf_counter() >= deadline:
            return busy
        if not said:
            _log(f"  waiting for the machine to go idle ({100 * busy:.0f}% busy; at most {max_wait:.0f} s)")
            said = True
        time.sleep(2.0)


def _measure(spec, args, timeout, env=None):
    """Run one worker when the machine is idle; again (up to ``args.retries`` times) if another process
    took CPU time while it ran. Returns (result lines, busy before, foreign load during, attempts)."""
    best = None
    for attempt in range(1, args.retries + 2):
        busy = _wait_idle(args.wait_idle) if args.wait_idle > 0 else _cpu_busy()
        c0, t0 = _cpu_times(), time.perf_counter()
        out = _spawn(spec, timeout, env)
        during = _foreign_load(c0, _cpu_times(), time.perf_counter() - t0)
        worst = max(x for x in (busy, during, 0.0) if x is not None)
        if best is None or worst < best[0]:
            best = (worst, out, busy, during, attempt)
        if worst <= BUSY_WARN or attempt > args.retries:
            break
        _log(f"  other processes used {100 * worst:.0f}% of the CPU: measuring again")
    return best[1], best[2], best[3], best[4]


def _median(xs):
    return statistics.median(xs) if xs else None


def _startup(timeout, wait_idle=0):
    """(first compile with an empty cache, warm start medians) in fresh processes."""
    res = {}
    with tempfile.TemporaryDirectory(prefix="fastbp-bench-cache-") as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        runs = []
        for i in range(4):  # the first fills the cache: the first-ever compile
            if wait_idle > 0:
                _wait_idle(wait_idle)
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
            _log(f"  start-up run {i + 1}/4 ({'empty cache' if i == 0 else 'warm cache'}): {wall:.2f} s")
    res["cold"] = runs[0]
    res["warm_runs"] = runs[1:]
    res["warm"] = {k: _median([r[k] for r in runs[1:]]) for k in runs[1]}
    return res


def run(args):
    """Run the benchmark for parsed ``args`` (see ``add_arguments``); prints the report, returns 0."""
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
    for section in ("training", "sweep"):
        if getattr(args, section) is None:
            setattr(args, section, not args.quick)
    configs = _selected_configs(args)
    peers, missing, wanted = _selected_peers(args)
    if args.plot and not _installed("matplotlib"):
        raise ValueError("--plot: needs matplotlib (pip install matplotlib)")
    t_start = time.perf_counter()
    machine = _machine()
    report = {"machine": machine, "settings": {"repeats": repeats, "lr": args.lr, "seed": args.seed,
                                               "wait_idle": args.wait_idle, "retries": args.retries,
                                               "rounds": args.rounds,
                                               "quick": args.quick, "peers": peers, "peers_missing": missing},
              "fastbp_source": _source_digest(), "configs": {}, "results": [], "versions": {}}
    base = {"lr": args.lr, "seed": args.seed, "quick": args.quick}

    # What runs, in order, one process each.
    plan = []
    for name, (sizes, batch, samples) in configs.items():
        report["configs"][name] = {"layers": sizes, "batch": batch, "samples": samples}
        for dtype in ("float32", "float64"):
            plan.append((name, "fastbp", dtype))
        for p in peers:
            plan.append((name, p, "float32"))
        if not args.no_matmul:
            plan.append((name, "matmul", "float32"))

    results = {}
    for i, (name, fw, dtype) in enumerate(plan * args.rounds, 1):
        sizes, batch, samples = configs[name]
        spec = {"framework": fw, **base,
                "jobs": [_job(sizes, batch, samples, dtype, repeats, memory=(fw == "fastbp"))]}
        label = f"[{i}/{len(plan) * args.rounds}] {name:<10} {fw} {dtype if fw == 'fastbp' else ''}".rstrip()
        t0 = time.perf_counter()
        out, busy, during, attempts = _measure(spec, args, args.timeout)
        r = {"config": name, "framework": fw, "dtype": dtype, "busy_before": busy, "foreign_load": during,
             "attempts": attempts, **out[0]}
        best = results.get((name, fw, dtype))
        rounds = (best["rounds"] if best else []) + [r.get("samples_per_second")]
        if best is None or "error" in best or r.get("samples_per_second", 0) > best.get("samples_per_second", 0):
            best = r
        best["rounds"] = rounds
        results[(name, fw, dtype)] = best
        if "version" in r:
            report["versions"]["numba/scipy" if fw == "matmul" else fw] = r["version"].replace("numba ", "").replace(
                "scipy ", "")
        shown = r["error"] if "error" in r else f"{r['samples_per_second']:,.0f} samples/s"
        worst = max(x for x in (busy, during, 0.0) if x is not None)
        if worst > BUSY_WARN:
            shown += f"  [other processes used up to {100 * worst:.0f}% of the CPU: not trustworthy]"
        _log(f"{label}: {shown}  ({time.perf_counter() - t0:.1f} s)")
    report["results"] = list(results.values())

    if not args.quick and not args.no_startup:
        _log("start-up: import fastbp + build + one epoch of tiny, in fresh processes")
        report["startup"] = _startup(args.timeout, args.wait_idle)

    if args.training:
        _log("training extras: optimizers, validation and the progress bar on mnist (fastbp float32)")
        report["training"] = _section(args, base, "fastbp-training",
                                      {"samples": 4096 if args.quick else TRAINING_SAMPLES, "repeats": repeats})
    if args.sweep:
        _log(f"sweep: a {SWEEP_TRIALS}-trial grid on digits, three ways")
        report["sweep"] = _section(args, base, "fastbp-sweep",
                                   {"epochs": 2 if args.quick else SWEEP_EPOCHS, "repeats": 3 if args.quick else 5,
                                    "sklearn": "sklearn" in peers})

    if args.plot:
        report["width_sweep"] = _width_sweep(args, peers, base, min(repeats, 3))
        _plot(args.plot, report["width_sweep"], machine)

    report["seconds"] = time.perf_counter() - t_start
    _print_report(report, configs, results, peers, missing, wanted, args)
    if args.json:
        d = os.path.dirname(os.path.abspath(args.json))
        os.makedirs(d, exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
        print(f"\nraw numbers: {args.json}")
    return 0


def _section(args, base, framework, job):
    """Run one of the extra sections (a worker of its own); its result dict with the load seen."""
    out, busy, during, attempts = _measure({"framework": framework, **base, "jobs": [job]}, args, args.timeout)
    r = {"busy_before": busy, "foreign_load": during, "attempts": attempts, **out[0]}
    _log("  " + r.get("error", "done"))
    return r


# ----------------------------------------------------------------------------- width sweep and plot

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
        sps = [r.get("samples_per_second") for r in out] + [None] * (len(WIDTHS) - len(out))
        sweep["series"][fw] = {"samples_per_second": sps[:len(WIDTHS)], "foreign_load": during, "raw": out}
        warn = f"  [other processes used {100 * during:.0f}% of the CPU]" if during and during > BUSY_WARN else ""
        _log(f"width sweep {fw}: " + ", ".join(DASH if v is None else f"{v:,.0f}" for v in sps[:len(WIDTHS)])
             + f"  ({time.perf_counter() - t0:.1f} s){warn}")
    return sweep


LABELS = {"fastbp": "fastbp float32", "torch": "PyTorch eager", "jax": "JAX jit (lax.scan)",
          "sklearn": "scikit-learn MLPClassifier", "matmul": "matrix products alone (BLAS)"}
STYLES = {"fastbp": {"color": "C3", "marker": "o", "lw": 2.2}, "torch": {"color": "C0", "marker": "s"},
          "jax": {"color": "C2", "marker": "^"}, "sklearn": {"color": "C1", "marker": "v"},
          "matmul": {"color": "0.45", "marker": ".", "ls": "--"}}


def _plot(path, sweep, machine):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullLocator

    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=120)
    widths = sweep["widths"]
    for fw, s in sweep["series"].items():
        pts = [(w, v) for w, v in zip(widths, s["samples_per_second"]) if v]
        if pts:
            ax.plot(*zip(*pts), label=LABELS.get(fw, fw), **STYLES.get(fw, {}))
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(FixedLocator(widths))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([str(w) for w in widths])
    ax.set_xlabel("hidden width H (network 784-H-H-10)")
    ax.set_ylabel("training samples / s (one SGD epoch)")
    cpu = machine.get("cpu", "?")
    ax.set_title(f"Cost against size: batch {sweep['batch']}, float32, plain SGD\n"
                 f"{machine.get('cores')} cores, {cpu}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    _log(f"wrote {path}")


# ----------------------------------------------------------------------------- the report

def _fmt(v):
    return DASH if v is None else f"{v:,.0f}"


def _ratio(a, b):
    return DASH if a is None or b is None or b == 0 else f"{a / b:.2f}×"


def _mib(b):
    return f"{b / 2**20:,.1f} MiB"


def _print_report(report, configs, results, peers, missing, wanted, args):
    m = report["machine"]
    print(f"machine: {m.get('cores')} cores, {m.get('cpu', '?')}"
          + (f" ({', '.join(m['simd'])})" if m.get("simd") else ""))
    for b in m.get("blas") or ["BLAS: unknown"]:
        print(f"BLAS: {b}")
    vers = "  ".join(f"{k} {v}" for k, v in report["versions"].items())
    print(f"python {m['python']}  {vers}  (fastbp sources {report['fastbp_source']})")
    s = report["settings"]
    print(f"workload: one epoch of plain SGD (lr {s['lr']}), ReLU hidden, softmax + cross-entropy, random "
          f"N(0,1) data; median of {s['repeats']} epoch(s) after a warm-up, in a process of its own, the best of "
          f"{s.get('rounds', 1)} such round(s) of every worker; samples/s (higher is better)")
    for p in missing:
        print(f"{p}: not installed, skipped ({PEER_INSTALL[p]})")
    busy = [r[k] for r in report["results"] for k in ("busy_before", "foreign_load") if r.get(k) is not None]
    if busy:
        worst = max(busy)
        print(f"other load: up to {100 * worst:.0f}% of the CPU busy before and during the workers"
              + (" -- WARNING: another process was running; these numbers are not trustworthy"
                 if worst > BUSY_WARN else " (an idle machine)"))
    print()

    def sps(name, fw, dtype="float32"):
        r = results.get((name, fw, dtype))
        return None if r is None else r.get("samples_per_second")

    cols = ["config", "layers", "batch", "samples", "fastbp f32", "fastbp f64", "torch", "jax", "sklearn",
            "matmul alone", "f32/torch", "f32/jax", "f32/matmul", "f32/f64"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "|".join(["---"] * 4 + ["---:"] * (len(cols) - 4)) + "|")
    starred = False
    for name, (sizes, batch, samples) in configs.items():
        f32, f64 = sps(name, "fastbp"), sps(name, "fastbp", "float64")
        tch, jx, mm = (sps(name, p) for p in ("torch", "jax", "matmul"))

        def cell(fw, dtype="float32", name=name):
            r = results.get((name, fw, dtype)) or {}
            return _fmt(r.get("samples_per_second")) + ("*" if _load(r) > BUSY_WARN else "")

        row = [name, "-".join(map(str, sizes)), str(batch), f"{samples:,}", cell("fastbp"), cell("fastbp", "float64"),
               cell("torch"), cell("jax"), cell("sklearn"), cell("matmul"), _ratio(f32, tch), _ratio(f32, jx),
               _ratio(f32, mm), _ratio(f32, f64)]
        print("| " + " | ".join(row) + " |")
        starred = starred or any(c.endswith("*") for c in row)
    if starred:
        print(f"* measured while other processes used more than {100 * BUSY_WARN:.0f}% of the CPU (after retries)")

    errors = [r for r in report["results"] if "error" in r]
    for r in errors:
        print(f"error: {r['config']} {r['framework']} {r['dtype']}: {r['error']}")

    print()
    print("warm-up, seconds (fastbp: kernels compiled or loaded from Numba's cache on two batches, then one "
          "untimed epoch; peers: the first epoch, JAX's including its jit compile):")
    print("| config | fastbp f32 compile | fastbp f32 1st epoch | fastbp f64 compile | torch 1st | jax 1st | "
          "sklearn 1st | spread f32 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in configs:
        def g(fw, key, dtype="float32", name=name):
            r = results.get((name, fw, dtype)) or {}
            v = r.get(key)
            return DASH if v is None else f"{v:.2f}"
        r32 = results.get((name, "fastbp", "float32")) or {}
        sp = r32.get("spread")
        print(f"| {name} | {g('fastbp', 'compile_seconds')} | {g('fastbp', 'warmup_seconds')} | "
              f"{g('fastbp', 'compile_seconds', 'float64')} | {g('torch', 'warmup_seconds')} | "
              f"{g('jax', 'warmup_seconds')} | {g('sklearn', 'warmup_seconds')} | "
              f"{DASH if sp is None else f'{100 * sp:.0f}%'} |")

    st = report.get("startup")
    print()
    if st is None:
        print("start-up: skipped" + (" (--quick)" if args.quick else " (--no-startup)"))
    elif "error" in st:
        print(f"start-up: error: {st['error']}")
    else:
        w, c = st["warm"], st["cold"]
        print(f"start-up, warm Numba cache (fresh process: import fastbp + Network + one epoch of tiny, median of "
              f"{len(st['warm_runs'])}): {w['wall']:.2f} s wall "
              f"[{'ok' if w['wall'] <= STARTUP_TARGET_WARM else 'OVER'} target {STARTUP_TARGET_WARM} s]; "
              f"in-script {w['script']:.2f} s = import {w['import']:.2f} + build {w['build']:.3f} "
              f"+ epoch {w['fit']:.2f}")
        print(f"first-ever compile (empty NUMBA_CACHE_DIR): {c['wall']:.1f} s wall "
              f"[{'ok' if c['wall'] <= STARTUP_TARGET_COLD else 'OVER'} target {STARTUP_TARGET_COLD:.0f} s]; "
              f"import {c['import']:.2f} + build {c['build']:.3f} + epoch with compile {c['fit']:.1f}")

    mem = [(n, results.get((n, "fastbp", "float32"))) for n in configs]
    mem = [(n, r) for n, r in mem if r and "memory" in r]
    if mem:
        print()
        print("memory, fastbp float32 worker (peak RSS = getrusage ru_maxrss; bound = baseline + data + "
              "4 x params + work buffers):")
        print("| config | peak RSS | bound | baseline (import+compile) | data (X, one-hot Y, perm) | 4 x params "
              "| work (batch x widths) |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for n, r in mem:
            mm = r["memory"]
            star = " (the target)" if n == MEMORY_CONFIG else ""
            print(f"| {n}{star} | {_mib(mm['peak_rss'])} | {_mib(mm['bound'])} | {_mib(mm['baseline_rss'])} | "
                  f"{_mib(mm['data_bytes'])} | {_mib(mm['params_bytes_x4'])} | {_mib(mm['work_bytes'])} |")

    ws = report.get("width_sweep")
    if ws:
        print()
        print(f"width sweep, 784-H-H-10, batch {ws['batch']}, float32, samples/s (plot: {args.plot}):")
        fws = list(ws["series"])
        print("| H | samples | " + " | ".join(fws) + " |")
        print("|---:|---:|" + "---:|" * len(fws))
        for i, h in enumerate(ws["widths"]):
            print(f"| {h} | {ws['samples'][i]:,} | "
                  + " | ".join(_fmt(ws["series"][f]["samples_per_second"][i]) for f in fws) + " |")
    _print_training(report.get("training"))
    _print_sweep(report.get("sweep"))
    print(f"\n(benchmark took {report['seconds']:.0f} s)")


def _load(r):
    """The larger of the other processes' CPU share before and during a worker (0 if unknown)."""
    return max([x for x in (r.get("busy_before"), r.get("foreign_load")) if x is not None] or [0.0])


def _load_note(r):
    load = _load(r)
    return f"  [other processes used {100 * load:.0f}% of the CPU]" if load > BUSY_WARN else ""


def _section_ran(r, title):
    """Whether an extra section has results to print; prints the blank line, or its error."""
    if not r:
        return False
    print()
    if "error" in r:
        print(f"{title}: error: {r['error']}")
        return False
    return True


def _print_training(t):
    if not _section_ran(t, "training extras"):
        return
    print(f"training extras, fastbp float32, {'-'.join(map(str, t['layers']))}, batch {t['batch']}, "
          f"{t['samples']:,} samples; wall time per epoch as the user sees it (shuffle, compiled epoch, "
          f"validation on {t['validation_samples']:,} rows, progress, callbacks), median of "
          f"{len(t['variants']['sgd']['epoch_seconds'])} interleaved rounds{_load_note(t)}:")
    print("| fit | seconds/epoch | samples/s | vs plain SGD |")
    print("|---|---:|---:|---:|")
    for k, v in t["variants"].items():
        print(f"| {k} | {v['median_seconds']:.3f} | {_fmt(v['samples_per_second'])} | "
              f"{100 * v['vs_sgd']:+.1f}% |")


def _print_sweep(w):
    if not _section_ran(w, "sweep"):
        return
    sw, ft = _median(w["sweep_seconds"]), _median(w["fit_seconds"])
    print(f"sweep: {w['trials']} trials (lr x momentum x seed) on digits, 64-32-10, batch 32, {w['epochs']} "
          f"epochs, validation on the last 20%; wall seconds, median of {len(w['sweep_seconds'])}"
          f"{_load_note(w)}:")
    print("| how | seconds | fastbp.sweep is faster by |")
    print("|---|---:|---:|")
    print(f"| fastbp.sweep (population training, local backend) | {sw:.2f} | – |")
    print(f"| Network.fit, one trial after another | {ft:.2f} | {ft / sw:.2f}× |")
    if "sklearn_seconds" in w:
        sk = w["sklearn_seconds"]
        print(f"| scikit-learn {w['sklearn_version']} GridSearchCV(MLPClassifier(solver='sgd'), n_jobs=2), once "
              f"| {sk:.2f} | {sk / sw:.2f}× |")
    b = w.get("best") or {}
    if b:
        print(f"best trial: {b.get('config')}  val_accuracy {b.get('val_accuracy')}")


# ----------------------------------------------------------------------------- the workers

def _emit(obj):
    print(MARK + json.dumps(obj), flush=True)


def _make_data(layers, n, seed):
    """X ~ N(0, 1) float32 (n, layers[0]) and int64 labels uniform in [0, layers[-1]), from ``seed``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, layers[0]), dtype=np.float32)
    y = rng.integers(0, layers[-1], n)
    return X, y


def _rss_now():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return _rss_peak()


def _rss_peak():
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _summary(times, samples, counted=None):
    """Median samples/s of a list of epoch times, and the spread (max - min) / median."""
    med = statistics.median(times)
    counted = samples if counted is None else counted
    return {"epoch_seconds": times, "median_seconds": med, "samples_per_second": counted / med,
            "spread": (max(times) - min(times)) / med if med > 0 else 0.0}


def _worker(spec):
    fw = spec["framework"]
    fn = {"fastbp": _work_fastbp, "torch": _work_torch, "jax": _work_jax, "sklearn": _work_sklearn,
          "matmul": _work_matmul, "fastbp-training": _work_training, "fastbp-sweep": _work_sweep}[fw]
    state = {}
    for job in spec["jobs"]:
        try:
            res = fn(job, spec, state)
        except Exception as e:  # noqa: BLE001 - reported to the parent, which shows it
            res = {"error": f"{type(e).__name__}: {e}"}
        _emit({**{k: job[k] for k in ("layers", "batch", "samples", "dtype") if k in job}, **res})
    return 0


def _work_fastbp(job, spec, state):
    layers, batch, n, dtype, repeats = job["layers"], job["batch"], job["samples"], job["dtype"], job["repeats"]
    t0 = time.perf_counter()
    import numpy as np

    import fastbp

    import_s = time.perf_counter() - t0

    def network():
        return fastbp.Network(layers, activation="relu", output="softmax", loss="cross_entropy", dtype=dtype,
                              seed=spec["seed"])

    # Compile (or load from the cache) on two batches, outside any timing.
    Xw, yw = _make_data(layers, min(n, 2 * batch), spec["seed"] + 1)
    t0 = time.perf_counter()
    network().fit(Xw.astype(dtype), yw, epochs=1, batch_size=batch, lr=spec["lr"], verbose=0)
    compile_s = time.perf_counter() - t0
    del Xw, yw
    baseline = _rss_now()

    X, y = _make_data(layers, n, spec["seed"])
    if dtype != "float32":
        X = X.astype(dtype)
    net = network()
    t0 = time.perf_counter()
    net.fit(X, y, epochs=1, batch_size=batch, lr=spec["lr"], shuffle=True, verbose=0)
    warm_s = time.perf_counter() - t0
    # The timed epochs: one fit of `repeats` epochs; History's per-epoch seconds time the compiled epoch
    # (the shuffle's permutation is drawn just before, in Python). `fit_overhead` is the rest of the call
    # (input checks, the one-hot targets, buffers), paid once per fit, not per epoch.
    t0 = time.perf_counter()
    hist = net.fit(X, y, epochs=repeats, batch_size=batch, lr=spec["lr"], shuffle=True, verbose=0)
    wall = time.perf_counter() - t0
    times = list(hist["seconds"])
    res = {"version": fastbp.__version__, "import_seconds": import_s, "compile_seconds": compile_s,
           "warmup_seconds": warm_s, "fit_wall_seconds": wall, "fit_overhead_seconds": wall - sum(times),
           "final_loss": hist["loss"][-1], **_summary(times, n)}
    if job.get("memory"):
        item = np.dtype(dtype).itemsize
        sizes = net.sizes
        cap = min(batch, n)
        data = X.nbytes + y.nbytes + n * sizes[-1] * item + n * 8  # X, labels, one-hot Y, permutation
        params4 = 4 * net.n_params * item  # params, grad, the epoch snapshot, slack for the optimizer state
        work = cap * (sizes[0] + 3 * sum(sizes[1:])) * item  # the batch rows, z, a and δ of every layer
        # ru_maxrss is the kernel's high-water mark, updated lazily: never quote less than the RSS now.
        res["memory"] = {"peak_rss": max(_rss_peak(), _rss_now()), "ru_maxrss": _rss_peak(),
                         "rss_end": _rss_now(), "baseline_rss": baseline, "data_bytes": data,
                         "params_bytes_x4": params4, "work_bytes": work,
                         "bound": baseline + data + params4 + work}
    return res


def _work_torch(job, spec, state):
    import torch

    if not state:
        torch.set_num_threads(2)
        state["ok"] = True
    layers, batch, n, repeats = job["layers"], job["batch"], job["samples"], job["repeats"]
    torch.manual_seed(spec["seed"])
    X, y = _make_data(layers, n, spec["seed"])
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    mods = []
    for i in range(len(layers) - 1):
        mods.append(torch.nn.Linear(layers[i], layers[i + 1]))
        if i < len(layers) - 2:
            mods.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*mods)
    crit = torch.nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=spec["lr"], momentum=0.0)
    gen = torch.Generator().manual_seed(spec["seed"])

    def epoch():
        perm = torch.randperm(n, generator=gen)
        for s in range(0, n, batch):
            idx = perm[s:s + batch]
            xb, yb = Xt.index_select(0, idx), yt.index_select(0, idx)
            opt.zero_grad(set_to_none=True)
            loss = crit(model(xb), yb)
            loss.backward()
            opt.step()
        return float(loss)

    t0 = time.perf_counter()
    epoch()
    warm = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        last = epoch()
        times.append(time.perf_counter() - t0)
    return {"version": torch.__version__, "threads": torch.get_num_threads(), "warmup_seconds": warm,
            "final_loss": last, **_summary(times, n)}


def _work_jax(job, spec, state):
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax import lax

    layers, batch, n, repeats = job["layers"], job["batch"], job["samples"], job["repeats"]
    lr = spec["lr"]
    X, y = _make_data(layers, n, spec["seed"])
    rng = np.random.default_rng(spec["seed"])
    params = []
    for a, b in itertools.pairwise(layers):
        lim = (6.0 / (a + b)) ** 0.5
        params.append((jnp.asarray(rng.uniform(-lim, lim, (b, a)).astype(np.float32)),
                       jnp.zeros(b, jnp.float32)))
    Xj, yj = jnp.asarray(X), jnp.asarray(y.astype(np.int32))
    nb, rem = divmod(n, batch)

    def loss_fn(p, xb, yb):
        a = xb
        for W, b in p[:-1]:
            a = jax.nn.relu(a @ W.T + b)
        W, b = p[-1]
        logp = jax.nn.log_softmax(a @ W.T + b)
        return -jnp.mean(jnp.take_along_axis(logp, yb[:, None], axis=1))

    def step(p, xy):
        loss, g = jax.value_and_grad(loss_fn)(p, *xy)
        return jax.tree_util.tree_map(lambda w, gw: w - lr * gw, p, g), loss

    def epoch(p, key, Xa, ya):
        # The whole epoch in one compiled call: shuffle the rows, shape them into batches, scan the steps.
        perm = jax.random.permutation(key, n)
        Xs, ys = jnp.take(Xa, perm, axis=0), jnp.take(ya, perm, axis=0)
        total = jnp.float32(0)
        if nb:
            p, losses = lax.scan(step, p, (Xs[:nb * batch].reshape(nb, batch, -1), ys[:nb * batch].reshape(nb, batch)))
            total = losses.sum() * batch
        if rem:
            p, l_ = step(p, (Xs[nb * batch:], ys[nb * batch:]))
            total = total + l_ * rem
        return p, total

    epoch_jit = jax.jit(epoch, donate_argnums=0)
    key = jax.random.PRNGKey(spec["seed"])
    t0 = time.perf_counter()
    params, loss = epoch_jit(params, jax.random.fold_in(key, 0), Xj, yj)
    jax.block_until_ready((params, loss))
    warm = time.perf_counter() - t0
    times = []
    for e in range(repeats):
        k = jax.random.fold_in(key, e + 1)
        t0 = time.perf_counter()
        params, loss = epoch_jit(params, k, Xj, yj)
        jax.block_until_ready((params, loss))
        times.append(time.perf_counter() - t0)
    return {"version": jax.__version__, "backend": jax.default_backend(), "warmup_seconds": warm,
            "final_loss": float(loss) / n, **_summary(times, n)}


def _work_sklearn(job, spec, state):
    import warnings

    import numpy as np
    import sklearn
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    layers, batch, n, repeats = job["layers"], job["batch"], job["samples"], job["repeats"]
    X, y = _make_data(layers, n, spec["seed"])
    clf = MLPClassifier(hidden_layer_sizes=tuple(layers[1:-1]), activation="relu", solver="sgd",
                        learning_rate="constant", learning_rate_init=spec["lr"], momentum=0.0,
                        nesterovs_momentum=False, alpha=0.0, batch_size=batch, max_iter=1, shuffle=True,
                        random_state=spec["seed"], tol=0.0, early_stopping=False)
    classes = np.arange(layers[-1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        clf.partial_fit(X, y, classes=classes)  # one epoch, with the initialisation
        warm = time.perf_counter() - t0
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            clf.partial_fit(X, y)
            times.append(time.perf_counter() - t0)
    return {"version": sklearn.__version__, "warmup_seconds": warm, "param_dtype": str(clf.coefs_[0].dtype),
            "final_loss": float(clf.loss_), **_summary(times, n)}


def _matmul_kernel(state):
    if "kernel" not in state:
        import numpy as np
        from numba import njit

        @njit
        def products(A, W, D, Z, G, E, n_batches):
            """Per batch and layer l: Z = A Wᵀ, G = Dᵀ A, and (l > 0) E = D W, through Numba's np.dot (BLAS)."""
            for _ in range(n_batches):
                for l in range(len(W)):
                    np.dot(A[l], W[l].T, Z[l])
                    np.dot(D[l].T, A[l], G[l])
                    if l > 0:
                        np.dot(D[l], W[l], E[l])

        state["kernel"] = products
    return state["kernel"]


def _work_matmul(job, spec, state):
    import numba
    import numpy as np
    import scipy

    layers, batch, n, dtype, repeats = job["layers"], job["batch"], job["samples"], job["dtype"], job["repeats"]
    rng = np.random.default_rng(spec["seed"])
    B = min(batch, n)
    pairs = list(itertools.pairwise(layers))
    # Tuples of same-typed arrays (one per layer): Numba indexes them in its loop.
    A = tuple(rng.standard_normal((B, a)).astype(dtype) for a, b in pairs)
    W = tuple(rng.standard_normal((b, a)).astype(dtype) for a, b in pairs)
    D = tuple(rng.standard_normal((B, b)).astype(dtype) for a, b in pairs)
    Z = tuple(np.empty((B, b), dtype) for a, b in pairs)
    G = tuple(np.empty((b, a), dtype) for a, b in pairs)
    E = tuple(np.empty((B, a), dtype) for a, b in pairs)
    products = _matmul_kernel(state)
    t0 = time.perf_counter()
    products(A, W, D, Z, G, E, 2)
    warm = time.perf_counter() - t0
    # Each batch costs the same, so time enough batches for ~0.3 s (at most an epoch's) and scale.
    n_epoch = max(1, n // B)
    t0 = time.perf_counter()
    products(A, W, D, Z, G, E, 2)
    per = max((time.perf_counter() - t0) / 2, 1e-7)
    count = max(1, min(n_epoch, int((0.05 if spec.get("quick") else 0.3) / per)))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        products(A, W, D, Z, G, E, count)
        times.append(time.perf_counter() - t0)
    macs = sum(B * a * b * (3 if l > 0 else 2) for l, (a, b) in enumerate(itertools.pairwise(layers)))
    res = _summary(times, n, counted=count * B)
    res.update({"version": f"numba {numba.__version__}, scipy {scipy.__version__}", "warmup_seconds": warm,
                "batches_timed": count, "gflops": 2 * macs * count / res["median_seconds"] / 1e9})
    return res


def _work_training(job, spec, state):
    """Per-epoch wall time of fit on mnist (784-256-128-10, batch 128) with each optimizer, with validation
    and with the progress bar: what a user pays per epoch, Python included."""
    import fastbp

    layers, batch, _ = CONFIGS["mnist"]
    n, rounds, lr = job["samples"], job["repeats"], spec["lr"]
    X, y = _make_data(layers, n, spec["seed"])
    Xv, yv = _make_data(layers, n // 10, spec["seed"] + 2)
    optimizers = {"sgd": lambda: fastbp.SGD(lr=lr), "adam": lambda: fastbp.Adam(lr=1e-3),
                  "adamw": lambda: fastbp.AdamW(lr=1e-3), "rmsprop": lambda: fastbp.RMSprop(lr=1e-3)}
    variants = {name: {"optimizer": name} for name in TRAINING_OPTIMIZERS}
    variants["sgd + progress bar"] = {"optimizer": "sgd", "verbose": 1}
    variants["sgd + validation (10%)"] = {"optimizer": "sgd", "validation": Xv}
    variants["sgd + validation (10%) + progress bar"] = {"optimizer": "sgd", "validation": Xv, "verbose": 1}

    class Clock:
        def __init__(self):
            self.t = []

        def on_epoch_end(self, net, epoch, logs):
            self.t.append(time.perf_counter())

    def fit(v, X_, y_, epochs):
        net = fastbp.Network(layers, activation="relu", output="softmax", loss="cross_entropy", seed=spec["seed"])
        clock = Clock()
        val = (Xv, yv) if "validation" in v else None
        net.fit(X_, y_, epochs=epochs, batch_size=batch, optimizer=optimizers[v["optimizer"]](),
                validation_data=val, verbose=v.get("verbose", 0), callbacks=[clock])
        return clock.t[-1] - clock.t[-2] if epochs > 1 else None

    for v in variants.values():  # compile and warm every path on two batches
        fit(v, X[: 2 * batch], y[: 2 * batch], 2)
    # Interleaved rounds, so that a slow spell of the machine hits every variant alike.
    times = {k: [] for k in variants}
    for _ in range(rounds):
        for k, v in variants.items():
            times[k].append(fit(v, X, y, 2))
    base = statistics.median(times["sgd"])
    out = {"layers": layers, "batch": batch, "samples": n, "validation_samples": len(Xv), "variants": {}}
    for k, ts in times.items():
        med = statistics.median(ts)
        out["variants"][k] = {"epoch_seconds": ts, "median_seconds": med, "samples_per_second": n / med,
                              "vs_sgd": med / base - 1.0}
    return out


def _work_sweep(job, spec, state):
    """The issue-7 comparison: a 48-trial grid (lr x momentum x seed) on digits, 64-32-10, batch 32, with a
    fixed 20% validation split, by fastbp.sweep, by Network.fit one trial after another, and by
    scikit-learn's GridSearchCV(MLPClassifier(solver="sgd"), n_jobs=2)."""
    import warnings

    import numpy as np

    import fastbp
    from fastbp.datasets import digits

    X, y = digits()
    epochs = job["epochs"]
    kw = {"layers": [32], "epochs": epochs, "batch_size": 32, "validation_split": 0.2}
    fastbp.sweep({"lr": [0.1]}, X, y, **{**kw, "epochs": 1})  # compile (or load) outside the timing
    fastbp.Network([64, 32, 10]).fit(X, y, epochs=1, batch_size=32, validation_split=0.2, verbose=0)
    grid = list(itertools.product(SWEEP_SPACE["lr"], SWEEP_SPACE["momentum"], SWEEP_SPACE["seed"]))
    t_sweep, t_fit = [], []
    for _ in range(job["repeats"]):  # interleaved, so that a slow spell hits both alike
        t0 = time.perf_counter()
        res = fastbp.sweep(SWEEP_SPACE, X, y, **kw)
        t_sweep.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for lr, m, s in grid:
            fastbp.Network([64, 32, 10], seed=s).fit(X, y, epochs=epochs, batch_size=32, validation_split=0.2,
                                                     optimizer=fastbp.SGD(lr=lr, momentum=m), verbose=0)
        t_fit.append(time.perf_counter() - t0)
    out = {"trials": len(res.trials), "epochs": epochs, "sweep_seconds": t_sweep, "fit_seconds": t_fit,
           "best": {"config": res.best["config"], "val_accuracy": res.best["final"].get("val_accuracy")}}
    if job.get("sklearn"):
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.model_selection import GridSearchCV
        from sklearn.neural_network import MLPClassifier

        cut = len(X) - round(0.2 * len(X))  # fastbp's validation_split: the last 20% of the rows
        clf = MLPClassifier(hidden_layer_sizes=(32,), solver="sgd", batch_size=32, max_iter=epochs, alpha=0.0,
                            nesterovs_momentum=False, learning_rate="constant", early_stopping=False, tol=0.0,
                            n_iter_no_change=epochs + 1, shuffle=True)
        gs = GridSearchCV(clf, {"learning_rate_init": SWEEP_SPACE["lr"], "momentum": SWEEP_SPACE["momentum"],
                                "random_state": SWEEP_SPACE["seed"]},
                          cv=[(np.arange(cut), np.arange(cut, len(X)))], n_jobs=2, refit=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            t0 = time.perf_counter()
            gs.fit(X, y)
            out["sklearn_seconds"] = time.perf_counter() - t0
        out["sklearn_version"] = __import__("sklearn").__version__
    return out


if __name__ == "__main__":
    sys.exit(main())

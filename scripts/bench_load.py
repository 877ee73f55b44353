#!/usr/bin/env python
"""Fits beside other work: the same fit in 1, 2 or 4 processes at once, in processes held to one thread, and
beside a busy Python loop; the slowest process's seconds per scenario.

    python scripts/bench_load.py                         # this interpreter's fastbp, 2 runs of every scenario
    python scripts/bench_load.py --python old=/path/to/other/venv/bin/python --python new=python3 --runs 2

Each worker process fits once to warm up (compilation, caches), reports ready, and times one more fit when
every worker of the scenario is ready. "small" is scikit-learn's digits with ``MLPClassifier()`` (200 epochs);
"large" is 784-256-128-10, Adam, batch 128, 2 epochs on 20,000 random rows. "four-one-thread" starts the four
processes with OMP_NUM_THREADS, NUMBA_NUM_THREADS, OPENBLAS_NUM_THREADS and MKL_NUM_THREADS at 1: each
process's fair share of two cores.
"""

import argparse
import json
import os
import subprocess
import sys
import time

ONE_THREAD = {"OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
SCENARIOS = {"alone": dict(n=1), "two": dict(n=2), "four": dict(n=4), "four-one-thread": dict(n=4, env=ONE_THREAD),
             "beside-busy": dict(n=1, busy=1)}


def worker(kind):
    import numpy as np

    if kind == "small":
        from sklearn.datasets import load_digits

        from fastbp import MLPClassifier

        X, y = load_digits(return_X_y=True)

        def fit():
            MLPClassifier(random_state=0).fit(X, y)
    else:
        import fastbp

        rng = np.random.default_rng(0)
        X = rng.standard_normal((20000, 784)).astype(np.float32)
        y = rng.integers(0, 10, 20000)

        def fit():
            fastbp.Network([784, 256, 128, 10], seed=0).fit(X, y, epochs=2, batch_size=128, optimizer="adam",
                                                             lr=1e-3, verbose=0)
    fit()
    print("ready", flush=True)
    sys.stdin.readline()
    t = time.perf_counter()
    fit()
    print(json.dumps(time.perf_counter() - t), flush=True)


def scenario(python, kind, n, env=None, busy=0):
    """The slowest of ``n`` workers fitting at once (``busy`` busy loops beside them)."""
    e = dict(os.environ, **(env or {}))
    e.pop("FASTBP_THREADS", None)
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    workers = [subprocess.Popen([python, __file__, "--worker", kind], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True, env=e) for _ in range(n)]
    try:
        for w in workers:
            if w.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a worker of {python} failed to start")
        time.sleep(0.3)
        for w in workers:
            w.stdin.write("go\n")
            w.stdin.flush()
        return max(json.loads(w.stdout.readline()) for w in workers)
    finally:
        for w in workers:
            w.wait()
        for loop in loops:
            loop.kill()
            loop.wait()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--python", action="append", metavar="NAME=PATH", help="an interpreter to time (repeatable)")
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args.worker)
    pythons = dict(v.split("=", 1) for v in args.python) if args.python else {"fastbp": sys.executable}
    for kind in ("small", "large"):
        results = {}
        for _ in range(args.runs):
            for name, python in pythons.items():
                for label, spec in SCENARIOS.items():
                    results.setdefault((name, label), []).append(scenario(python, kind, **spec))
        for (name, label), seconds in results.items():
            print(f"{kind:5} {name:10} {label:16} " + "  ".join(f"{s:.3f}" for s in seconds) + " s", flush=True)


if __name__ == "__main__":
    sys.exit(main())

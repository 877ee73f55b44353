#!/usr/bin/env python
"""Each framework's training speed as GFLOP/s and as a share of this machine's matrix-product peak.

    python scripts/roofline.py                                    # measure, then the newest report
    python scripts/roofline.py --json bench.json --peak 208       # a given peak, no measuring

The peak is measured per BLAS, each in a process of its own (two BLASes' thread
pools would fight over the cores): single-precision gemm of large square
matrices (4096) on all cores, through the engines fastbp's kernels call
(OpenBLAS through Numba's ``np.dot``, MKL through fastbp's compiled gemm), best of
``--rounds``. Beside it, each benchmark configuration's three products per
layer and batch alone (forward Z = A Wᵀ, weight gradient Dᵀ A, input gradient
D W except for the first layer) on that BLAS: the ceiling of an epoch that did
nothing else.

A sample of a configuration costs ``flops_per_sample`` floating-point operations
(2 per multiply-add): forward and weight gradient of every layer, input gradient
of every layer but the first. Samples/s times that is the GFLOP/s a framework
reaches, whatever it does besides the products (bias, activations, cost, update,
gathering the batch), which is why no framework reaches the peak.
"""

import argparse
import glob
import itertools
import json
import os
import subprocess
import sys
import time

from benchlib.configs import CONFIGS

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH_OUTPUT = os.path.join(HERE, os.pardir, "docs", "bench_output")
FRAMEWORKS = ("fastbp", "torch", "torch-compile", "jax", "sklearn", "matmul")
BLASES = ("openblas", "mkl")


def newest_report(folder=BENCH_OUTPUT):
    """The newest bench.py report (``--json``) in ``folder``, or None: reports there are named
    ``YYYY-MM-DD_<machine>_bench.json``, so the last in name order is the newest."""
    found = sorted(glob.glob(os.path.join(folder, "*_bench.json")))
    return found[-1] if found else None


def flops_per_sample(layers):
    """Floating-point operations of one sample's three products per layer (the first layer has no input
    gradient): 2 · (2 Σ n_l n_{l+1} + Σ_{l ≥ 1} n_l n_{l+1})."""
    pairs = [a * b for a, b in itertools.pairwise(layers)]
    return 2 * (2 * sum(pairs) + sum(pairs[1:]))


# ----------------------------------------------------------------------------- measuring (one BLAS per process)

def _measure(blas, rounds, size):
    """{"peak": GFLOP/s of a size³ gemm, "products": {config: GFLOP/s of its products alone}} on ``blas``."""
    import numba
    import numpy as np
    from numba import njit

    from fastbp._numba import mkl as _mkl
    from fastbp.engine.products import Blas, Mkl, matmul_nn, matmul_nt, matmul_tn

    threads = numba.get_num_threads()
    if blas == "mkl" and not _mkl.available():
        return None
    mm = Mkl(0, threads, 0) if blas == "mkl" else Blas(0)

    @njit
    def square(A, B, C, mm, reps):
        for _ in range(reps):
            matmul_nt(A, B, C, mm)

    @njit
    def products(A, W, D, Z, G, E, mm, reps):
        for _ in range(reps):
            for l in range(len(W)):
                matmul_nt(A[l], W[l], Z[l], mm)
                matmul_tn(D[l], A[l], G[l], mm)
                if l > 0:
                    matmul_nn(D[l], W[l], E[l], mm)

    def best(run, reps):
        run(1)
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            run(reps)
            times.append((time.perf_counter() - t0) / reps)
        return min(times)

    rng = np.random.default_rng(0)
    A, B = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
    C = np.empty((size, size), np.float32)
    out = {"threads": threads,
           "peak": 2 * size ** 3 / best(lambda r: square(A, B, C, mm, r), 2) / 1e9, "products": {}}
    for name, (layers, batch, _) in CONFIGS.items():
        pairs = list(itertools.pairwise(layers))
        arrays = [tuple(rng.standard_normal(s, dtype=np.float32) for s in shapes) for shapes in
                  (((batch, a) for a, b in pairs), ((b, a) for a, b in pairs), ((batch, b) for a, b in pairs))]
        outs = [tuple(np.empty(s, np.float32) for s in shapes) for shapes in
                (((batch, b) for a, b in pairs), ((b, a) for a, b in pairs), ((batch, a) for a, b in pairs))]
        per = best(lambda r: products(*arrays, *outs, mm, r), 1)
        reps = max(1, int(0.2 / per))
        seconds = best(lambda r: products(*arrays, *outs, mm, r), reps)
        out["products"][name] = flops_per_sample(layers) * batch / seconds / 1e9
    return out


def measure(rounds, size):
    """Per BLAS, ``_measure`` in a subprocess of its own."""
    res = {}
    for blas in BLASES:
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps([blas, rounds, size])]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            print(f"{blas}: failed: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
            continue
        got = json.loads(proc.stdout.strip().splitlines()[-1])
        if got is not None:
            res[blas] = got
    return res


# ----------------------------------------------------------------------------- the table

def best_results(report):
    """{(config, framework): best samples/s} of a bench.py JSON report's main float32 rows."""
    best = {}
    for r in report.get("results", []):
        if r.get("dtype", "float32") != "float32" or "samples_per_second" not in r:
            continue
        key = (r["config"], r["framework"])
        best[key] = max(best.get(key, 0.0), r["samples_per_second"])
    return best


def table(best, peak, measured):
    lines = [f"peak: {peak:.1f} GFLOP/s (the larger of the BLASes' square-gemm peaks); each framework's best "
             "float32 samples/s of the report times the FLOPs per sample, as GFLOP/s (% of the peak)", "",
             "| config | MFLOP/sample | " + " | ".join(FRAMEWORKS) + " | "
             + " | ".join(f"products alone, {b}" for b in measured) + " |",
             "|---|---:|" + "---:|" * (len(FRAMEWORKS) + len(measured))]
    for name, (layers, batch, _) in CONFIGS.items():
        f = flops_per_sample(layers)
        cells = []
        for fw in FRAMEWORKS:
            s = best.get((name, fw))
            cells.append("–" if s is None else f"{s * f / 1e9:.1f} ({100 * s * f / 1e9 / peak:.0f}%)")
        for b in measured:
            g = measured[b]["products"].get(name)
            cells.append("–" if g is None else f"{g:.1f} ({100 * g / peak:.0f}%)")
        lines.append(f"| {name} | {f / 1e6:.4g} | " + " | ".join(cells) + " |")
    return lines


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        print(json.dumps(_measure(*json.loads(argv[1]))))
        return 0
    p = argparse.ArgumentParser(prog="scripts/roofline.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--json", help="a bench.py --json report (default: the newest *_bench.json in docs/bench_output)")
    p.add_argument("--peak", type=float, help="the peak in GFLOP/s: skip measuring")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds per measurement, best kept (default 3)")
    p.add_argument("--size", type=int, default=4096, help="the square gemm's order (default 4096)")
    args = p.parse_args(argv)
    measured = {} if args.peak else measure(args.rounds, args.size)
    for b, m in measured.items():
        print(f"{b}: {m['peak']:.1f} GFLOP/s ({args.size}³ sgemm, {m['threads']} threads)")
    peak = args.peak or max((m["peak"] for m in measured.values()), default=None)
    if peak is None:
        print("scripts/roofline.py: error: no BLAS could be measured; give --peak", file=sys.stderr)
        return 2
    if args.json is None:
        args.json = newest_report()
        if args.json is None:
            print(f"scripts/roofline.py: error: --json: no *_bench.json in {os.path.normpath(BENCH_OUTPUT)}; give one",
                  file=sys.stderr)
            return 2
        print(f"report: {os.path.relpath(args.json)}", file=sys.stderr)
    try:
        with open(args.json) as f:
            report = json.load(f)
    except (OSError, ValueError) as e:
        print(f"scripts/roofline.py: error: --json {args.json}: {e}", file=sys.stderr)
        return 2
    print("\n".join(table(best_results(report), peak, measured)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

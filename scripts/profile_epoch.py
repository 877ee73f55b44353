#!/usr/bin/env python
"""Where the time of one training epoch goes: each phase of the batch loop timed alone.

Every phase runs in its own compiled loop over the same batches, with the same
buffers, engine and thread count as ``Network.fit``; the last row is the real
fused epoch (``_train_epoch``). The phases' sum exceeds the epoch a little when
the epoch overlaps them (caches stay warm from one phase to the next).

    python scripts/profile_epoch.py                        # the four benchmark configs
    python scripts/profile_epoch.py --config 784,512,10:64:20000 --optimizer adam
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np
from numba import njit

try:
    import fastbp
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
    import fastbp

from benchlib.configs import CONFIGS, parse_config
from fastbp.engine import plan
from fastbp.engine.kernels import _bias_grad, _block, _descend_layer, _loss_delta, _train_epoch, _weights
from fastbp.engine.policy import engine_for, force_engine
from fastbp.engine.products import Blas, Loops, Mkl, _blas_folds, matmul_nn, matmul_nt, matmul_tn
from fastbp.engine.update import _update
from fastbp.specs.activations import _act_backward, _activate
from fastbp.specs.optimizers import _plain_descent, _sgd_step

PHASES = ("gather rows (inputs and targets)", "forward products (A Wᵀ)", "bias + activation", "cost + output δ + accuracy",
          "weight-gradient products (δᵀ A)", "input-gradient products (δ W)", "bias gradient + f'(z)",
          "optimizer update")
# Where plain SGD runs inside the backward pass (BLAS), two phases are what the epoch does instead.
FOLDED = {PHASES[4]: "weight-gradient products with the descent folded in (W -= η δᵀ A)",
          PHASES[7]: "optimizer update (the biases' descent)"}


@njit(cache=False)
def _folds(rule, mm):
    return _blas_folds(mm) and _plain_descent(rule.opt_code, rule.hyper, 0.0)


@njit(cache=False)
def _phase(which, params, state, X, Y, perm, batch_size, net, work, rule):
    n = perm.shape[0]
    sizes, w_off, b_off, acts, act_p, mm = net.sizes, net.w_off, net.b_off, net.acts, net.act_p, net.mm
    cap, Zb, Ab, Db, grad = work.cap, work.Zb, work.Ab, work.Db, work.grad
    L = sizes.shape[0] - 1
    out = 0.0
    descend = _folds(rule, mm)
    for bi in range(n // batch_size):
        start = bi * batch_size
        rows = batch_size
        idx = perm[start : start + rows]
        A0 = work.Xb[:rows]
        Y0 = work.Yb[:rows]
        if which == 0:
            for i in range(rows):
                r = idx[i]
                for j in range(Y.shape[1]):
                    Y0[i, j] = Y[r, j]
                for j in range(sizes[0]):
                    A0[i, j] = X[r, j]
        elif which == 1:
            a = A0
            for l in range(L):
                matmul_nt(a, _weights(params, net, l), _block(Zb, sizes, l, cap, rows), mm)
                a = _block(Ab, sizes, l, cap, rows)
        elif which == 2:
            for l in range(L):
                _activate(_block(Zb, sizes, l, cap, rows), _block(Ab, sizes, l, cap, rows),
                          params[b_off[l] : b_off[l] + sizes[l + 1]], acts[l], act_p[l, 0], act_p[l, 1])
        elif which == 3:
            c, ok = _loss_delta(Y0, net, work, rows, 1.0 / rows, work.wb)
            out += c + ok
        elif which == 4:
            for l in range(L):
                a_prev = A0 if l == 0 else _block(Ab, sizes, l - 1, cap, rows)
                D = _block(Db, sizes, l, cap, rows)
                if descend:  # a step too small to change W (BLAS skips the product when the step is 0)
                    _descend_layer(D, a_prev, _weights(params, net, l), _weights(grad, net, l), 1e-30, mm)
                else:
                    matmul_tn(D, a_prev, _weights(grad, net, l), mm)
        elif which == 5:
            for l in range(1, L):
                matmul_nn(_block(Db, sizes, l, cap, rows), _weights(params, net, l),
                          _block(Db, sizes, l - 1, cap, rows), mm)
        elif which == 6:
            for l in range(L):
                _bias_grad(_block(Db, sizes, l, cap, rows), grad[b_off[l] : b_off[l] + sizes[l + 1]])
            for l in range(L - 1):  # in place, as in _backward (ReLU's 0/1 mask: repeating it changes nothing)
                _act_backward(_block(Db, sizes, l, cap, rows), _block(Zb, sizes, l, cap, rows),
                              _block(Ab, sizes, l, cap, rows), acts[l], act_p[l, 0], act_p[l, 1])
        elif descend:
            for l in range(L):
                _sgd_step(params[b_off[l] : b_off[l] + sizes[l + 1]], grad[b_off[l] : b_off[l] + sizes[l + 1]],
                          rule.lr * 0.0)
        else:
            _update(params, grad, state, rule.opt_code, rule.hyper, rule.lr * 0.0, bi + 1, 0.0, mm)
    return out


def profile(sizes, batch, samples, optimizer="sgd", dtype="float32", repeats=5, seed=0, engine="auto"):
    """Per-batch microseconds of each phase and of the real epoch, for one configuration.

    ``engine`` "loops", "openblas" or "mkl" overrides the network's choice, to see what another engine would cost.
    """
    rng = np.random.default_rng(seed)
    samples -= samples % batch
    X = rng.standard_normal((samples, sizes[0])).astype(dtype)
    y = rng.integers(0, sizes[-1], samples)
    net = fastbp.Network(sizes, activation="relu", output="softmax", loss="cross_entropy", dtype=dtype, seed=seed)
    opt = {"sgd": fastbp.SGD(lr=0.01), "adam": fastbp.Adam(lr=1e-3)}[optimizer]
    net.fit(X[: 2 * batch], y[: 2 * batch], epochs=1, batch_size=batch, optimizer=opt, verbose=0)  # compile
    X, Y = net.check_data(X, y)
    work = plan.work(net.layout.sizes, net.n_params, net.dtype, batch, batch=True, grad=True)
    state = net.state.slots
    if engine == "auto":
        mm = engine_for(net.layout.sizes, batch, net.n_params)
    else:
        with force_engine(engine):
            mm = engine_for(net.layout.sizes, batch, net.n_params)
    kernel_net = net.kernel_net(mm)
    perm = rng.permutation(samples).astype(np.int64)
    rule = plan.rule(opt, fastbp.Constant(), None, 1)._replace(lr=1e-9)

    def epoch():
        _train_epoch(net.params, state, X, Y, X[:0, 0].astype(np.float64), perm, batch, 0, 0, kernel_net, work, rule)

    epoch()  # fills the buffers with the values a real epoch leaves there
    times = {k: [] for k in (*PHASES, "the fused epoch")}
    for _ in range(repeats):  # interleaved, so a slow spell hits every phase alike
        for k, name in enumerate(PHASES):
            t0 = time.perf_counter()
            _phase(k, net.params, state, X, Y, perm, batch, kernel_net, work, rule)
            times[name].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        epoch()
        times["the fused epoch"].append(time.perf_counter() - t0)
    n_batches = samples // batch
    us = {k: 1e6 * statistics.median(v) / n_batches for k, v in times.items()}
    threads = mm.threads if isinstance(mm, Loops) else 1
    if _folds(rule, mm):
        us = {FOLDED.get(k, k): v for k, v in us.items()}
    return us, {"engine": "OpenBLAS (its own threads)" if isinstance(mm, Blas) else
                f"MKL on {mm.threads} thread(s)" if isinstance(mm, Mkl) else
                f"compiled loops on {threads} thread(s)",
                "batches": n_batches}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", help=f"comma-separated, from {', '.join(CONFIGS)} "
                                  "(default: all of them, or none when --config is given)")
    p.add_argument("--config", action="append", type=parse_config, default=[], metavar="SIZES:BATCH:SAMPLES",
                   help="an extra configuration such as 784,512,10:64:20000 (repeatable)")
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--engine", choices=("auto", "loops", "openblas", "mkl"), default="auto",
                   help="the products' engine: the network's own choice (default), or forced")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per phase, median quoted (default 5)")
    p.add_argument("--samples", type=int, help="cap the samples per configuration (a quicker run)")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error(f"--repeats: expected an integer >= 1, got {args.repeats}")
    if args.only is None:  # all built-in configurations, unless --config names others
        names = [] if args.config else list(CONFIGS)
    else:
        names = [s.strip() for s in args.only.split(",") if s.strip() and s.strip() != "none"]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        p.error(f"--only: unknown configuration {unknown[0]!r}; expected some of {list(CONFIGS)}")
    configs = {n: CONFIGS[n] for n in names} | dict(args.config)
    for name, (sizes, batch, samples) in configs.items():
        if args.samples:
            samples = max(batch, min(samples, args.samples))
        us, info = profile(sizes, batch, samples, args.optimizer, args.dtype, args.repeats, engine=args.engine)
        total = us["the fused epoch"]
        print(f"\n{name}: {'-'.join(map(str, sizes))}, batch {batch}, {args.dtype}, {args.optimizer}, "
              f"{info['engine']}, {info['batches']} batches")
        print("| phase | µs per batch | share of the epoch |")
        print("|---|---:|---:|")
        for k, v in us.items():
            print(f"| {k} | {v:,.1f} | {100 * v / total:.0f}% |")
        print(f"| (sum of the phases) | {sum(v for k, v in us.items() if k != 'the fused epoch'):,.1f} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

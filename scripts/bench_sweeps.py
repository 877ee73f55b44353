#!/usr/bin/env python
"""Time pruned, cross-validated and plain sweeps on digits against their targets.

    python scripts/bench_sweeps.py [--repeats 3] [--only halving,cv,grid] [--no-sklearn] [--json out.json]

(a) halving: an 81-trial random search (lr log-uniform in [1e-3, 1], momentum uniform in
    [0, 0.95], seed) for 27 epochs, with prune=Halving() (factor 2, rungs 4, 8, 16) and
    Halving(factor=3) (rungs 4, 12) against the same search run in full, for --search-seeds searches:
    the best val_accuracy of each and the time ratio (target: within 1 point, at most 0.4x
    the time).
(b) cv: the 48-trial grid (lr x momentum x seed, 20 epochs) with cv=5 against its 240 fits
    one after another (target >= 1.8x) and scikit-learn's GridSearchCV(cv=5) on the same grid
    and folds (target >= 15x).
(c) grid: the plain 48-trial grid (validation on the last 20%) against its 48 fits one after
    another (target >= 1.8x).

Every network is 64-32-10, batch 32, plain SGD (with momentum), float32. Times are wall
seconds, the median of --repeats interleaved repeats (so that a slow spell of the machine
hits every variant alike), each after a rest of REST seconds (so that no variant inherits
the previous one's spinning BLAS threads); scikit-learn runs once. Compilation happens
before any timing.
"""

import argparse
import itertools
import json
import platform
import statistics
import sys
import time
import warnings

import numpy as np

import fastbp
from fastbp.datasets import digits

# The grid of the benchmark harness's sweep section (docs/sweeps.md, "Speed").
GRID = {"lr": [0.01, 0.03, 0.1, 0.3], "momentum": [0.0, 0.5, 0.9], "seed": [0, 1, 2, 3]}
GRID_EPOCHS = 20
RANDOM = {"lr": fastbp.loguniform(1e-3, 1.0), "momentum": fastbp.uniform(0.0, 0.95),
          "seed": fastbp.choice(list(range(1000)))}
RANDOM_TRIALS, RANDOM_EPOCHS = 81, 27
NET = {"layers": [32], "batch_size": 32}
SECTIONS = ("halving", "cv", "grid")


# Seconds of rest before each timing: OpenBLAS's worker threads keep spinning for a while after their
# last threaded product (fit's validation passes are large enough to use them), and a population that
# starts meanwhile loses one of the cores to them (measured: the 48-trial grid's sweep 0.27 s right after
# the fits, 0.22-0.24 s after a pause of 1 s or after another sweep). Each variant starts on idle cores.
REST = 1.0


def _timed(f):
    time.sleep(REST)
    t0 = time.perf_counter()
    out = f()
    return time.perf_counter() - t0, out


def _fit(X, y, lr, momentum, seed, epochs, **kw):
    net = fastbp.Network([64, *NET["layers"], 10], seed=seed)
    net.fit(X, y, epochs=epochs, batch_size=NET["batch_size"], optimizer=fastbp.SGD(lr=lr, momentum=momentum),
            verbose=0, **kw)
    return net


def _grid_fits(X, y, epochs, folds):
    for lr, m, s in itertools.product(GRID["lr"], GRID["momentum"], GRID["seed"]):
        if folds is None:
            _fit(X, y, lr, m, s, epochs, validation_split=0.2)
        else:
            for f in folds:
                rest = np.setdiff1d(np.arange(len(X)), f)
                _fit(X[rest], y[rest], lr, m, s, epochs, validation_data=(X[f], y[f]))


def _sklearn_cv(X, y, epochs, folds):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import GridSearchCV
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(hidden_layer_sizes=tuple(NET["layers"]), solver="sgd", batch_size=NET["batch_size"],
                        max_iter=epochs, alpha=0.0, nesterovs_momentum=False, learning_rate="constant",
                        early_stopping=False, tol=0.0, n_iter_no_change=epochs + 1, shuffle=True)
    everything = np.arange(len(X))
    gs = GridSearchCV(clf, {"learning_rate_init": GRID["lr"], "momentum": GRID["momentum"],
                            "random_state": GRID["seed"]},
                      cv=[(np.setdiff1d(everything, f), f) for f in folds], n_jobs=2, refit=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        seconds, _ = _timed(lambda: gs.fit(X, y))
    return seconds, __import__("sklearn").__version__


def main(argv=None):
    global REST
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats per timing (median)")
    p.add_argument("--only", default=",".join(SECTIONS), help=f"sections, comma-separated: {', '.join(SECTIONS)}")
    p.add_argument("--search-seeds", type=int, default=3, help="random searches (seeds 0..N-1) for the halving section")
    p.add_argument("--no-sklearn", dest="sklearn", action="store_false", help="skip scikit-learn's GridSearchCV")
    p.add_argument("--quick", action="store_true", help="2 epochs (3 for halving): a smoke run, not a measurement")
    p.add_argument("--json", help="also write the figures to this JSON file")
    p.add_argument("--rest", type=float, default=REST, help=f"seconds of rest before each timing (default {REST})")
    args = p.parse_args(argv)
    REST = args.rest
    only = [s for s in args.only.split(",") if s]
    for s in only:
        if s not in SECTIONS:
            p.error(f"--only: unknown section {s!r}; expected some of {', '.join(SECTIONS)}")
    if args.repeats < 1:
        p.error(f"--repeats: expected an integer >= 1, got {args.repeats}")
    if args.search_seeds < 1:
        p.error(f"--search-seeds: expected an integer >= 1, got {args.search_seeds}")
    grid_epochs = 2 if args.quick else GRID_EPOCHS
    random_epochs = 3 if args.quick else RANDOM_EPOCHS

    X, y = digits()
    folds = np.array_split(np.arange(len(X)), 5)
    # Compile (or load from the cache) every kernel signature outside the timings.
    fastbp.sweep({"lr": [0.1]}, X, y, epochs=1, validation_split=0.2, **NET)
    fastbp.sweep({"lr": [0.1]}, X, y, epochs=1, cv=2, **NET)
    _fit(X, y, 0.1, 0.0, 0, 1, validation_split=0.2)
    report = {"machine": {"processor": platform.processor() or platform.machine(), "python": platform.python_version(),
                          "fastbp": fastbp.__version__ if hasattr(fastbp, "__version__") else None},
              "repeats": args.repeats}

    if "halving" in only:
        # One search's best is one draw: the searches of several seeds show how often halving misses it.
        variants = {"full": None, "Halving()": fastbp.Halving(), "Halving(factor=3)": fastbp.Halving(factor=3)}
        runs = {name: [] for name in variants}
        for search_seed in range(args.search_seeds):
            kw = dict(method="random", trials=RANDOM_TRIALS, seed=search_seed, epochs=random_epochs,
                      validation_split=0.2, **NET)
            times, best = {name: [] for name in variants}, {}
            for _ in range(args.repeats):
                for name, prune in variants.items():
                    t, res = _timed(lambda: fastbp.sweep(RANDOM, X, y, prune=prune, **kw))
                    times[name].append(t)
                    best[name] = res.best["final"]["val_accuracy"]  # deterministic: every repeat's is the same
            for name in variants:
                runs[name].append({"seed": search_seed, "seconds": times[name], "best_val_accuracy": best[name]})
        report["halving"] = {"trials": RANDOM_TRIALS, "epochs": random_epochs, "runs": runs}
        full_t = sum(statistics.median(r["seconds"]) for r in runs["full"])
        for name in list(variants)[1:]:
            gaps = [100 * (f["best_val_accuracy"] - r["best_val_accuracy"]) for f, r in zip(runs["full"], runs[name])]
            ratio = sum(statistics.median(r["seconds"]) for r in runs[name]) / full_t
            report["halving"][name] = {"gap_points": gaps, "time_ratio": ratio}
            print(f"(a) {RANDOM_TRIALS}-trial random search, {random_epochs} epochs, {args.search_seeds} search seeds: "
                  f"prune={name} is {ratio:.2f}x the full search's time (target <= 0.4x); its best val_accuracy is "
                  f"{', '.join(f'{g:+.2f}' for g in gaps)} points below the full search's (target: within 1)")

    if "cv" in only:
        t_sweep, t_fit = [], []
        for _ in range(args.repeats):
            t, res = _timed(lambda: fastbp.sweep(GRID, X, y, epochs=grid_epochs, cv=5, **NET))
            t_sweep.append(t)
            t_fit.append(_timed(lambda: _grid_fits(X, y, grid_epochs, folds))[0])
        s, f = statistics.median(t_sweep), statistics.median(t_fit)
        report["cv"] = {"trials": len(res), "folds": 5, "epochs": grid_epochs, "sweep_seconds": t_sweep,
                        "fit_seconds": t_fit, "vs_fits": f / s}
        line = (f"(b) 48-trial grid, cv=5, {grid_epochs} epochs: sweep {s:.2f} s; 240 fits one after another "
                f"{f:.2f} s ({f / s:.2f}x, target >= 1.8x)")
        if args.sklearn:
            sk, version = _sklearn_cv(X, y, grid_epochs, folds)
            report["cv"].update(sklearn_seconds=sk, sklearn_version=version, vs_sklearn=sk / s)
            line += f"; scikit-learn {version} GridSearchCV(cv=5, n_jobs=2) {sk:.2f} s ({sk / s:.1f}x, target >= 15x)"
        print(line)

    if "grid" in only:
        t_sweep, t_fit = [], []
        for _ in range(args.repeats):
            t_sweep.append(_timed(lambda: fastbp.sweep(GRID, X, y, epochs=grid_epochs, validation_split=0.2,
                                                       **NET))[0])
            t_fit.append(_timed(lambda: _grid_fits(X, y, grid_epochs, None))[0])
        s, f = statistics.median(t_sweep), statistics.median(t_fit)
        report["grid"] = {"trials": 48, "epochs": grid_epochs, "sweep_seconds": t_sweep, "fit_seconds": t_fit,
                          "vs_fits": f / s}
        print(f"(c) 48-trial grid, {grid_epochs} epochs: sweep {s:.2f} s; 48 fits one after another {f:.2f} s "
              f"({f / s:.2f}x, target >= 1.8x)")

    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""fastbp.MLPClassifier / MLPRegressor against scikit-learn's, with the import swapped and nothing else.

For each problem: scikit-learn's estimator and fastbp's with the same arguments (defaults,
``max_iter=500``, ``random_state=0`` on the small data sets), trained on 75 % of the rows and
scored on the rest; the time is fit + score. On the small data sets: the best time of ``--repeats`` fits.
On the MNIST-sized problem one random_state's test accuracy is mostly seed noise (scikit-learn's sd over
random_state 0-3 is ~3 points), so both are fitted with random_state 0, 1 and 2: the score is the mean test
accuracy over the three, the time the median. Prints a Markdown table (docs/sklearn.md).

    python scripts/bench_sklearn.py            # all problems
    python scripts/bench_sklearn.py --quick    # the small data sets only
"""

import argparse
import sys
import time
import warnings

import numpy as np
from sklearn import datasets, neural_network
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import fastbp


def _mnist_like(n=26_667, d=784, k=10, seed=0):
    """Random data of MNIST's shape with a learnable rule (a random two-layer teacher): 20,000 rows to train on."""
    rng = np.random.default_rng(seed)
    X = rng.random((n, d))
    H = np.tanh((X - 0.5) @ rng.normal(scale=0.1, size=(d, 64)))
    y = np.argmax(H @ rng.normal(size=(64, k)), axis=1)
    return X, y


def problems(quick):
    wine = datasets.load_wine(return_X_y=True)
    cancer = datasets.load_breast_cancer(return_X_y=True)
    diabetes = datasets.load_diabetes(return_X_y=True)
    digits = datasets.load_digits(return_X_y=True)
    small = dict(max_iter=500, random_state=0)
    if not quick:
        yield ("random 784 × 20,000, (256, 128), 10 epochs; mean of random_state 0-2", "MLPClassifier",
               _mnist_like(), False, dict(hidden_layer_sizes=(256, 128), max_iter=10, random_state=(0, 1, 2)))
    yield "wine", "MLPClassifier", wine, False, small
    yield "breast cancer (standardised)", "MLPClassifier", cancer, True, small
    yield "diabetes", "MLPRegressor", diabetes, False, small
    yield "digits", "MLPClassifier", digits, False, small

def run(make, X_tr, y_tr, X_te, y_te):
    t0 = time.perf_counter()
    est = make().fit(X_tr, y_tr)
    score = est.score(X_te, y_te)
    return time.perf_counter() - t0, score, est.n_iter_


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the small data sets only")
    ap.add_argument("--repeats", type=int, default=3, help="fits per estimator on the small data sets (best time)")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore", ConvergenceWarning)
    # Every scikit-learn fit runs before fastbp's first, the MNIST-sized one first of all: its fit took 4.5 s in a
    # fresh process and 5.6-7.4 s after other fits in the same process (scikit-learn's small ones, or fastbp's
    # with OpenBLAS held to one thread during fit), its multi-threaded products slower, which would flatter fastbp.
    cases = []
    for name, cls, (X, y), standardise, kw in problems(args.quick):
        X_tr, X_te, y_tr, y_te = train_test_split(X, y, random_state=0)
        if standardise:
            sc = StandardScaler().fit(X_tr)
            X_tr, X_te = sc.transform(X_tr), sc.transform(X_te)
        cases.append((name, cls, (X_tr, X_te, y_tr, y_te), kw))
    res = {}
    for who, mod in (("sk", neural_network), ("fb", fastbp)):
        for name, cls, (X_tr, X_te, y_tr, y_te), kw in cases:
            seeds = kw["random_state"] if isinstance(kw["random_state"], tuple) else None
            if who == "fb":
                # fastbp's first fit and score compile (or load the cache): warm them up on the same problem
                # (its batches of 200 rows and the score's rows, so the same compiled kernels).
                warm = getattr(fastbp, cls)(**{**kw, "max_iter": 1, "random_state": 0}).fit(X_tr[:400], y_tr[:400])
                warm.score(X_te, y_te)
            make = getattr(mod, cls)
            if seeds is None:
                res[who, name] = min(run(lambda: make(**kw), X_tr, y_tr, X_te, y_te) for _ in range(args.repeats))
            else:
                runs = [run(lambda: make(**{**kw, "random_state": s}), X_tr, y_tr, X_te, y_te) for s in seeds]
                times, scores, epochs = zip(*runs)
                print(f"  {name}, {who}: times {', '.join(f'{t:.3f}' for t in times)} s, scores "
                      f"{', '.join(f'{v:.4f}' for v in scores)}", file=sys.stderr)
                res[who, name] = (float(np.median(times)), float(np.mean(scores)), epochs[0])
    print("| problem | scikit-learn s | fastbp s | speed-up | scikit-learn score | fastbp score | epochs (sk / fastbp) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, *_ in cases:
        (ts, ss, es), (tf, sf, ef) = res["sk", name], res["fb", name]
        print(f"| {name} | {ts:.3f} | {tf:.3f} | {ts / tf:.1f}× | {ss:.4f} | {sf:.4f} | {es} / {ef} |", flush=True)

if __name__ == "__main__":
    main()

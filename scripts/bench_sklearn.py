"""fastbp.MLPClassifier / MLPRegressor against scikit-learn's, with the import swapped and nothing else.

For each problem: scikit-learn's estimator and fastbp's with the same arguments (defaults,
``max_iter=500``, ``random_state=0`` on the small data sets), trained on 75 % of the rows and
scored on the rest; the time is fit + score. Prints a Markdown table (docs/sklearn.md).

    python scripts/bench_sklearn.py            # all problems
    python scripts/bench_sklearn.py --quick    # the small data sets only
"""

import argparse
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
    yield "wine", "MLPClassifier", wine, False, small
    yield "breast cancer (standardised)", "MLPClassifier", cancer, True, small
    yield "diabetes", "MLPRegressor", diabetes, False, small
    yield "digits", "MLPClassifier", digits, False, small
    if not quick:
        yield ("random 784 × 20,000, (256, 128), 10 epochs", "MLPClassifier", _mnist_like(), False,
               dict(hidden_layer_sizes=(256, 128), max_iter=10, random_state=0))


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
    print("| problem | scikit-learn s | fastbp s | speed-up | scikit-learn score | fastbp score | epochs (sk / fastbp) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, cls, (X, y), standardise, kw in problems(args.quick):
        X_tr, X_te, y_tr, y_te = train_test_split(X, y, random_state=0)
        if standardise:
            sc = StandardScaler().fit(X_tr)
            X_tr, X_te = sc.transform(X_tr), sc.transform(X_te)
        repeats = args.repeats if X.shape[0] < 5000 else 1
        # fastbp's first fit compiles (or loads the cache): warm it up on the same problem.
        getattr(fastbp, cls)(**{**kw, "max_iter": 1}).fit(X_tr[:50], y_tr[:50])
        res = {}
        for who, mod in (("sk", neural_network), ("fb", fastbp)):
            runs = [run(lambda: getattr(mod, cls)(**kw), X_tr, y_tr, X_te, y_te) for _ in range(repeats)]
            res[who] = min(runs)
        (ts, ss, es), (tf, sf, ef) = res["sk"], res["fb"]
        print(f"| {name} | {ts:.3f} | {tf:.3f} | {ts / tf:.1f}× | {ss:.4f} | {sf:.4f} | {es} / {ef} |", flush=True)


if __name__ == "__main__":
    main()

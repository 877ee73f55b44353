"""Data helpers: seeded splits and label encoding."""

import numpy as np

from . import checks

__all__ = ["train_test_split", "one_hot"]


def train_test_split(X, y, test_size=0.2, seed=0):
    """Shuffle the rows with ``seed`` and split them: (X_train, X_test, y_train, y_test).

    ``test_size`` is a fraction in (0, 1) or a number of rows.
    """
    X = np.asarray(X)
    y = np.asarray(y)
    n = X.shape[0]
    if y.shape[0] != n:
        raise ValueError(f"y: expected {n} rows (as many as X), got {y.shape[0]}")
    if isinstance(test_size, float):
        if not 0.0 < test_size < 1.0:
            raise ValueError(f"test_size: expected a fraction in (0, 1) or a row count, got {test_size}")
        n_test = int(round(n * test_size))
    else:
        n_test = checks.check_int(test_size, "test_size", minimum=1)
    if not 1 <= n_test < n:
        raise ValueError(f"test_size: leaves {n - n_test} of {n} rows for training; expected at least 1 in each part")
    perm = np.random.default_rng(seed).permutation(n)
    test, train = perm[:n_test], perm[n_test:]
    return X[train], X[test], y[train], y[test]


def one_hot(labels, n_classes=None, dtype=np.float32):
    """Integer labels (n,) → one-hot rows (n, n_classes)."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ValueError(f"labels: expected a 1-D array of integer labels, got dtype {labels.dtype}, shape {labels.shape}")
    if labels.size and labels.min() < 0:
        raise ValueError(f"labels: expected labels >= 0, got {labels.min()}")
    k = int(labels.max()) + 1 if n_classes is None else checks.check_int(n_classes, "n_classes", minimum=1)
    if labels.size and labels.max() >= k:
        raise ValueError(f"labels: expected labels < n_classes={k}, got {labels.max()}")
    out = np.zeros((labels.shape[0], k), dtype=dtype)
    out[np.arange(labels.shape[0]), labels] = 1
    return out

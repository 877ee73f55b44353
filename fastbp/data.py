"""Data in: IDX (MNIST, Fashion-MNIST), .npz, .csv and the bundled digits; splits, scaling, labels.

Every loader returns a :class:`Dataset` (train arrays, and test arrays when the
source has them), holds one copy of the data, and reports corrupt input as a
ValueError that names the file and what is wrong with it.
"""

import csv
import gzip
import math
import os
import zipfile
from typing import NamedTuple, Optional

import numpy as np

from . import checks, io

__all__ = ["Dataset", "load", "load_idx", "train_test_split", "one_hot", "standardize"]


class Dataset(NamedTuple):
    """Train inputs and targets, and the test split when the source has one (else None)."""

    X: np.ndarray
    y: np.ndarray
    X_test: Optional[np.ndarray] = None
    y_test: Optional[np.ndarray] = None


# ----------------------------------------------------------------------------- IDX

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def _read_bytes(path):
    try:
        if str(path).endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        with open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        if isinstance(e, FileNotFoundError):
            raise FileNotFoundError(f"data: no such file: {str(path)!r}") from None
        raise ValueError(f"data: cannot read {str(path)!r}: {e}") from None


def load_idx(path):
    """The array stored in one IDX file (plain or .gz), with its header's shape and type."""
    raw = _read_bytes(path)
    name = str(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"data: {name!r} is not an IDX file (bad magic number {raw[:4].hex() or 'none'})")
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise ValueError(f"data: {name!r} has a truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    count = math.prod(shape)  # Python ints: a header of huge dimensions cannot wrap around
    if len(raw) - header != count * dtype.itemsize:
        raise ValueError(
            f"data: {name!r} is truncated or padded: the header says {shape} values "
            f"({count * dtype.itemsize} bytes), the file holds {len(raw) - header} bytes after it"
        )
    return np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(shape)


_IDX_NAMES = {
    "X": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "y": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "X_test": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "y_test": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


def _find_idx(folder, key):
    for stem in _IDX_NAMES[key]:
        for suffix in ("", ".gz"):
            p = os.path.join(folder, stem + suffix)
            if os.path.exists(p):
                return p
    return None


def _images(path):
    a = load_idx(path)
    if a.ndim < 2:
        raise ValueError(f"data: {path!r} holds {a.ndim}-D data, expected images (n, rows, cols)")
    if a.shape[0] == 0 or a[0].size == 0:
        raise ValueError(f"data: {path!r} holds {a.shape[0]} images of shape {a.shape[1:]}; "
                         "expected at least one image of at least one pixel")
    flat = a.reshape(a.shape[0], -1)
    if a.dtype == np.uint8:
        return flat.astype(np.float32) / np.float32(255.0)  # the one float copy
    return flat.astype(np.float32)


def _labels(path, n_images, images_path):
    lab = load_idx(path)
    if lab.ndim != 1:
        raise ValueError(f"data: {path!r} holds data of shape {lab.shape}, expected labels (n,)")
    if lab.shape[0] != n_images:
        raise ValueError(
            f"data: {path!r} has {lab.shape[0]} labels but {images_path!r} has {n_images} images"
        )
    return _integer_labels(lab, path)


def _integer_labels(lab, path):
    """Labels as int64 when every one is a whole number that int64 holds exactly; else a ValueError naming path."""
    if lab.dtype.kind in "iub":
        return lab.astype(np.int64)
    with np.errstate(invalid="ignore"):
        bad = ~(np.isfinite(lab) & (lab == np.round(lab)) & (np.abs(lab) < 2.0**53))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"data: {path!r} holds label {lab[i]} at index {i}; expected whole numbers (class indices)")
    return lab.astype(np.int64)


def _load_idx_dir(folder):
    found = {k: _find_idx(folder, k) for k in _IDX_NAMES}
    if found["X"] is None or found["y"] is None:
        raise ValueError(
            f"data: {folder!r} has no MNIST-style IDX files; expected train-images-idx3-ubyte[.gz] and "
            "train-labels-idx1-ubyte[.gz] (or train-images.idx3-ubyte, ...), with t10k-* for the test split"
        )
    X = _images(found["X"])
    y = _labels(found["y"], X.shape[0], found["X"])
    X_test = y_test = None
    if found["X_test"] is not None and found["y_test"] is not None:
        X_test = _images(found["X_test"])
        y_test = _labels(found["y_test"], X_test.shape[0], found["X_test"])
    return Dataset(X, y, X_test, y_test)


# ----------------------------------------------------------------------------- npz, csv

def _load_npz(path):
    arrays = io.read_npz(path, "data")
    keys = set(arrays)
    if {"X", "y"} <= keys:
        return Dataset(arrays["X"], arrays["y"])
    if {"x_train", "y_train"} <= keys:
        has_test = {"x_test", "y_test"} <= keys
        return Dataset(arrays["x_train"], arrays["y_train"], arrays["x_test"] if has_test else None,
                       arrays["y_test"] if has_test else None)
    raise ValueError(f"data: {path!r} has arrays {sorted(keys)}; expected 'X' and 'y', or 'x_train' and 'y_train'")


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def _load_csv(path, target=None):
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: a byte-order mark is not a header
            reader = csv.reader(f)
            rows = list(reader)
    except UnicodeDecodeError as e:
        raise ValueError(f"data: {path!r} is not a UTF-8 text CSV file: {e}") from None
    except csv.Error as e:
        raise ValueError(f"data: {path!r} line {reader.line_num}: {e}") from None
    rows = [r for r in rows if r and any(c.strip() for c in r)]
    if not rows:
        raise ValueError(f"data: {path!r} is empty")
    header = None
    if not all(_is_number(c) for c in rows[0]):
        header = [c.strip() for c in rows[0]]
        rows = rows[1:]
    if not rows:
        raise ValueError(f"data: {path!r} has a header but no data rows")
    width = len(rows[0])
    if width < 2:
        raise ValueError(f"data: {path!r} has {width} column; expected features and a label")
    if target is None:
        col = width - 1
    elif header is not None and target in header:
        col = header.index(target)
    else:
        raise ValueError(
            f"target: no column named {target!r} in {path!r}"
            + (f"; its columns are {header}" if header else " (it has no header row)")
        )
    data = np.empty((len(rows), width), dtype=np.float64)
    first_line = 2 if header is not None else 1
    for i, r in enumerate(rows):
        if len(r) != width:
            raise ValueError(f"data: {path!r} line {first_line + i} has {len(r)} columns, expected {width}")
        for j, cell in enumerate(r):
            try:
                data[i, j] = value = float(cell)
            except ValueError:
                value = None
            if value is None or not math.isfinite(value):
                name = f" ({header[j]!r})" if header else ""
                raise ValueError(
                    f"data: {path!r} line {first_line + i}, column {j + 1}{name}: {cell!r} is not a finite number"
                ) from None
    y = data[:, col]
    X = np.ascontiguousarray(np.delete(data, col, axis=1), dtype=np.float32)
    # whole numbers become class labels only where int64 holds them exactly (1e300 stays a float)
    if np.all((y == np.round(y)) & (np.abs(y) < 2.0**53)):
        y = y.astype(np.int64)
    return Dataset(X, y)


def load(path, target=None):
    """Load a data set from ``path``.

    Parameters
    ----------
    path : str or PathLike
        "digits" (the bundled UCI digits); a directory of MNIST-style IDX files
        (``train-images-idx3-ubyte[.gz]`` / ``train-images.idx3-ubyte[.gz]``,
        labels and ``t10k-*`` likewise); one ``.npz`` (``X``/``y`` or
        ``x_train``/``y_train``/``x_test``/``y_test``); or a ``.csv`` (label in the
        last column, or the column named ``target``; a header row is detected).
    target : str, optional
        The label column of a CSV with a header.

    Returns
    -------
    Dataset
        IDX images come flattened and scaled to [0, 1] as float32.
    """
    if isinstance(path, str) and path == "digits":
        from .datasets import digits

        return Dataset(*digits())
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"data: expected 'digits' or a path, got {path!r} ({type(path).__name__})")
    path = os.fspath(path)
    return _checked(_load_path(path, target), path)


def _checked(ds, path):
    """The arrays a loader found, as training takes them: numbers, X 2-D (images flattened), y one per row."""
    parts = []
    for X, y, which in ((ds.X, ds.y, ""), (ds.X_test, ds.y_test, " test")):
        if X is None:
            parts += [None, None]
            continue
        for a, what in ((X, "inputs"), (y, "labels")):
            if a.dtype.kind not in "biuf":
                raise ValueError(f"data: {path!r} holds{which} {what} of dtype {a.dtype}; expected numbers"
                                 + (" (class indices 0..k-1, or target values)" if what == "labels" else ""))
        if X.ndim < 2 or X.shape[0] == 0 or X[0].size == 0:
            raise ValueError(f"data: {path!r} holds{which} inputs of shape {X.shape}; expected (rows, features) "
                             "with at least one of each")
        if y.ndim not in (1, 2) or y.shape[0] != X.shape[0]:
            raise ValueError(f"data: {path!r} holds{which} labels of shape {y.shape} for {X.shape[0]} rows; "
                             "expected one label (or one row of targets) per row")
        X = X.reshape(X.shape[0], -1) if X.ndim > 2 else X
        if X.dtype.kind == "f" and X.dtype.itemsize >= 4:  # float16 is checked after its conversion by fit
            i = checks.first_nonfinite(np.ascontiguousarray(X))
            if i >= 0:
                raise ValueError(f"data: {path!r}{which} row {i // X.shape[1]}, feature {i % X.shape[1]}: "
                                 f"{X.reshape(-1)[i]} is not a finite number")
        parts += [X, y]
    return Dataset(*parts)


def _load_path(path, target):
    if not os.path.exists(path):
        raise FileNotFoundError(f"data: no such file or directory: {path!r}")
    if os.path.isdir(path):
        return _load_idx_dir(path)
    lower = path.lower()
    if lower.endswith(".npz"):
        return _load_npz(path)
    if lower.endswith(".csv"):
        return _load_csv(path, target)
    if "idx" in os.path.basename(lower) or lower.endswith(".gz"):
        raise ValueError(f"data: {path!r} is a single IDX file; pass the directory that holds the four MNIST files")
    raise ValueError(f"data: {path!r}: expected 'digits', a directory of IDX files, a .npz or a .csv")


# ----------------------------------------------------------------------------- helpers

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
    seed = checks.check_int(seed, "seed", minimum=0)
    perm = np.random.default_rng(seed).permutation(n)
    test, train = perm[:n_test], perm[n_test:]
    return X[train], X[test], y[train], y[test]


def standardize(X_train, X_test=None):
    """Scale each feature to mean 0, std 1 using the training rows' statistics (constant features: std 1).

    Returns (X_train_scaled, X_test_scaled or None, (mean, std)).
    """
    X_train = np.asarray(X_train)
    mean = X_train.mean(axis=0)
    std = X_train.std(axis=0)
    std[std == 0] = 1
    dtype = X_train.dtype if X_train.dtype.kind == "f" else np.float32
    scale = lambda A: ((np.asarray(A) - mean) / std).astype(dtype, copy=False)  # noqa: E731
    return scale(X_train), None if X_test is None else scale(X_test), (mean, std)


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

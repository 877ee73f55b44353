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

from .common import checks
from . import io

__all__ = ["Dataset", "Inputs", "Scaler", "load", "load_inputs", "load_idx", "train_test_split", "one_hot",
           "standardize", "encode_labels", "scale_hint"]


class Dataset(NamedTuple):
    """Train inputs and targets, and the test split when the source has one (else None).

    ``feature_names`` and ``target_names`` are a CSV header's column names (None without one);
    ``sample_weight`` the rows' weights from a CSV's weight column (None without one).
    """

    X: np.ndarray
    y: np.ndarray
    X_test: Optional[np.ndarray] = None
    y_test: Optional[np.ndarray] = None
    feature_names: Optional[list] = None
    target_names: Optional[list] = None
    sample_weight: Optional[np.ndarray] = None


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

def _load_npz(path, need_y=True):
    arrays = io.read_npz(path, "data")
    keys = set(arrays)
    if {"X", "y"} <= keys:
        return Dataset(arrays["X"], arrays["y"])
    if not need_y and "X" in keys:
        return Dataset(arrays["X"], None)
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


def _read_csv(path):
    """(header or None, data rows as lists of stripped strings, line number of the first data row)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: a byte-order mark is not a header
            reader = csv.reader(f)
            rows = list(reader)
    except UnicodeDecodeError as e:
        raise ValueError(f"data: {path!r} is not a UTF-8 text CSV file: {e}") from None
    except csv.Error as e:
        raise ValueError(f"data: {path!r} line {reader.line_num}: {e}") from None
    rows = [[c.strip() for c in r] for r in rows if r and any(c.strip() for c in r)]
    if not rows:
        raise ValueError(f"data: {path!r} is empty")
    header = None
    # A header is a first row with a name where the next row has a number (a text label column is
    # text in every row, so "1,2,dog" over "3,4,cat" is data).
    first_is_text = [not _is_number(c) for c in rows[0]]
    if any(first_is_text) and (len(rows) == 1 or any(t and _is_number(d) for t, d in zip(first_is_text, rows[1]))):
        header = rows[0]
        rows = rows[1:]
    if not rows:
        raise ValueError(f"data: {path!r} has a header but no data rows")
    width = len(rows[0]) if header is None else len(header)
    first_line = 2 if header is not None else 1
    for i, r in enumerate(rows):
        if len(r) != width:
            raise ValueError(f"data: {path!r} line {first_line + i} has {len(r)} columns, expected {width}")
    return header, rows, first_line


def _column_label(header, j):
    return f" ({header[j]!r})" if header else ""


def _numbers(path, header, rows, first_line, cols):
    """The cells of columns ``cols`` as float64 (n, len(cols)); a non-number names its line and column."""
    out = np.empty((len(rows), len(cols)), dtype=np.float64)
    for i, r in enumerate(rows):
        for k, j in enumerate(cols):
            try:
                out[i, k] = value = float(r[j])
            except ValueError:
                value = None
            if value is None or not math.isfinite(value):
                raise ValueError(
                    f"data: {path!r} line {first_line + i}, column {j + 1}{_column_label(header, j)}: "
                    f"{r[j]!r} is not a {'number' if value is None else 'finite number'}"
                ) from None
    return out


def _targets(path, header, rows, first_line, cols):
    """Target columns: numbers (int64 when all integral, float64 else), or text labels for one column."""
    if len(cols) == 1 and not all(_is_number(r[cols[0]]) for r in rows):
        j = cols[0]
        empty = [i for i, r in enumerate(rows) if not r[j]]
        if empty:
            raise ValueError(f"data: {path!r} line {first_line + empty[0]}, column {j + 1}{_column_label(header, j)}: "
                             "an empty label (a missing value?)")
        return np.array([r[j] for r in rows])
    y = _numbers(path, header, rows, first_line, cols)
    if len(cols) == 1:
        y = y[:, 0]
    # whole numbers become class labels only where int64 holds them exactly (1e300 stays a float)
    if y.ndim == 1 and np.all((y == np.round(y)) & (np.abs(y) < 2.0**53)):
        y = y.astype(np.int64)
    return y


def _target_names(target):
    """None, 'a', 'a,b' or ['a', 'b'] → None or a list of column names."""
    if target is None:
        return None
    names = target.split(",") if isinstance(target, str) else list(target)
    names = [str(n).strip() for n in names]
    if not names or not all(names):
        raise ValueError(f"target: expected column names such as 'price' or 'a,b', got {target!r}")
    return names


def _find_columns(path, header, names, what):
    missing = [n for n in names if header is None or n not in header]
    if missing:
        raise ValueError(
            f"{what}: no column named {missing[0]!r} in {path!r}"
            + (f"; its columns are {header}" if header else " (it has no header row)")
        )
    return [header.index(n) for n in names]


def _load_csv(path, target=None, id_column=None, weight_column=None):
    header, rows, first_line = _read_csv(path)
    width = len(rows[0])
    if width < 2:
        raise ValueError(f"data: {path!r} has {width} column; expected features and a label")
    names = _target_names(target)
    cols = [width - 1] if names is None else _find_columns(path, header, names, "target")
    skip = [] if id_column is None else _find_columns(path, header, [id_column], "id")
    wcol = [] if weight_column is None else _find_columns(path, header, [weight_column], "sample_weight")
    if set(wcol) & set(cols + skip):
        raise ValueError(f"sample_weight: column {weight_column!r} of {path!r} is also the target or the id column")
    feats = [j for j in range(width) if j not in cols and j not in skip and j not in wcol]
    if not feats:
        raise ValueError(f"target: {names} are all the columns of {path!r}; no features are left")
    y = _targets(path, header, rows, first_line, cols)
    X = np.ascontiguousarray(_numbers(path, header, rows, first_line, feats), dtype=np.float32)
    w = None if weight_column is None else _numbers(path, header, rows, first_line, wcol)[:, 0]
    return Dataset(X, y, feature_names=None if header is None else [header[j] for j in feats],
                   target_names=None if header is None else [header[j] for j in cols], sample_weight=w)


def _check_id_source(path, id_column, what="id"):
    if id_column is not None and not os.fspath(path).lower().endswith(".csv"):
        raise ValueError(f"{what}: {'an id' if what == 'id' else 'a weight'} column needs a .csv with a header, "
                         f"got {os.fspath(path)!r}")


def load(path, target=None, id_column=None, weight_column=None):
    """Load a data set from ``path``.

    Parameters
    ----------
    path : str or PathLike
        "digits" (the bundled UCI digits); a directory of MNIST-style IDX files
        (``train-images-idx3-ubyte[.gz]`` / ``train-images.idx3-ubyte[.gz]``,
        labels and ``t10k-*`` likewise); one ``.npz`` (``X``/``y`` or
        ``x_train``/``y_train``/``x_test``/``y_test``); or a ``.csv`` (label in the
        last column, or the column(s) named by ``target``; a header row is detected;
        features are numbers, a single label column may hold text such as "dog").
    target : str or list of str, optional
        The target column(s) of a CSV with a header: "price", "a,b" or ["a", "b"].
    id_column : str, optional
        A column of a CSV with a header that is neither feature nor target (row names): left out.
    weight_column : str, optional
        A column of a CSV with a header holding each row's sample weight: left out of the
        features and returned as ``sample_weight``.

    Returns
    -------
    Dataset
        IDX images come flattened and scaled to [0, 1] as float32.
    """
    _check_id_source(path, id_column)
    _check_id_source(path, weight_column, "sample_weight")
    if isinstance(path, str) and path == "digits":
        from .datasets import digits

        return Dataset(*digits())
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"data: expected 'digits' or a path, got {path!r} ({type(path).__name__})")
    path = os.fspath(path)
    return _checked(_load_path(path, target, id_column, weight_column), path)


def _checked(ds, path):
    """The arrays a loader found, as training takes them: numbers (text for a 1-D column of class labels),
    X 2-D (images flattened), y one per row."""
    parts = []
    for X, y, which in ((ds.X, ds.y, ""), (ds.X_test, ds.y_test, " test")):
        if X is None:
            parts += [None, None]
            continue
        if X.dtype.kind not in "biuf":
            raise ValueError(f"data: {path!r} holds{which} inputs of dtype {X.dtype}; expected numbers")
        if y.dtype.kind not in "biufUS" or (y.dtype.kind in "US" and y.ndim != 1):
            raise ValueError(f"data: {path!r} holds{which} labels of dtype {y.dtype}, shape {y.shape}; expected "
                             "numbers (class indices or target values) or one column of class names")
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
    return ds._replace(X=parts[0], y=parts[1], X_test=parts[2], y_test=parts[3])


def _load_path(path, target, id_column, weight_column=None):
    if not os.path.exists(path):
        raise FileNotFoundError(f"data: no such file or directory: {path!r}")
    if os.path.isdir(path):
        return _load_idx_dir(path)
    lower = path.lower()
    if lower.endswith(".npz"):
        return _load_npz(path)
    if lower.endswith(".csv"):
        return _load_csv(path, target, id_column, weight_column)
    if "idx" in os.path.basename(lower) or lower.endswith(".gz"):
        raise ValueError(f"data: {path!r} is a single IDX file; pass the directory that holds the four MNIST files")
    raise ValueError(f"data: {path!r}: expected 'digits', a directory of IDX files, a .npz or a .csv")


class Inputs(NamedTuple):
    """What a trained model is given: inputs, targets when the source has them (else None), the id
    column's values (else None) and which rows these are, in words."""

    X: np.ndarray
    y: Optional[np.ndarray]
    ids: Optional[np.ndarray]
    rows: str


def load_inputs(path, n_features, feature_names=None, target_names=None, id_column=None):
    """Rows to score or predict with a trained model, from a file with or without its target.

    Parameters
    ----------
    path : str or PathLike
        As for :func:`load`; a .npz may hold only ``X``; a CSV may lack the target column(s).
        Sources with a test split (IDX, ``x_test`` in a .npz) give that split.
    n_features : int
        The model's input width.
    feature_names, target_names : list of str, optional
        The model's column names (from its training CSV's header). With them, a CSV
        with a header is matched by name: its columns are the features (in any
        order), the target columns if present, and the id column; any other column,
        or a missing feature, is a ValueError naming it. Without them, columns are
        matched by count: the features, then the target column(s) if present.
    id_column : str, optional
        A CSV column carried through to the output, not a feature.

    Returns
    -------
    Inputs
    """
    _check_id_source(path, id_column)
    if isinstance(path, (str, os.PathLike)) and os.fspath(path).lower().endswith(".csv"):
        return _csv_inputs(os.fspath(path), n_features, feature_names, target_names, id_column)
    if isinstance(path, (str, os.PathLike)) and os.fspath(path).lower().endswith(".npz") and os.path.exists(path):
        ds = _load_npz(os.fspath(path), need_y=False)
    else:
        ds = load(path)
    name = os.fspath(path)
    X, y, rows = ds.X, ds.y, f"all {ds.X.shape[0]} rows of {name!r}"
    if ds.X_test is not None:
        X, y, rows = ds.X_test, ds.y_test, f"the {ds.X_test.shape[0]} rows of the test split of {name!r}"
    X = X.reshape(X.shape[0], -1) if X.ndim > 2 else X
    if X.ndim != 2 or X.shape[1] != n_features:
        raise ValueError(f"data: {name!r} has {X.shape[1] if X.ndim == 2 else X.shape} features per row, "
                         f"the model expects {n_features}")
    return Inputs(X, y, None, rows)


def _csv_inputs(path, n_features, feature_names, target_names, id_column):
    header, rows, first_line = _read_csv(path)
    width = len(rows[0])
    used = []
    ids = None
    if id_column is not None:
        if header is None:
            raise ValueError(f"id: {path!r} has no header row, so no column named {id_column!r}")
        j = _find_columns(path, header, [id_column], "id")[0]
        ids = np.array([r[j] for r in rows])
        used.append(j)
    n_targets = len(target_names) if target_names else 1
    if header is not None and feature_names is not None:
        tcols = [header.index(n) for n in (target_names or []) if n in header]
        missing = [n for n in feature_names if n not in header or header.index(n) in used]
        if missing:
            raise ValueError(f"data: {path!r} has no column {missing[0]!r}, one of the model's features "
                             f"{feature_names}")
        extra = [header[j] for j in range(width) if j not in used + tcols and header[j] not in feature_names]
        if extra:
            raise ValueError(f"data: {path!r} has a column {extra[0]!r} that is not one of the model's features "
                             f"{feature_names} (an id column? give it as the id column, --id in the CLI)")
        if tcols and len(tcols) != len(target_names):
            absent = [n for n in target_names if n not in header][0]
            raise ValueError(f"data: {path!r} has some of the model's target columns {target_names} but not "
                             f"{absent!r}; give all or none")
        fcols = [header.index(n) for n in feature_names]
    else:
        rest = [j for j in range(width) if j not in used]
        if len(rest) == n_features:
            fcols, tcols = rest, []
        elif len(rest) == n_features + n_targets:
            fcols, tcols = rest[:n_features], rest[n_features:]
        else:
            besides = " besides the id column" if ids is not None else ""
            raise ValueError(f"data: {path!r} has {len(rest)} columns{besides}; the model expects {n_features} "
                             f"features (or {n_features + n_targets} with the target)")
    X = _numbers(path, header, rows, first_line, fcols)
    y = _targets(path, header, rows, first_line, tcols) if tcols else None
    return Inputs(X, y, ids, f"all {X.shape[0]} rows of {path!r}")


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


class Scaler:
    """Per-column standardisation kept with a model: z = (x − mean) / std.

    ``x_mean``/``x_std`` scale the features; ``y_mean``/``y_std`` (None for
    classifiers) scale regression targets, and :meth:`inverse_y` maps outputs
    back to the targets' units. A constant column gets std 1 (it becomes 0).
    The statistics are float64 whatever the data's dtype.
    """

    def __init__(self, x_mean, x_std, y_mean=None, y_std=None):
        self.x_mean, self.x_std = self._pair(x_mean, x_std, "x")
        self.y_mean, self.y_std = (None, None) if y_mean is None else self._pair(y_mean, y_std, "y")

    @staticmethod
    def _pair(mean, std, name):
        mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        std = np.asarray(std, dtype=np.float64).reshape(-1)
        if mean.shape != std.shape or not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
            raise ValueError(f"scaler: expected finite {name}_mean and positive {name}_std of one shape, "
                             f"got shapes {mean.shape} and {std.shape}")
        return mean, std

    @staticmethod
    def _stats(A):
        A = np.asarray(A)
        A = A.reshape(A.shape[0], -1)
        mean = A.mean(axis=0, dtype=np.float64)  # float64 sums, without a float64 copy of A
        std = A.std(axis=0, dtype=np.float64)
        std[std == 0] = 1.0
        return mean, std

    @classmethod
    def fit(cls, X, y=None):
        """The statistics of the rows of X (n, d), and of y ((n,) or (n, k)) when given."""
        return cls(*cls._stats(X), *((None, None) if y is None else cls._stats(y)))

    def transform_X(self, X, dtype=None):
        X = np.asarray(X)
        return np.ascontiguousarray((X - self.x_mean) / self.x_std, dtype=dtype or X.dtype)

    def transform_y(self, Y, dtype=None):
        Y = np.asarray(Y)
        if self.y_mean is None:
            return Y
        return np.ascontiguousarray((Y - self.y_mean.reshape(-1 if Y.ndim == 1 else (1, -1)))
                                    / self.y_std.reshape(-1 if Y.ndim == 1 else (1, -1)), dtype=dtype or Y.dtype)

    def inverse_y(self, A, dtype=None):
        A = np.asarray(A)
        if self.y_mean is None:
            return A
        return np.ascontiguousarray(A * self.y_std + self.y_mean, dtype=dtype or A.dtype)

    def arrays(self):
        """The statistics as named arrays (what a model file stores)."""
        out = {"scaler_x_mean": self.x_mean, "scaler_x_std": self.x_std}
        if self.y_mean is not None:
            out.update(scaler_y_mean=self.y_mean, scaler_y_std=self.y_std)
        return out

    @classmethod
    def from_arrays(cls, arrays):
        """The Scaler stored in ``arrays`` (a model file's), or None."""
        if "scaler_x_mean" not in arrays:
            return None
        return cls(arrays["scaler_x_mean"], arrays["scaler_x_std"], arrays.get("scaler_y_mean"),
                   arrays.get("scaler_y_std"))

    def __repr__(self):
        return f"Scaler(features={self.x_mean.size}, targets={None if self.y_mean is None else self.y_mean.size})"


def standardize(X_train, X_test=None):
    """Scale each feature to mean 0, std 1 using the training rows' statistics (constant features: std 1).

    Returns (X_train_scaled, X_test_scaled or None, (mean, std)).
    """
    X_train = np.asarray(X_train)
    sc = Scaler.fit(X_train)
    dtype = X_train.dtype if X_train.dtype.kind == "f" else np.float32
    return (sc.transform_X(X_train, dtype), None if X_test is None else sc.transform_X(X_test, dtype),
            (sc.x_mean, sc.x_std))


# Features whose magnitudes differ by more than this train badly without scaling.
SCALE_RATIO = 100.0


def scale_hint(X):
    """A one-line hint when the features' magnitudes (largest |x| of each non-zero column) differ by more
    than SCALE_RATIO×, else None."""
    X = np.asarray(X)
    if X.ndim != 2 or X.size == 0:
        return None
    mag = np.maximum(np.abs(X.max(axis=0)), np.abs(X.min(axis=0))).astype(np.float64)  # no |X| temporary
    mag = mag[mag > 0]
    if mag.size < 2 or mag.max() <= SCALE_RATIO * mag.min():
        return None
    return (f"the features' scales differ by {mag.max() / mag.min():.3g}x (largest |x| from {mag.min():.3g} to "
            f"{mag.max():.3g}); standardize them (--standardize, or Network(..., standardize=True))")


def _label_array(y, argname):
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{argname}: expected a 1-D array of class labels, got shape {arr.shape}")
    if arr.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            frac = np.isfinite(arr) & (arr != np.round(arr))
            bad = frac | ~(np.abs(arr) < 2.0**53)  # also NaN, inf, and whole numbers that int64 would change
        if np.any(bad):
            i = int(np.flatnonzero(bad)[0])
            what = "non-integral value" if frac[i] else "value (not a class index int64 holds)"
            raise ValueError(f"{argname}: expected class labels, got the {what} {arr[i]} at row {i} "
                             "(for a numeric target use the mse loss: regression)")
        return arr.astype(np.int64)
    if arr.dtype.kind in "biu":
        return arr.astype(np.int64)
    if arr.dtype.kind in "US":
        return arr.astype(str)
    if arr.dtype.kind == "O" and all(isinstance(v, str) for v in arr):
        return arr.astype(str)
    raise TypeError(f"{argname}: expected class labels (integers or strings), got dtype {arr.dtype}")


def encode_labels(y, classes=None, argname="y"):
    """Class labels → (indices into ``classes``, ``classes``).

    Labels may be integers (any values) or strings. Without ``classes`` they
    are the sorted distinct labels (as ``numpy.unique`` sorts them); with
    ``classes``, a label not among them is a ValueError naming it.
    """
    arr = _label_array(y, argname)
    if classes is None:
        classes, codes = np.unique(arr, return_inverse=True)
        return codes.astype(np.int64).reshape(-1), classes
    classes = np.asarray(classes)
    if classes.dtype.kind in "US" and arr.dtype.kind not in "US":
        arr = arr.astype(str)
    elif classes.dtype.kind not in "US" and arr.dtype.kind in "US":
        bad = [v for v in arr if not _is_number(v)]
        if bad:
            raise ValueError(f"{argname}: label {bad[0]!r} is not one of the classes {classes.tolist()}")
        arr = _label_array(arr.astype(np.float64), argname)
    order = np.argsort(classes, kind="stable")
    pos = np.searchsorted(classes[order], arr)
    pos = np.minimum(pos, len(classes) - 1)
    codes = order[pos]
    unseen = classes[codes] != arr
    if np.any(unseen):
        i = int(np.flatnonzero(unseen)[0])
        raise ValueError(f"{argname}: label {arr[i].item()!r} (row {i}) is not one of the classes "
                         f"{classes.tolist()} the model was trained on")
    return codes.astype(np.int64), classes


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

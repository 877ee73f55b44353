"""Validation at the Python boundary, before any compiled kernel runs.

Compiled code does no bounds checks, so everything a kernel indexes by is
checked here: shapes, label ranges, finiteness. Each error names the argument,
what was given and what was expected. Arrays of other dtypes or memory layouts
are converted, not rejected.
"""

import math
import numbers

import numpy as np
from numba import njit

DTYPES = {"float32": np.float32, "float64": np.float64}


def check_dtype(dtype, argname="dtype"):
    """'float32' or 'float64' (also accepts the numpy types) → the numpy type."""
    try:
        name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    except TypeError:
        name = None
    if name not in DTYPES:
        raise ValueError(f"{argname}: expected 'float32' or 'float64', got {dtype!r}")
    return DTYPES[name]


def check_int(value, argname, minimum=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{argname}: expected an int, got {value!r} ({type(value).__name__})")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{argname}: expected an int >= {minimum}, got {value}")
    return value


def check_positive_float(value, argname):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{argname}: expected a positive finite number, got {value!r}")
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{argname}: expected a positive finite number, got {value!r}")
    return value


def fit_settings(epochs, batch_size, clip_norm):
    """``fit``'s epochs, batch size and clip norm, checked: (epochs, batch_size, clip), clip 0.0 for None.

    The one place these rules live: ``Network.fit`` and a sweep's space both go through it.
    """
    epochs = check_int(epochs, "epochs", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    clip = 0.0 if clip_norm is None else check_positive_float(clip_norm, "clip_norm")
    return epochs, batch_size, clip


def check_sample_weight(sample_weight, n, argname="sample_weight"):
    """Sample weights for n rows as a float64 vector: finite, ≥ 0, not all zero."""
    try:
        w = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{argname}: expected {n} real numbers, got {type(sample_weight).__name__}") from None
    if w.ndim != 1 or w.shape[0] != n:
        raise ValueError(f"{argname}: expected a 1-D array of {n} weights (one per row), got shape {w.shape}")
    if not np.isfinite(w).all():
        raise ValueError(f"{argname}: expected finite weights, got {w[~np.isfinite(w)][0]!r} at row "
                         f"{int(np.flatnonzero(~np.isfinite(w))[0])}")
    if (w < 0).any():
        raise ValueError(f"{argname}: expected weights >= 0, got {w[w < 0][0]!r} at row {int(np.flatnonzero(w < 0)[0])}")
    if not (w > 0).any():
        raise ValueError(f"{argname}: the weights are all zero; expected at least one positive weight")
    return _writeable(np.ascontiguousarray(w))


def check_nonnegative_float(value, argname):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{argname}: expected a finite number >= 0, got {value!r}")
    value = float(value)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{argname}: expected a finite number >= 0, got {value!r}")
    return value


def check_layers(layers, argname="layers"):
    if isinstance(layers, (str, bytes)) or not hasattr(layers, "__len__"):
        raise TypeError(f"{argname}: expected a list of layer widths such as [784, 128, 10], got {layers!r}")
    if len(layers) < 2:
        raise ValueError(
            f"{argname}: expected at least an input and an output width, e.g. [784, 10], got {list(layers)!r}"
        )
    out = []
    for i, n in enumerate(layers):
        if isinstance(n, bool) or not isinstance(n, numbers.Integral):
            raise TypeError(f"{argname}[{i}]: expected an int width, got {n!r}")
        if n < 1:
            raise ValueError(f"{argname}[{i}]: expected a width >= 1, got {n}")
        out.append(int(n))
    return out


def _as_array(a, argname):
    if isinstance(a, np.ndarray):
        arr = a
    else:
        try:
            arr = np.asarray(a)
        except (ValueError, TypeError) as e:
            raise TypeError(f"{argname}: expected an array of numbers, got {type(a).__name__} ({e})") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{argname}: expected an array of real numbers, got dtype {arr.dtype}")
    return arr


# x * 0 is 0 for a finite x and NaN for NaN or ±Inf, so the sum of them says whether ``a`` holds one;
# summed with re-association allowed (NaN kept), the loop vectorises, where a test per element with an
# early exit does not: the check of clean data costs a fraction of a pass over it, and only data that
# holds a NaN or Inf is searched for the first one.


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "nsz"})
def all_finite(flat):
    """Whether the 1-D array ``flat`` holds no NaN or Inf (one vectorised pass, no temporary)."""
    s = flat.dtype.type(0.0)
    for i in range(flat.shape[0]):
        s += flat[i] * flat.dtype.type(0.0)
    return s == 0


@njit(cache=True, error_model="numpy")
def first_nonfinite(a):
    """Flat index of the first NaN or Inf in ``a`` (C order), or -1, without a temporary."""
    flat = a.reshape(a.size)
    if all_finite(flat):
        return -1
    for i in range(flat.shape[0]):
        if not np.isfinite(flat[i]):
            return i
    return -1


def _check_finite(arr, argname, source=None):
    """``arr`` holds the converted values; ``source`` (if given) the caller's, for the message."""
    if arr.dtype.kind != "f" or arr.size == 0:
        return
    i = first_nonfinite(arr)
    if i >= 0:
        where = tuple(int(k) for k in np.unravel_index(i, arr.shape))
        given = arr.reshape(-1)[i]
        orig = np.asarray(source)[where] if source is not None and np.shape(source) == arr.shape else given
        extra = ""
        if np.isfinite(orig):  # finite as given, not in the kernels' dtype
            extra = f" ({orig} does not fit in {arr.dtype.name})"
            given = orig
        raise ValueError(f"{argname}: expected finite numbers, got {given} at index {where}{extra}")


def check_X(X, n_features, dtype, argname="X", finite=True):
    """2-D (n, n_features), C-contiguous, of ``dtype``, finite; copied only if it must be.

    Finiteness is checked after the conversion, in the dtype the kernels see: 1e39 is finite
    in float64 and infinite in float32. ``finite=False`` leaves that check to the caller (a kernel
    that checks each chunk as it reads it, then calls this again for the message).
    """
    arr = _as_array(X, argname)
    if arr.ndim != 2:
        raise ValueError(f"{argname}: expected a 2-D array of shape (n_samples, {n_features}), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{argname}: expected at least one sample, got shape {arr.shape}")
    if arr.shape[1] != n_features:
        raise ValueError(
            f"{argname}: expected {n_features} features (the network's input width), got {arr.shape[1]}"
        )
    arr = _convert(arr, dtype, argname)
    if finite:
        _check_finite(arr, argname, source=X)
    return arr


def _convert(arr, dtype, argname):
    """``arr`` as a writeable C-contiguous array of ``dtype`` (native byte order), without overflow warnings."""
    with np.errstate(over="ignore", invalid="ignore"):
        return _writeable(np.ascontiguousarray(arr, dtype=dtype))


def _writeable(arr):
    """``arr``, copied if it is read-only (a memory map opened for reading, joblib's in a parallel search):
    Numba types a read-only array apart and would compile every kernel that takes it again."""
    return arr if arr.flags.writeable else arr.copy()


def check_params(value, n_params, dtype, argname="params"):
    """A flat parameter vector: ``n_params`` real numbers, finite in ``dtype``, converted to it."""
    arr = _as_array(value, argname)
    if arr.shape != (n_params,):
        raise ValueError(f"{argname}: expected shape ({n_params},), got {arr.shape}")
    arr = _convert(arr, dtype, argname)
    _check_finite(arr, argname, source=value)
    return arr


def check_y(y, n_samples, n_out, loss, dtype, argname="y"):
    """The targets as a dense (n, n_out) array of ``dtype`` fit for ``loss``.

    cross_entropy: integer labels (n,) in [0, n_out), or one-hot / probability
    rows (n, n_out). binary_cross_entropy: 0..1 values of shape (n,) for one
    output unit or (n, n_out). mse / squared: real values (n,) for one output
    or (n, n_out).
    """
    arr = _as_array(y, argname)
    if arr.ndim not in (1, 2) or arr.shape[0] != n_samples:
        raise ValueError(
            f"{argname}: expected {n_samples} targets (one per row of X), got an array of shape {arr.shape}"
        )
    if loss == "cross_entropy" and arr.ndim == 1:
        if arr.dtype.kind == "f":
            arr = np.ascontiguousarray(arr, dtype=np.float64)  # exact for every float type, float16 included
            _check_finite(arr, argname)
            if not np.all(arr == np.round(arr)):
                i = int(np.flatnonzero(arr != np.round(arr))[0])
                raise ValueError(f"{argname}: expected integer class labels, got {arr[i]} at index {i}")
        lo, hi = arr.min(), arr.max()
        if lo < 0 or hi >= n_out:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"{argname}: expected class labels in 0..{n_out - 1} (the output width is {n_out}), got {bad}"
            )
        Y = np.zeros((n_samples, n_out), dtype=dtype)
        Y[np.arange(n_samples), arr.astype(np.int64)] = 1
        return Y
    if arr.ndim == 1:
        if n_out != 1:
            what = "one-hot rows" if loss == "cross_entropy" else "rows"
            raise ValueError(
                f"{argname}: expected shape ({n_samples}, {n_out}) ({what} for {n_out} outputs), got shape {arr.shape}"
            )
        arr = arr.reshape(-1, 1)
    if arr.shape[1] != n_out:
        raise ValueError(
            f"{argname}: expected {n_out} columns (the output width), got shape {arr.shape}"
        )
    Y = _convert(arr, dtype, argname)
    _check_finite(Y, argname, source=arr)
    if loss == "cross_entropy":
        sums = Y.sum(axis=1, dtype=np.float64)
        if Y.min() < 0 or not np.allclose(sums, 1.0, atol=1e-3):
            i = int(np.flatnonzero((Y < 0).any(axis=1) | ~np.isclose(sums, 1.0, atol=1e-3))[0])
            raise ValueError(
                f"{argname}: expected one-hot (or probability) rows summing to 1 for cross_entropy, "
                f"got row {i} = {arr[i].tolist()}"
            )
    elif loss == "binary_cross_entropy":
        if Y.min() < 0 or Y.max() > 1:
            raise ValueError(
                f"{argname}: expected 0/1 targets for binary_cross_entropy, got values in [{Y.min()}, {Y.max()}]"
            )
    return Y

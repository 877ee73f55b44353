"""Bad inputs drawn at random (Hypothesis) end in a clean error or a correct result, never another exception.

At every boundary (the API, the data loaders, model files), whatever goes in, each call ends in a clean ValueError
or TypeError naming the argument (or the file), or in a correct result.

Example counts are bounded (see MAX_*) so that the whole file runs in well under a minute; the networks are
tiny and of two dtypes, so the compiled signatures are the ones the rest of the suite uses.
"""

import json
import math
import os
import re
import struct
import tempfile
import zipfile

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastbp
from conftest import forward_np
from fastbp.data import load

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
                derandomize=True)
MAX_API = 100
MAX_HYPER = 80
MAX_LOADER = 60

NETS = {
    "clf32": dict(layers=[3, 4, 3], activation="tanh", dtype="float32"),
    "reg64": dict(layers=[3, 4, 2], activation="tanh", loss="mse", dtype="float64"),
    "bce32": dict(layers=[3, 4, 2], activation="tanh", loss="binary_cross_entropy", dtype="float32"),
}
# An error message starts by naming what it is about: an argument ("X: ..."), an indexed one ("layers[1]: ..."),
# a spec's ("SGD(lr): ...") or a file ("data: '/path' ...", "path: '/path' ...").
NAMED = re.compile(r"^[A-Za-z_][\w\[\]()' ,.-]*: ")


def _net(name):
    return fastbp.Network(**NETS[name], seed=0)


def _clean_error(e, argnames=None):
    assert isinstance(e, (ValueError, TypeError)), f"{type(e).__name__}: {e}"
    msg = str(e)
    assert NAMED.match(msg), f"the message does not name its argument: {msg!r}"
    if argnames is not None:
        assert msg.split(":")[0].split("[")[0].split("(")[0] in argnames, msg


DTYPES = [np.float16, np.float32, np.float64, np.dtype(">f4"), np.dtype(">f8"), np.int8, np.int64, np.uint64,
          np.bool_, np.complex64, np.dtype("U3")]


@st.composite
def arrays_of(draw, shape):
    """An array of ``shape`` of any of DTYPES, with any values that dtype holds (NaN, inf, the extremes)."""
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    if dtype.kind == "f":
        wide = st.floats(width=8 * dtype.itemsize, allow_nan=True, allow_infinity=True)
        common = st.floats(-3, 3, width=8 * dtype.itemsize)
        huge = st.sampled_from([1e39, -1e39, 3.4e38, 1e300, 65504.0]).filter(
            lambda v: np.isfinite(dtype.type(v)) or dtype.itemsize == 8)
        elements = st.one_of(common, common, wide, huge)
    elif dtype.kind == "c":
        elements = st.complex_numbers(max_magnitude=10, width=8 * dtype.itemsize)
    elif dtype.kind == "U":
        elements = st.text(st.characters(exclude_characters="\x00"), max_size=3)  # NumPy strips trailing NULs
    else:
        elements = None
    arr = draw(hnp.arrays(dtype, shape, elements=elements))
    if draw(st.booleans()) and arr.ndim == 2:
        arr = np.asfortranarray(arr)
    return arr


@st.composite
def inputs(draw, n_features=3):
    n = draw(st.integers(0, 9))
    shape = draw(st.sampled_from([(n, n_features), (n, n_features), (n, n_features), (n, n_features + 1), (n,),
                                  (n, n_features, 1)]))
    return draw(arrays_of(shape))


@st.composite
def targets(draw, n, n_out):
    form = draw(st.sampled_from(["labels", "labels", "float_labels", "rows", "rows", "wrong_length"]))
    if form == "labels":
        dtype = draw(st.sampled_from([np.int64, np.uint8, np.int32, np.bool_]))
        low = 0 if dtype in (np.uint8, np.bool_) else -1
        elements = st.booleans() if dtype is np.bool_ else st.integers(low, n_out)
        return draw(hnp.arrays(dtype, (n,), elements=elements))
    if form == "float_labels":
        return draw(arrays_of((n,)))
    if form == "rows":
        rows = draw(arrays_of((n, n_out)))
        if draw(st.booleans()) and rows.dtype.kind == "f":  # often valid: one-hot or probability rows
            rows = np.zeros((n, n_out), dtype=rows.dtype)
            rows[np.arange(n), np.arange(n) % n_out] = 1
        return rows
    return draw(arrays_of((n + 1,)))


def _valid_X(X, net):
    if not isinstance(X, np.ndarray) or X.dtype.kind not in "biuf" or X.ndim != 2:
        return False
    if X.shape[0] < 1 or X.shape[1] != net.sizes[0]:
        return False
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.all(np.isfinite(X.astype(net.dtype))))


def _targets_nonfinite(y, net):
    """True when y has a value that is not finite in the network's dtype (class labels: in float64)."""
    y = np.asarray(y)
    if y.dtype.kind != "f":
        return False
    one_d_labels = net.loss == "cross_entropy" and y.ndim == 1
    with np.errstate(over="ignore", invalid="ignore"):
        return not bool(np.all(np.isfinite(y.astype(np.float64 if one_d_labels else net.dtype))))


# --------------------------------------------------------------------------- the API boundary


@settings(max_examples=MAX_API, **SETTINGS)
@given(name=st.sampled_from(sorted(NETS)), data=st.data())
def test_fit_ends_in_a_clean_error_or_a_trained_network(name, data):
    net = _net(name)
    X = data.draw(inputs(net.sizes[0]), label="X")
    n = X.shape[0] if X.ndim else 0
    y = data.draw(targets(n, net.sizes[-1]), label="y")
    before = net.params.copy()
    try:
        hist = net.fit(X, y, epochs=2, batch_size=4, lr=0.05, verbose=0)
    except FloatingPointError:
        # finite inputs so large that the cost overflows: documented, and the network is put back
        assert _valid_X(X, net)
        np.testing.assert_array_equal(net.params, before)
        assert net.epochs_trained == 0
        return
    except Exception as e:  # noqa: BLE001 - the property is about which exceptions come out
        _clean_error(e, {"X", "y"})
        assert net.epochs_trained == 0 and np.array_equal(net.params, before)
        return
    assert _valid_X(X, net), "fit accepted X that is not finite in the network's dtype, or of the wrong shape"
    assert not _targets_nonfinite(y, net), "fit accepted targets that are not finite in the network's dtype"
    assert len(hist) == 2 and net.epochs_trained == 2
    assert np.all(np.isfinite(net.params)) and all(math.isfinite(v) for v in hist["loss"])


@settings(max_examples=MAX_API, **SETTINGS)
@given(name=st.sampled_from(sorted(NETS)), data=st.data())
def test_forward_is_the_reference_or_a_clean_error(name, data):
    net = _net(name)
    X = data.draw(inputs(net.sizes[0]), label="X")
    try:
        out = net.forward(X)
        pred = net.predict(X)
    except Exception as e:  # noqa: BLE001
        _clean_error(e, {"X"})
        assert not _valid_X(X, net)
        return
    assert _valid_X(X, net)
    Xc = X.astype(net.dtype).astype(np.float64)
    ref = forward_np(net, Xc)[-1][1]
    if np.all(np.abs(Xc) < 1e3):
        tol = 1e-4 if net.dtype == np.float32 else 1e-10
        np.testing.assert_allclose(out, ref, rtol=tol, atol=tol)
    assert len(pred) == X.shape[0]


HYPER = {
    "epochs": ([1, 2, np.int64(2)], [0, -1, 1.5, True, "2", None, np.float64(2.0)]),
    "batch_size": ([1, 3, 7, 2**40, np.int32(5)], [0, -3, 2.5, True, "4", None]),
    "lr": ([None, 0.1, 1e-300, np.float32(0.01), 1], [0, -0.1, math.nan, math.inf, True, "0.1"]),
    "clip_norm": ([None, 1.0, 1e-3, 5], [0, -1.0, math.nan, -math.inf, "1", True]),
    "validation_split": ([None, 0.25, 0.5], [0, 1, -0.1, math.nan, 2, True]),
    "shuffle": ([True, False, np.bool_(True)], [1, None, "yes"]),
    "checkpoint_every": ([1, 3], [0, -1, 1.5]),
    "verbose": ([0], [3, -1, "loud", 0.5]),
}


@st.composite
def hyperparameters(draw):
    kw, bad = {}, set()
    for key, (good, wrong) in HYPER.items():
        if draw(st.integers(0, 4)) == 0:
            kw[key] = draw(st.sampled_from(wrong))
            bad.add(key)
        else:
            kw[key] = draw(st.sampled_from(good))
    return kw, bad


@settings(max_examples=MAX_HYPER, **SETTINGS)
@given(name=st.sampled_from(["clf32", "reg64"]), hyper=hyperparameters())
def test_hyperparameters_are_checked_before_training(name, hyper):
    kw, bad = hyper
    net = _net(name)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 3))
    y = rng.integers(0, 3, 12) if net.loss == "cross_entropy" else rng.standard_normal((12, 2))
    before = net.params.copy()
    try:
        hist = net.fit(X, y, **kw)
    except Exception as e:  # noqa: BLE001
        _clean_error(e)
        assert bad, f"a valid setting was refused: {e}"
        assert str(e).split(":")[0] in bad, f"the error names {str(e).split(':')[0]!r}, the bad ones are {bad}"
        assert np.array_equal(net.params, before) and net.epochs_trained == 0
        return
    assert not bad, f"fit accepted {sorted(bad)} = {[kw[k] for k in sorted(bad)]}"
    assert len(hist) == int(kw["epochs"]) and np.all(np.isfinite(net.params))


@settings(max_examples=MAX_API, **SETTINGS)
@given(name=st.sampled_from(sorted(NETS)), data=st.data())
def test_params_setter_takes_finite_numbers_of_the_right_length(name, data):
    net = _net(name)
    n = net.n_params
    shape = data.draw(st.sampled_from([(n,), (n,), (n - 1,), (n, 1), ()]))
    value = data.draw(arrays_of(shape))
    before = net.params.copy()
    try:
        net.params = value
    except Exception as e:  # noqa: BLE001
        _clean_error(e, {"params"})
        np.testing.assert_array_equal(net.params, before)
        return
    with np.errstate(over="ignore", invalid="ignore"):
        expected = value.astype(net.dtype)
    assert np.all(np.isfinite(expected)) and value.shape == (n,)
    np.testing.assert_array_equal(net.params, expected)


# --------------------------------------------------------------------------- the loaders


def _load_outcome(path, loader=load):
    """Call the loader; a clean error must name the file. Returns the result or None."""
    try:
        return loader(path)
    except FileNotFoundError as e:
        assert str(path) in str(e)
    except Exception as e:  # noqa: BLE001
        _clean_error(e)
        assert os.fspath(path) in str(e) or os.path.basename(os.fspath(path)) in str(e), str(e)
    return None


def _assert_dataset(ds):
    for X, y in ((ds.X, ds.y), (ds.X_test, ds.y_test)):
        if X is None:
            continue
        assert X.ndim == 2 and X.shape[0] >= 1 and X.shape[1] >= 1 and X.dtype.kind in "biuf"
        assert y.shape[0] == X.shape[0] and y.dtype.kind in "biufU"
        if y.dtype.kind == "U":  # class names: one column, none empty
            assert y.ndim == 1 and all(y)
        if X.dtype.kind == "f" and X.dtype.itemsize >= 4:
            assert np.all(np.isfinite(X))


def _valid_npz_bytes(rng):
    path = os.path.join(tempfile.mkdtemp(), "d.npz")
    np.savez(path, X=rng.standard_normal((6, 3)).astype(np.float32), y=rng.integers(0, 3, 6))
    with open(path, "rb") as f:
        return f.read()


@settings(max_examples=MAX_LOADER, **SETTINGS)
@given(data=st.data())
def test_npz_data_files_random_bytes_truncations_and_headers(data):
    raw = _valid_npz_bytes(np.random.default_rng(0))
    kind = data.draw(st.sampled_from(["random", "truncated", "flipped", "header"]))
    if kind == "random":
        raw = data.draw(st.binary(max_size=300))
    elif kind == "truncated":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif kind == "flipped":
        raw = bytearray(raw)
        for _ in range(data.draw(st.integers(1, 6))):
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] = data.draw(st.integers(0, 255))
        raw = bytes(raw)
    else:  # a well-formed zip whose .npy headers lie: shape, dtype, order drawn at random
        shape = data.draw(st.lists(st.integers(0, 2**40), max_size=3).map(tuple))
        descr = data.draw(st.sampled_from(["<f8", "<f4", "|u1", "|O", "<U3", "<c8", "V8", "<M8[s]"]))
        header = repr({"descr": descr, "fortran_order": data.draw(st.booleans()), "shape": shape})
        header = header.encode().ljust(118) + b"\n"
        body = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + data.draw(st.binary(max_size=64))
        buf = tempfile.SpooledTemporaryFile()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("X.npy", body)
            z.writestr("y.npy", body)
        buf.seek(0)
        raw = buf.read()
    path = os.path.join(tempfile.mkdtemp(), "d.npz")
    with open(path, "wb") as f:
        f.write(raw)
    ds = _load_outcome(path)
    if ds is not None:
        _assert_dataset(ds)


NUMBERS = st.one_of(st.integers(-3, 9).map(str), st.floats(-5, 5).map(repr),
                    st.sampled_from(["1e300", "-1e300", "1e39", "9" * 30, "1e-400", " 2 ", "0x10", "1_0"]))
ODD_CELLS = st.one_of(st.sampled_from(["nan", "inf", "-inf", "", " ", "x", '"3"', "\ufeff1", "9" * 400]),
                      st.text(max_size=4))


@st.composite
def csv_rows(draw):
    width = draw(st.integers(1, 4))
    rows = draw(st.lists(st.lists(st.one_of(NUMBERS, NUMBERS, NUMBERS, NUMBERS, ODD_CELLS), min_size=width,
                                  max_size=width), max_size=6))
    if draw(st.booleans()):
        rows.insert(0, [f"c{j}" for j in range(width)])  # a header
    if rows and draw(st.integers(0, 5)) == 0:
        rows[-1] = rows[-1][:-1]  # a ragged row
    return rows


@settings(max_examples=MAX_LOADER, **SETTINGS)
@given(rows=csv_rows(), newline=st.sampled_from(["\n", "\r\n", "\r"]), bom=st.booleans(),
       target=st.sampled_from([None, None, "c1", "zz"]))
def test_csv_oddities(rows, newline, bom, target):
    text = ("\ufeff" if bom else "") + newline.join(",".join(r) for r in rows)
    path = os.path.join(tempfile.mkdtemp(), "d.csv")
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    ds = _load_outcome(path, lambda p: load(p, target=target))
    if ds is not None:
        _assert_dataset(ds)
        if ds.y.dtype.kind == "i":  # whole numbers became labels only where int64 holds them exactly
            assert np.all(np.abs(ds.y.astype(np.float64)) < 2**53)


def _idx(code, dims, payload):
    return bytes([0, 0, code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + payload


@settings(max_examples=MAX_LOADER, **SETTINGS)
@given(code=st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x07, 0xFF]),
       dims=st.lists(st.one_of(st.integers(0, 4), st.sampled_from([2**32 - 1, 2**31])), max_size=4),
       label_code=st.sampled_from([0x08, 0x0D, 0x0C]), n_labels=st.integers(0, 5), payload=st.binary(max_size=200),
       label_payload=st.binary(max_size=40), cut=st.integers(0, 8), consistent=st.booleans())
def test_idx_header_fields_out_of_range(code, dims, label_code, n_labels, payload, label_payload, cut, consistent):
    folder = tempfile.mkdtemp()
    sizes = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}
    if consistent and code in sizes and math.prod(dims) * sizes[code] <= 4096:  # a header that tells the truth
        payload = (payload * 4096)[: math.prod(dims) * sizes[code]] if payload else bytes(math.prod(dims) * sizes[code])
        n_labels = dims[0] if dims else n_labels
        label_payload = (label_payload * 64)[: n_labels * sizes[label_code]] if label_payload else \
            bytes(n_labels * sizes[label_code])
    images = _idx(code, dims, payload)
    with open(os.path.join(folder, "train-images-idx3-ubyte"), "wb") as f:
        f.write(images[: max(0, len(images) - cut)] if cut > 4 else images)
    with open(os.path.join(folder, "train-labels-idx1-ubyte"), "wb") as f:
        f.write(_idx(label_code, [n_labels], label_payload))
    ds = _load_outcome(folder)
    if ds is not None:
        _assert_dataset(ds)
        assert ds.y.dtype == np.int64


# --------------------------------------------------------------------------- tampered model files


_MODEL = {}


def _model_file():
    if "raw" not in _MODEL:
        path = os.path.join(tempfile.mkdtemp(), "m.npz")
        net = _net("clf32")
        rng = np.random.default_rng(0)
        net.fit(rng.standard_normal((10, 3)), rng.integers(0, 3, 10), epochs=2, optimizer="adam", verbose=0)
        net.save(path)
        with np.load(path) as z:
            _MODEL["arrays"] = dict(z)
        with open(path, "rb") as f:
            _MODEL["raw"] = f.read()
    return _MODEL


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                                        max_size=3), max_leaves=8)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


@settings(max_examples=MAX_LOADER, **SETTINGS)
@given(data=st.data())
def test_tampered_model_files(data):
    model = _model_file()
    kind = data.draw(st.sampled_from(["config", "config", "array", "bytes"]))
    path = os.path.join(tempfile.mkdtemp(), "m.npz")
    if kind == "bytes":
        raw = bytearray(model["raw"])
        if data.draw(st.booleans()):
            raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
        else:
            for _ in range(data.draw(st.integers(1, 4))):
                raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
        with open(path, "wb") as f:
            f.write(bytes(raw))
    else:
        arrays = dict(model["arrays"])
        config = json.loads(arrays["config"].tobytes())
        if kind == "config":
            where = data.draw(st.sampled_from([p for p in _paths(config) if p]))
            node = config
            for k in where[:-1]:
                node = node[k]
            if data.draw(st.integers(0, 3)) == 0 and isinstance(node, dict):
                del node[where[-1]]
            else:
                node[where[-1]] = data.draw(JSON_VALUES)
            arrays["config"] = np.frombuffer(json.dumps(config).encode(), dtype=np.uint8)
        else:
            name = data.draw(st.sampled_from(["params", "opt_state"]))
            shape = arrays[name].shape
            arrays[name] = data.draw(arrays_of(data.draw(st.sampled_from([shape, shape, (3,), (0,)]))))
        np.savez(path, **arrays)
    net = _load_outcome(path, fastbp.load)
    if net is not None:  # it loaded: then it is a working model
        assert np.all(np.isfinite(net.params))
        assert len(net.history) <= net.epochs_trained
        out = net.forward(np.zeros((2, net.sizes[0])))
        assert np.all(np.isfinite(out))

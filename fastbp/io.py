"""Model files: one .npz holding the arrays and a JSON config, written atomically (common/files.py).

Files are read with ``allow_pickle=False``: loading a model never runs code. An
array's header is checked against the bytes the file holds before anything is
allocated, so a tampered header is an error, not a huge allocation.
"""

import json
import math
import os
import struct
import zipfile
import zlib

import numpy as np

from .common.files import atomic_write

FORMAT = "fastbp"
FORMAT_VERSION = 1

def save_npz(path, config, arrays):
    """Write ``arrays`` and the JSON-serialisable ``config`` to ``path`` (.npz) atomically."""
    config = {"format": FORMAT, "format_version": FORMAT_VERSION, **config}
    payload = {"config": np.frombuffer(json.dumps(config).encode(), dtype=np.uint8), **arrays}
    atomic_write(path, lambda f: np.savez(f, **payload))


# What a damaged zip or .npy raises while being parsed: each becomes a ValueError naming the file.
_CORRUPT = (ValueError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, struct.error,
            NotImplementedError, RuntimeError, SyntaxError, OverflowError, KeyError, IndexError, OSError)


def _npy_header(f):
    version = np.lib.format.read_magic(f)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    return read(f)


def read_npz(path, argname="path"):
    """{name: array} from an .npz, checked before anything is allocated.

    Every member must be a .npy array of real, bool or string data (no pickled objects) whose header
    describes no more bytes than the member holds. Errors are ValueErrors naming ``argname`` and the file.
    """
    path = os.fspath(path)
    with open(path, "rb") as raw:  # OSError (missing, unreadable) as it is: it names the file
        try:
            with zipfile.ZipFile(raw) as zf:
                arrays = {}
                for info in zf.infolist():
                    name = info.filename
                    if not name.endswith(".npy"):
                        raise ValueError(f"member {name!r} is not a .npy array")
                    with zf.open(info) as f:
                        shape, fortran, dtype = _npy_header(f)
                        header = f.tell()
                    if dtype.hasobject or dtype.kind not in "biufcSU" or dtype.fields is not None:
                        raise ValueError(f"array {name[:-4]!r} has dtype {dtype}; expected plain numbers or text")
                    need = math.prod(shape) * dtype.itemsize
                    if need > info.file_size - header:
                        raise ValueError(f"array {name[:-4]!r} declares shape {shape} ({need} bytes) but holds "
                                         f"{max(info.file_size - header, 0)} bytes")
                    with zf.open(info) as f:
                        arrays[name[:-4]] = np.lib.format.read_array(f, allow_pickle=False)
                return arrays
        except _CORRUPT as e:
            raise ValueError(f"{argname}: {path!r} is not a readable .npz file: {e}") from None


def load_npz(path):
    """(config dict, {name: array}) from a file written by :func:`save_npz`."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"path: no such model file: {path!r}")
    if os.path.isdir(path):
        raise ValueError(f"path: {path!r} is a directory, expected a model file (.npz)")
    arrays = read_npz(path)
    if "config" not in arrays:
        raise ValueError(f"path: {path!r} is an .npz but not a fastbp model (no 'config' entry)")
    config = arrays.pop("config")
    if config.dtype != np.uint8 or config.ndim != 1:
        raise ValueError(f"path: {path!r} has a corrupt config (an array of {config.dtype}, shape {config.shape})")
    try:
        config = json.loads(config.tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ValueError(f"path: {path!r} has a corrupt config: {e}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError(f"path: {path!r} is not a fastbp model (format {config.get('format') if isinstance(config, dict) else None!r})")
    version = config.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"path: {path!r} has a corrupt config (format_version {version!r}, expected an int >= 1)")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"path: {path!r} was written by a newer fastbp (format version {version}, "
            f"this one reads up to {FORMAT_VERSION})"
        )
    return config, arrays


"""Saving and loading: one .npz holding the arrays and a JSON config, written atomically.

Files are read with ``allow_pickle=False``: loading a model never runs code.
"""

import json
import os
import tempfile
import zipfile

import numpy as np

FORMAT = "fastbp"
FORMAT_VERSION = 1


def atomic_write(path, write):
    """Call ``write(fileobj)`` on a temporary file beside ``path``, fsync it, then rename it over ``path``.

    A crash at any point leaves either the old file or the new one, never a torn one.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def save_npz(path, config, arrays):
    """Write ``arrays`` and the JSON-serialisable ``config`` to ``path`` (.npz) atomically."""
    config = {"format": FORMAT, "format_version": FORMAT_VERSION, **config}
    payload = {"config": np.frombuffer(json.dumps(config).encode(), dtype=np.uint8), **arrays}
    atomic_write(path, lambda f: np.savez(f, **payload))


def load_npz(path):
    """(config dict, {name: array}) from a file written by :func:`save_npz`."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"path: no such model file: {path!r}")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise ValueError(f"path: {path!r} is not a readable fastbp model (.npz): {e}") from None
    if "config" not in arrays:
        raise ValueError(f"path: {path!r} is an .npz but not a fastbp model (no 'config' entry)")
    try:
        config = json.loads(arrays.pop("config").tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"path: {path!r} has a corrupt config: {e}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError(f"path: {path!r} is not a fastbp model (format {config.get('format') if isinstance(config, dict) else None!r})")
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(
            f"path: {path!r} was written by a newer fastbp (format version {config['format_version']}, "
            f"this one reads up to {FORMAT_VERSION})"
        )
    return config, arrays

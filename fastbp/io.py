"""Saving and loading: one .npz holding the arrays and a JSON config, written atomically; run-directory locks.

Files are read with ``allow_pickle=False``: loading a model never runs code. An
array's header is checked against the bytes the file holds before anything is
allocated, so a tampered header is an error, not a huge allocation.
"""

import contextlib
import errno
import json
import math
import os
import re
import secrets
import signal
import struct
import threading
import zipfile
import zlib

import numpy as np

FORMAT = "fastbp"
FORMAT_VERSION = 1
# Temporary files of atomic writes: the prefix, 12 hex digits, the target's suffix. A run cleans its directory of
# stale ones (left by SIGKILL), and of nothing else.
TMP_PREFIX = ".tmp-"
_TMP_NAME = re.compile(re.escape(TMP_PREFIX) + r"[0-9a-f]{12}(\.\w+)?")
LOCK_NAME = ".fastbp.lock"


@contextlib.contextmanager
def _interrupts_deferred():
    """Ctrl-C inside the block is raised when the block ends, so that a write is finished or undone, never left.

    Only the main thread receives SIGINT, and only when Python's own handler is installed do we stand in for it.
    """
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    caught = []
    signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if caught:
        raise KeyboardInterrupt


def _create_temporary(folder, suffix):
    """A new file beside the target; opened with mode 0o666 so the umask decides, as for any other file."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = os.path.join(folder, f"{TMP_PREFIX}{secrets.token_hex(6)}{suffix}")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue


def check_target(path, argname=None):
    """``path`` (as a str) if a file can be written there: its directory exists and it is not a directory.

    ``fit`` calls it for its checkpoint before the first epoch, so that a typo fails at once, not after training.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    where = f"{argname}: " if argname else ""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{where}{path!r}: no such directory {folder!r} to write into")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{where}{path!r} is a directory; expected a file name")
    return path


def atomic_write(path, write):
    """Call ``write(fileobj)`` on a temporary file beside ``path``, fsync it, then rename it over ``path``.

    A crash at any point leaves either the old file or the new one, never a torn one; an error or
    Ctrl-C removes the temporary file (Ctrl-C is raised once the write is complete or undone).
    Errors name ``path``, not the temporary file.
    """
    path = check_target(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        with _interrupts_deferred():
            fd, tmp = _create_temporary(folder, os.path.splitext(path)[1])
            try:
                with os.fdopen(fd, "wb") as f:
                    write(f)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
    except OSError as e:  # name what the caller asked for, not the temporary file
        if e.errno is None:
            raise
        raise OSError(e.errno, e.strerror or str(e), path) from None
    try:  # make the rename itself durable
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def remove_temporaries(folder):
    """Delete the temporary files of atomic writes in ``folder`` (left by a killed process); their names.

    Call it only while holding the folder's lock (:func:`lock_dir`): then no writer of ours is using them.
    """
    removed = []
    for name in os.listdir(folder):
        if _TMP_NAME.fullmatch(name):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(folder, name))
                removed.append(name)
    return removed


class LockedError(OSError):
    """Another process holds the lock of a run directory."""


class DirLock:
    """An exclusive lock on a directory, held until :meth:`release` (or the process ends, even by SIGKILL).

    The lock is ``flock`` on a file ``.fastbp.lock`` in the directory, which holds the owner's pid. The
    kernel drops it when the process dies, so there are no stale locks to clean. Where ``fcntl`` does
    not exist (Windows), nothing is locked.
    """

    def __init__(self, folder, argname="out"):
        self.folder = os.fspath(folder)
        self._fd = None
        try:
            import fcntl
        except ImportError:
            return
        path = os.path.join(self.folder, LOCK_NAME)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            try:
                owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            finally:
                os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise LockedError(
                    f"{argname}: {self.folder!r} is in use by another fastbp run (process {owner}); "
                    "wait for it to end or choose another directory") from None
            return  # a filesystem without flock (ENOLCK, EOPNOTSUPP): run unlocked rather than not at all
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self):
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


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


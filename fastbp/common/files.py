"""Writing files safely: atomic, interrupt-proof writes through temporaries beside the target, the clean-up of
temporaries a killed process left, and the lock of a run directory.

A write goes to a new temporary file in the target's folder and is renamed over the target when complete, so a
reader sees the old file or the new one, never half of one; Ctrl-C during the write is raised after it.
"""

import contextlib
import errno
import os
import re
import secrets
import signal
import threading

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

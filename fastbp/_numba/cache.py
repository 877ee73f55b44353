"""Numba's on-disk cache of fastbp's kernels, kept consistent with the sources.

Numba checks a cached function against its own source file only: a kernel of engine/kernels.py that
inlined engine/products.py's products stays in the cache after products.py changes (``git pull`` in an
editable install), and then runs the old products — a wrong answer without an error. So at
import, a fingerprint of every source file of the package (names, sizes, modification times) is
compared with the one the cache was written beside; when they differ, fastbp's cache files are
removed and Numba compiles afresh. An installed wheel never changes in place, so this costs one
``stat`` per source file.
"""

import glob
import hashlib
import os

_STAMP = "fastbp-sources.stamp"


def _sources(pkg_dir):
    """Every source file of the package, its subpackages' included, in a fixed order."""
    return sorted(glob.glob(os.path.join(pkg_dir, "**", "*.py"), recursive=True))


def _fingerprint(pkg_dir):
    h = hashlib.sha1()
    for path in _sources(pkg_dir):
        st = os.stat(path)
        h.update(f"{os.path.relpath(path, pkg_dir)} {st.st_size} {st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _cache_dirs(pkg_dir):
    """Where Numba keeps the package's cache: beside each folder's sources, or under NUMBA_CACHE_DIR."""
    dirs = []
    root = os.environ.get("NUMBA_CACHE_DIR")
    for src in sorted({os.path.dirname(os.path.abspath(p)) for p in _sources(pkg_dir)}):
        dirs.append(os.path.join(src, "__pycache__"))
        if root:  # as numba.core.caching names a source directory's cache directory
            dirs.append(os.path.join(os.path.abspath(root),
                                     f"{os.path.basename(src)}_{hashlib.sha1(src.encode()).hexdigest()}"))
    return dirs


def sync(pkg_dir):
    """Remove the package's compiled-kernel cache where the sources changed since it was written."""
    stamp = _fingerprint(pkg_dir)
    for d in _cache_dirs(pkg_dir):
        path = os.path.join(d, _STAMP)
        try:
            with open(path) as f:
                if f.read() == stamp:
                    continue
        except OSError:
            pass
        try:
            for f in glob.glob(os.path.join(d, "*.nbi")) + glob.glob(os.path.join(d, "*.nbc")):
                os.remove(f)
            os.makedirs(d, exist_ok=True)
            with open(path, "w") as f:
                f.write(stamp)
        except OSError:  # a read-only install: Numba then caches elsewhere (or not at all)
            pass

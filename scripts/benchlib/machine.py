"""The machine a benchmark runs on, and how busy the other processes keep it.

``machine()`` (in the parent): CPU model, cores, SIMD flags. ``process_info()``
(in each worker, after its work): the BLAS libraries that process loaded, with
versions and threads (threadpoolctl), and the versions of what it imported.
``measure`` helpers read /proc/stat, so that a worker timed while another
process took the CPU can be measured again or flagged.
"""

import hashlib
import importlib.util
import os
import sys
import time

BUSY_WARN = 0.15
VERSIONED = ("numpy", "scipy", "numba", "fastbp", "torch", "jax", "jaxlib", "sklearn")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def installed(module):
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def machine():
    """CPU model (from /proc/cpuinfo), logical cores, SIMD flags, Python version."""
    info = {"cores": os.cpu_count(), "python": sys.version.split()[0], "platform": sys.platform}
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        for line in text.splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in text.splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                info["simd"] = [f for f in ("avx2", "fma", "avx512f") if f in flags]
                break
    except OSError:
        import platform

        info["cpu"] = platform.processor() or platform.machine()
    return info


def process_info():
    """The BLAS libraries loaded in this process (threadpoolctl) and the versions of the modules it imported."""
    versions = {}
    for name in VERSIONED:
        mod = sys.modules.get(name)
        if mod is not None and getattr(mod, "__version__", None):
            versions[name] = mod.__version__
    blas = []
    try:
        from threadpoolctl import threadpool_info

        for lib in threadpool_info():
            if lib.get("user_api") == "blas":
                blas.append(f"{lib.get('internal_api')} {lib.get('version')} "
                            f"({os.path.basename(lib.get('filepath', ''))}, {lib.get('architecture', '?')}, "
                            f"{lib.get('num_threads')} threads)")
    except ImportError:
        blas.append("unknown (install threadpoolctl)")
    blas.extend(_built_in_blas())
    return {"versions": versions, "blas": blas}


def _built_in_blas():
    """The products linked into PyTorch and JAX, which threadpoolctl does not list (statically linked)."""
    found = []
    torch = sys.modules.get("torch")
    if torch is not None:
        text = torch.__config__.show()
        mkl = [ln.strip(" -") for ln in text.splitlines() if "Math Kernel Library Version" in ln]
        blas_info = [ln.split("BLAS_INFO=", 1)[1].split(",")[0] for ln in text.splitlines() if "BLAS_INFO=" in ln]
        lib = mkl[0].split(" for ")[0] if mkl else (blas_info[0] if blas_info else "unknown")
        found.append(f"torch's own: {lib}, oneDNN {'on' if torch.backends.mkldnn.is_available() else 'off'}")
    jaxlib = sys.modules.get("jaxlib")
    if jaxlib is not None:
        found.append(f"XLA's own kernels (jaxlib {getattr(jaxlib, '__version__', '?')}; Eigen / oneDNN compiled in)")
    return found


def source_digest():
    """A short hash of the Python sources of the fastbp that the workers import (every module of the package, by its
    path in the package): which code the numbers belong to."""
    spec = importlib.util.find_spec("fastbp")
    if spec is None or not spec.origin:
        return "?"
    here = os.path.dirname(spec.origin)
    paths = []
    for folder, dirs, names in os.walk(here):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        paths += [os.path.join(folder, n) for n in names if n.endswith(".py")]
    h = hashlib.sha256()
    for path in sorted(paths):
        try:
            with open(path, "rb") as f:
                source = f.read()
        except OSError:
            continue
        h.update(os.path.relpath(path, here).encode() + b"\0" + source)
    return h.hexdigest()[:12]


def cpu_busy(seconds=0.3):
    """Fraction of the machine's CPU time used by other processes over ``seconds`` (None off Linux)."""
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return sum(v[:8]) if len(v) >= 8 else sum(v), idle

    try:
        t0, i0 = snap()
        time.sleep(seconds)
        t1, i1 = snap()
    except (OSError, ValueError):
        return None
    return 1.0 - (i1 - i0) / (t1 - t0) if t1 > t0 else 0.0


def cpu_times():
    """(busy seconds of the whole machine, CPU seconds of our finished children), or None off Linux."""
    import resource

    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (sum(v) - v[3] - v[4]) / tick, ru.ru_utime + ru.ru_stime


def foreign_load(before, after, wall):
    """Fraction of the machine used by processes other than our workers between two ``cpu_times``."""
    if before is None or after is None or wall <= 0:
        return None
    other = (after[0] - before[0]) - (after[1] - before[1])
    return max(0.0, other / (wall * (os.cpu_count() or 1)))


def wait_idle(max_wait):
    """Wait (up to ``max_wait`` s) until other processes use < 10% of the CPU; returns the last busy fraction."""
    deadline = time.perf_counter() + max_wait
    said = False
    while True:
        busy = cpu_busy(0.5)
        if busy is None or busy < 0.10 or time.perf_counter() >= deadline:
            return busy
        if not said:
            log(f"  waiting for the machine to go idle ({100 * busy:.0f}% busy; at most {max_wait:.0f} s)")
            said = True
        time.sleep(2.0)


def load(r):
    """The larger of the other processes' CPU share before and during a worker (0 if unknown)."""
    return max([x for x in (r.get("busy_before"), r.get("foreign_load")) if x is not None] or [0.0])

"""fastbp._numba.cache: compiled kernels cached by Numba are dropped when any source of the package changed."""

import os

from fastbp._numba import cache as _cache


def _touch(path, text="x"):
    with open(path, "w") as f:
        f.write(text)


def test_cache_is_kept_while_the_sources_stay_and_dropped_when_one_changes(tmp_path, monkeypatch):
    pkg = tmp_path / "pkg"
    cache = pkg / "__pycache__"
    cache.mkdir(parents=True)
    _touch(pkg / "kernels.py")
    _touch(pkg / "products.py")
    _touch(cache / "kernels._train_epoch-1.py311.nbi")
    _touch(cache / "kernels._train_epoch-1.py311.0.nbc")
    _touch(cache / "kernels.cpython-311.pyc")
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)

    _cache.sync(str(pkg))  # no stamp yet: a cache of unknown sources is dropped
    assert sorted(os.listdir(cache)) == ["fastbp-sources.stamp", "kernels.cpython-311.pyc"]

    _touch(cache / "kernels._train_epoch-1.py311.nbi")
    _cache.sync(str(pkg))  # nothing changed: kept
    assert "kernels._train_epoch-1.py311.nbi" in os.listdir(cache)

    _touch(pkg / "products.py", "y = 2")  # another module than the kernel's own changed
    _cache.sync(str(pkg))
    assert "kernels._train_epoch-1.py311.nbi" not in os.listdir(cache)


def test_the_numba_cache_dir_is_kept_in_step_too(tmp_path, monkeypatch):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    _touch(pkg / "kernels.py")
    root = tmp_path / "numba-cache"
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(root))
    # where Numba itself puts the cache of a function of pkg/kernels.py under NUMBA_CACHE_DIR
    from numba.core.caching import _CacheLocator

    where = os.path.join(str(root), _CacheLocator.get_suitable_cache_subpath(str(pkg / "kernels.py")))
    os.makedirs(where)
    _touch(os.path.join(where, "kernels.f-1.py311.nbi"))
    _cache.sync(str(pkg))
    assert os.listdir(where) == ["fastbp-sources.stamp"]



def test_products_compiled_in_different_processes_keep_their_own_code(tmp_path):
    # Numba names a compiled function by its qualified name, argument types and a per-process counter, and a
    # cached kernel carries its callees as link-once definitions merged by name when loaded. Two processes
    # that each compile one product (the same steps, so the same counter) must not define one name with two
    # bodies: a kernel loaded from the cache beside the other could then run the other product.
    import json
    import subprocess
    import sys
    import textwrap

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    code = r"""
        import json, re, sys
        import numpy as np
        from fastbp.engine.products import Blas, matmul_nt, matmul_tn
        rng = np.random.default_rng(0)
        if sys.argv[1] == "tn":
            f, args = matmul_tn, (rng.standard_normal((5, 3)), rng.standard_normal((5, 4)), np.empty((3, 4)))
            f(*args, Blas(0))
            assert np.allclose(args[2], args[0].T @ args[1])
        else:
            f, args = matmul_nt, (rng.standard_normal((5, 4)), rng.standard_normal((3, 4)), np.empty((5, 3)))
            f(*args, Blas(0))
            assert np.allclose(args[2], args[0] @ args[1].T)
        ir = next(iter(f.inspect_llvm().values()))
        bodies = {}
        for m in re.finditer(r'^define [^@]*@"?([^"( ]+)"?[(].*?^}$', ir, re.S | re.M):
            if "fastbp" in m.group(1):
                bodies[m.group(1)] = re.sub(r"!\w+ !\d+|#\d+", "", m.group(0).split("{", 1)[1])
        print(json.dumps(bodies))
    """
    # A first process fills the cache with what importing fastbp compiles, so that the next two start equal.
    r = subprocess.run([sys.executable, "-c", "import fastbp"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    defined = []
    for product in ("tn", "nt"):
        r = subprocess.run([sys.executable, "-c", textwrap.dedent(code), product], capture_output=True, text=True,
                           env=env, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        defined.append(json.loads(r.stdout))
    tn, nt = defined
    assert any("_engine" in name or "openblas" in name for name in tn), sorted(tn)
    for name in set(tn) & set(nt):
        assert tn[name] == nt[name], f"{name} has two bodies"

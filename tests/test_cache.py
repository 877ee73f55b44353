"""fastbp._cache: compiled kernels cached by Numba are dropped when any source of the package changed."""

import os

from fastbp import _cache


def _touch(path, text="x"):
    with open(path, "w") as f:
        f.write(text)


def test_cache_is_kept_while_the_sources_stay_and_dropped_when_one_changes(tmp_path, monkeypatch):
    pkg = tmp_path / "pkg"
    cache = pkg / "__pycache__"
    cache.mkdir(parents=True)
    _touch(pkg / "kernels.py")
    _touch(pkg / "matmul.py")
    _touch(cache / "kernels._train_epoch-1.py311.nbi")
    _touch(cache / "kernels._train_epoch-1.py311.0.nbc")
    _touch(cache / "kernels.cpython-311.pyc")
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)

    _cache.sync(str(pkg))  # no stamp yet: a cache of unknown sources is dropped
    assert sorted(os.listdir(cache)) == ["fastbp-sources.stamp", "kernels.cpython-311.pyc"]

    _touch(cache / "kernels._train_epoch-1.py311.nbi")
    _cache.sync(str(pkg))  # nothing changed: kept
    assert "kernels._train_epoch-1.py311.nbi" in os.listdir(cache)

    _touch(pkg / "matmul.py", "y = 2")  # another module than the kernel's own changed
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

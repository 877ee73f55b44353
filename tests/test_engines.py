"""Which engine a network's products run on (fastbp/engine/policy.py), and training's independence of the threads.

The built-in rule on AVX2 and AVX-512 hosts, forcing an engine, the calibration file, `fastbp info` / `calibrate`,
MKL in fresh processes and in a population, fastbp without Numba's private BLAS functions, and training bitwise
independent of the thread count on every engine."""

import json
import math
import os
import re
import subprocess
import sys
import textwrap
import types

import numba
import numpy as np
import pytest

import fastbp
from conftest import fit_on_threads, openblas_threads
from fastbp._numba import mkl as _mkl
from fastbp.cli import main
from fastbp.engine import calibration, policy, products
from fastbp.engine.policy import engine_for, force_engine, one_thread_rows, population_engine
from fastbp.engine.products import Blas, Loops, Mkl

needs_mkl = pytest.mark.skipif(not _mkl.available(), reason="mkl (libmkl_rt) is not installed")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MNIST, WIDE = [784, 256, 128, 10], [784, 2048, 2048, 10]


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """An empty calibration directory of this test's own."""
    monkeypatch.setenv("FASTBP_CACHE_DIR", str(tmp_path))
    calibration.rule.cache_clear()
    yield tmp_path
    calibration.rule.cache_clear()


def python(code, env=None, timeout=300):
    """Run Python ``code`` in a fresh process importing this checkout's fastbp: the CompletedProcess."""
    full_env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {})}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=full_env, timeout=timeout)


def run_py(code, env=None, timeout=300):
    """Run Python ``code`` in a fresh process importing this checkout's fastbp; its stdout."""
    r = python(code, env, timeout)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


# ----------------------------------------------------------------------------- the built-in rule


@pytest.fixture(params=["avx2", "avx512"])
def host(request, monkeypatch):
    """The engine choice as it is made on an AVX2 and on an AVX-512 host."""
    features = {"avx2": True, "avx512f": request.param == "avx512"}
    monkeypatch.setattr(products, "ll", types.SimpleNamespace(get_host_cpu_features=lambda: features))
    products.blas_from.cache_clear()
    calibration.rule.cache_clear()
    yield request.param
    products.blas_from.cache_clear()
    calibration.rule.cache_clear()


def test_engine_choice_of_the_built_in_rule(host):
    avx512 = host == "avx512"
    assert calibration.rule().entry is None
    assert engine_for([2, 4, 2], 4, 0, threads=2) is None
    # OpenBLAS's AVX-512 kernels beat the loops from a few k multiply-adds on, its AVX2 ones on large products
    # only; BLAS then takes every product from its smallest on (one core in the loops under it).
    blas = Blas(1 << 12 if avx512 else 1 << 21)
    assert engine_for([64, 32, 10], 32, 0, threads=2) == (blas if avx512 else None)
    assert engine_for([784, 256, 128, 10], 128, 10**5, threads=2) == (blas if avx512 else Loops(2))
    assert engine_for([784, 2048, 2048, 10], 256, 10**6, threads=2) == blas


def test_small_networks_compile_for_one_core(host):
    # None: every product and the update on one core, so the kernels are compiled without BLAS or threads.
    assert fastbp.Network([2, 4, 2])._engine(4) is None
    assert (fastbp.Network([64, 32, 10])._engine(32) is None) == (host == "avx2")
    assert isinstance(fastbp.Network([784, 2048, 2048, 10])._engine(256), Blas)
    mnist = fastbp.Network([784, 256, 128, 10])
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(2)
        assert mnist._engine(128) == (Blas(1 << 12) if host == "avx512" else Loops(2))
        # Small products but enough parameters for a split update: not one core.
        assert fastbp.Network([1000, 100, 10])._engine(8) is not None
        numba.set_num_threads(1)
        assert (mnist._engine(128) is None) == (host == "avx2")
    finally:
        numba.set_num_threads(before)


def test_a_population_never_runs_a_parallel_engine(host):
    # Trained beside others on one core: BLAS only where fit takes it and its products stay on the calling thread.
    def population(sizes, rows):
        return population_engine(sizes, rows, fastbp.Layout(sizes).n_params)

    mm = population([64, 32, 10], 32)
    assert (mm is None) if host == "avx2" else isinstance(mm, Blas)
    assert population([784, 256, 128, 10], 128) is None
    assert population([784, 2048, 2048, 10], 256) is None


@pytest.mark.parametrize("host", ["avx512"], indirect=True)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_plain_descent_inside_the_backward_pass_is_the_update_rule(host, dtype):
    """On BLAS, plain SGD steps each layer inside the backward pass (64→32 folded into the product, 32→3
    in two steps); a clip_norm that never clips takes the separate update: the same networks come out."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((256, 64))
    y = rng.integers(0, 3, 256)
    nets = []
    for clip in (None, 1e30):
        net = fastbp.Network([64, 32, 3], dtype=dtype, seed=0)
        assert net._engine(32) == Blas(1 << 12)
        net.fit(X, y, epochs=3, batch_size=32, lr=0.1, clip_norm=clip, verbose=0)
        nets.append(net)
    tol = {"rtol": 1e-4, "atol": 1e-6} if dtype == "float32" else {"rtol": 1e-12, "atol": 1e-14}
    np.testing.assert_allclose(nets[0].params, nets[1].params, **tol)
    assert not np.array_equal(nets[0].params, fastbp.Network([64, 32, 3], dtype=dtype, seed=0).params)


# ----------------------------------------------------------------------------- forcing


def test_force_engine_overrides_the_rule(cache_dir):
    with force_engine("openblas", smallest=0):
        assert engine_for([2, 4, 2], 4, 0, threads=2) == Blas(0)
        with force_engine("loops"):  # the innermost wins
            assert engine_for(WIDE, 256, 10**6, threads=2) == Loops(2)
            assert engine_for(WIDE, 256, 10**6, threads=1) is None
    with force_engine("openblas"):  # the rule's smallest product for that BLAS
        assert engine_for([2, 4, 2], 4, 0, threads=2) == Blas(int(calibration.rule().thresholds["openblas"][1]))
    assert policy.forced_engine() is None


def test_engine_from_the_environment(cache_dir, monkeypatch):
    monkeypatch.setenv("FASTBP_ENGINE", "openblas")
    assert isinstance(engine_for([2, 4, 2], 4, 0, threads=2), Blas)
    monkeypatch.setenv("FASTBP_ENGINE", " Loops ")
    assert engine_for(WIDE, 256, 10**6, threads=2) == Loops(2)
    monkeypatch.setenv("FASTBP_ENGINE", "cublas")
    with pytest.raises(ValueError, match=r"^FASTBP_ENGINE: expected one of loops, openblas, mkl, got 'cublas'"):
        engine_for(MNIST, 128, 10**5)


def test_mkl_not_installed_is_a_clear_error(cache_dir, monkeypatch):
    monkeypatch.setattr(_mkl, "available", lambda: False)
    monkeypatch.setenv("FASTBP_ENGINE", "mkl")
    with pytest.raises(ValueError, match=r'^FASTBP_ENGINE: mkl is not installed \(pip install "fastbp\[mkl\]"\)'):
        engine_for(MNIST, 128, 10**5)
    with pytest.raises(ValueError, match="^force_engine: mkl is not installed"):
        with force_engine("mkl"):
            pass
    with pytest.raises(ValueError, match="^force_engine: expected one of"):
        with force_engine("blas"):
            pass


@needs_mkl
def test_mkl_engine_and_its_population(cache_dir):
    with force_engine("mkl", smallest=0):
        mm = engine_for(MNIST, 128, 10**5, threads=2)
        assert mm.smallest == 0 and mm.threads == 2 and isinstance(mm, Mkl)
        # In a population every product is told to stay on the calling thread, whatever its size.
        assert population_engine(WIDE, 256, 10**6) == mm._replace(threads=1)
        assert one_thread_rows(WIDE) == sys.maxsize
    with force_engine("openblas", smallest=0):  # OpenBLAS: only up to its own threading threshold
        assert population_engine(WIDE, 256, 10**6) is None
        assert one_thread_rows(MNIST) == products.BLAS_ONE_THREAD_MACS // (784 * 256)


# ----------------------------------------------------------------------------- calibration


def point(shape, loops1, loops, openblas, mkl1=None, mkl=None):
    """A measured point, times in µs."""
    s = {"loops1": loops1, "loops": loops, "openblas": openblas}
    if mkl is not None:
        s.update(mkl1=mkl1, mkl=mkl)
    return {"shape": list(shape), "macs": int(np.prod(shape)), "seconds": {k: v * 1e-6 for k, v in s.items()}}


# Synthetic times: OpenBLAS beats one core from 2.1 M multiply-adds, both loops from 25.7 M; MKL's threads gain
# from 25.7 M, and with them MKL beats both loops from 262 k; it is 2-2.5x OpenBLAS there.
POINTS = [point((16, 16, 16), 1, 1, 2, 1.5, 3), point((32, 128, 64), 10, 10, 20, 8, 30),
          point((64, 256, 128), 100, 60, 90, 40, 80), point((128, 784, 256), 1000, 500, 400, 300, 200),
          point((256, 2048, 2048), 10**5, 5 * 10**4, 4 * 10**4, 3 * 10**4, 2 * 10**4)]


def test_decide_from_measurements():
    d = calibration.decide(POINTS)
    gm = math.sqrt
    assert d["blas"] == "mkl"
    assert d["mkl_parallel"] == pytest.approx(gm(2097152 * 25690112))
    # Thresholds halfway (geometrically) between the last size where the BLAS loses and the next.
    assert d["thresholds"]["openblas"] == [pytest.approx(gm(2097152 * 25690112)), pytest.approx(gm(262144 * 2097152))]
    assert d["thresholds"]["mkl"] == [pytest.approx(gm(4096 * 262144))] * 2
    # Over the products a BLAS takes (from 32.8 k): (20/8 * 90/40 * 400/200 * 4/2)^(1/4).
    assert d["mkl_over_openblas"] == pytest.approx((20 / 8 * 90 / 40 * 2 * 2) ** 0.25)
    # A BLAS that never beats the loops at the largest size is never used.
    slow = [point(p["shape"], 1, 1, 2) for p in POINTS]
    assert calibration.decide(slow) == {"blas": None, "thresholds": {"openblas": [math.inf, math.inf]},
                                        "small_openblas": math.inf}


def fake_calibration(monkeypatch, points=POINTS):
    monkeypatch.setattr(calibration, "measure", lambda: points)
    monkeypatch.setattr(_mkl, "version", lambda: "MKL 2099.0 (test)")
    return calibration.calibrate()


def test_calibration_round_trip(cache_dir, monkeypatch):
    assert calibration.rule().entry is None and calibration.rule().source.startswith("built-in rule")
    entry = fake_calibration(monkeypatch)
    data = json.loads((cache_dir / "engines.json").read_text())
    assert list(data.values()) == [entry] and entry["key"] == calibration.machine_key()
    r = calibration.rule()
    assert r.blas == entry["blas"] and r.source.startswith(f"calibrated {entry['date']}")
    frm, smallest = r.thresholds[r.blas]
    assert (frm, smallest) == tuple(entry["thresholds"][r.blas])
    # engine_for follows it: the loops below the threshold, the calibrated BLAS from it on.
    below, above = [16, 16, 4], [1024, 1024, 10]
    assert engine_for(below, 16, 0, threads=2) is None
    mm = engine_for(above, 2048, 10**6, threads=2)
    assert isinstance(mm, Mkl) and mm.smallest == int(smallest) and mm.parallel == int(entry["mkl_parallel"])
    monkeypatch.setattr(_mkl, "available", lambda: False)  # installed, but libmkl_rt does not load: OpenBLAS
    assert engine_for(above, 2048, 10**6, threads=2) == Blas(int(entry["thresholds"]["openblas"][1]))


def test_calibration_of_other_versions_or_a_broken_file_is_not_used(cache_dir, monkeypatch):
    fake_calibration(monkeypatch)
    key = calibration.machine_key()
    monkeypatch.setattr(calibration, "machine_key", lambda: {**key, "numba": "9.99"})
    calibration.rule.cache_clear()
    assert calibration.rule().entry is None
    monkeypatch.undo()
    monkeypatch.setenv("FASTBP_CACHE_DIR", str(cache_dir))
    (cache_dir / "engines.json").write_text("{not json")
    calibration.rule.cache_clear()
    assert calibration.rule().entry is None
    (cache_dir / "engines.json").write_text(json.dumps({calibration._key_text(key): {"blas": "mkl"}}))
    calibration.rule.cache_clear()
    assert calibration.rule().entry is None


def test_measure_times_every_engine(cache_dir):
    points = calibration.measure(shapes=[(8, 16, 4), (32, 64, 32)], rounds=1)
    engines = {"loops1", "loops", "openblas"} | ({"mkl1", "mkl"} if _mkl.available() else set())
    for p in points:
        assert set(p["seconds"]) == engines
        assert all(0 < s < 1 for s in p["seconds"].values())


def test_the_other_blas_takes_the_large_networks_where_it_is_faster(cache_dir, monkeypatch, capsys):
    """MKL the faster over the products a BLAS takes, OpenBLAS by more than LARGE_MARGIN at every point from
    268 M multiply-adds on: networks with threads whose largest product is past the point between 134 M and
    268 M take OpenBLAS; one-thread choices (a population) keep MKL, whose times there were not measured."""
    times = {(64, 256, 128): (100, 60, 90, 40, 80), (128, 784, 256): (1000, 500, 400, 300, 200),
             (256, 1024, 512): (10**4, 5000, 4000, 8000, 4050),  # OpenBLAS ahead, within the margin
             (256, 1024, 1024): (2 * 10**4, 10**4, 8000, 16000, 8500),
             (256, 2048, 2048): (10**5, 5 * 10**4, 3 * 10**4, 6 * 10**4, 3.3 * 10**4)}
    pts = [point(shape, *t) for shape, t in times.items()]
    d = calibration.decide(pts)
    assert d["blas"] == "mkl" and d["large_blas"] == ["openblas", pytest.approx(math.sqrt(134217728 * 268435456))]
    # OpenBLAS ahead by less than the margin at the largest point: no switch.
    close = [p if p["macs"] < 10**9 else point(p["shape"], 10**5, 5 * 10**4, 3.3 * 10**4, 6 * 10**4, 3.34 * 10**4)
             for p in pts]
    assert "large_blas" not in calibration.decide(close)
    entry = fake_calibration(monkeypatch, pts)
    monkeypatch.setattr(_mkl, "available", lambda: True)
    r = calibration.rule()
    assert r.large == ("openblas", entry["large_blas"][1])
    assert engine_for(WIDE, 256, 10**6, threads=2) == Blas(int(r.thresholds["openblas"][1]))
    assert isinstance(engine_for(MNIST, 128, 10**5, threads=2), Mkl)
    assert isinstance(engine_for(WIDE, 256, 10**6, threads=1), Mkl)
    assert population_engine(WIDE, 256, 10**6) == engine_for(WIDE, 256, 10**6, threads=1)
    with force_engine("mkl"):  # forcing still wins
        assert isinstance(engine_for(WIDE, 256, 10**6, threads=2), Mkl)
    assert main(["info"]) == 0
    assert "from 190 M multiply-adds on (several threads) it uses OpenBLAS, the faster there" in capsys.readouterr().out


def test_info_and_calibrate_commands(cache_dir, monkeypatch, capsys):
    assert main(["info"]) == 0
    assert "engine rule: built-in rule (not calibrated: run `fastbp calibrate`)" in capsys.readouterr().out
    monkeypatch.setattr(calibration, "measure", lambda: POINTS)
    assert main(["calibrate"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {cache_dir / 'engines.json'}" in out
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "engine rule: calibrated " in out
    assert "a network uses MKL when its largest product has >= 32.8 k multiply-adds" in out
    assert re.search(r"\n +128x784x256 +25\.7 M +1000\.0 +500\.0 +400\.0 +300\.0 +200\.0 +mkl\n", out)
    monkeypatch.setenv("FASTBP_ENGINE", "loops")
    assert main(["info"]) == 0
    assert "forced: FASTBP_ENGINE=loops" in capsys.readouterr().out


def test_info_tells_what_mkl_would_give(cache_dir, monkeypatch, capsys):
    fake_calibration(monkeypatch)
    monkeypatch.setattr(_mkl, "installed", lambda: False)
    monkeypatch.setattr(_mkl, "available", lambda: False)
    calibration.rule.cache_clear()
    assert calibration.rule().entry is None  # the key's MKL version changed: not this installation's
    assert main(["info"]) == 0
    ratio = calibration.decide(POINTS)["mkl_over_openblas"]
    assert (f'MKL: not installed; measured {ratio:.2f}x OpenBLAS\'s speed on this CPU: pip install "fastbp[mkl]"'
            in capsys.readouterr().out)


# ----------------------------------------------------------------------------- MKL in fresh processes


@needs_mkl
def test_cached_mkl_kernels_load_in_a_fresh_process():
    """Compiled code calls MKL through symbols registered when it is loaded: a kernel taken from Numba's cache
    in a new process finds them (Mkl's typeof loads the library before the dispatcher links the kernel)."""
    code = """
        import numpy as np
        from fastbp.engine.kernels import _descend_layer
        from fastbp.engine.products import Mkl, matmul_nt
        rng = np.random.default_rng(0)
        A, W, D = rng.random((64, 96)), rng.random((32, 96)), rng.random((64, 32))
        Z = np.empty((64, 32))
        matmul_nt(A, W, Z, Mkl(0, 2, 0))
        W2 = W.copy()
        _descend_layer(D, A, W2, np.empty_like(W), 0.5, Mkl(0, 2, 0))
        ok = np.allclose(Z, A @ W.T) and np.allclose(W2, W - 0.5 * D.T @ A)
        print(ok, sum(matmul_nt.stats.cache_hits.values()), sum(_descend_layer.stats.cache_hits.values()))
    """
    run_py(code)  # compiles (or finds) and caches
    ok, hits_nt, hits_descend = run_py(code).split()
    assert ok == "True" and int(hits_nt) >= 1 and int(hits_descend) >= 1


@needs_mkl
@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads through /proc")
@pytest.mark.parametrize("layer", ["GNU", "TBB"])
def test_mkl_in_a_population_stays_on_the_calling_threads(layer):
    """Products told to run on the calling thread inside a prange start no MKL thread, on either of MKL's threading
    layers. A product on two threads runs on Numba's own threads where MKL's layer is the runtime of Numba's
    (GNU OpenMP beside Numba's omp layer built with GNU OpenMP, TBB beside Numba's tbb layer): no new thread;
    beside another (GNU OpenMP beside Numba's TBB or workqueue, TBB beside Numba's OpenMP or workqueue), MKL's
    layer starts threads of its own. A layer this installation cannot load (MKL's TBB layer needs libtbb on the
    loader's path) is skipped."""
    r = python("""
        import os
        import numba
        import numpy as np
        from numba import njit, prange
        from fastbp._numba import mkl as _mkl
        from fastbp.engine.products import Mkl, matmul_nt

        @njit(parallel=True)
        def population(A, W, Z, mm):
            for t in prange(A.shape[0]):
                matmul_nt(A[t], W[t], Z[t], mm)

        rng = np.random.default_rng(0)
        A, W = rng.random((4, 256, 512), np.float32), rng.random((4, 512, 512), np.float32)
        Z = np.empty((4, 256, 512), np.float32)
        population(A[:1], W[:1], Z[:1], Mkl(0, 1, 0))  # compile; Numba's pool is started
        before = len(os.listdir("/proc/self/task"))
        population(A, W, Z, Mkl(0, 1, 0))
        alone = len(os.listdir("/proc/self/task"))
        ok = all(np.allclose(Z[t], A[t] @ W[t].T, rtol=1e-4) for t in range(4))
        matmul_nt(A[0], W[0], Z[0], Mkl(0, 2, 0))
        threaded = len(os.listdir("/proc/self/task"))
        if numba.threading_layer() == "omp":
            from numba.np.ufunc import omppool
            vendor = omppool.openmp_vendor
        else:
            vendor = "-"
        print(ok, before, alone, threaded, numba.threading_layer(), vendor, _mkl.threading_layer())
    """, env={"NUMBA_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "MKL_THREADING_LAYER": layer})
    output = r.stdout + r.stderr
    if r.returncode != 0 and "Cannot load" in output:  # MKL: "oneMKL FATAL ERROR: Cannot load libmkl_tbb_thread"
        pytest.skip(f"MKL's {layer} threading layer does not load here: "
                    f"{next(ln for ln in output.splitlines() if 'Cannot load' in ln).strip()}")
    assert r.returncode == 0, r.stderr[-3000:]
    ok, before, alone, threaded, numba_layer, vendor, mkl_layer = r.stdout.split()
    assert ok == "True" and mkl_layer == layer and int(alone) == int(before)
    shares = {"GNU": numba_layer == "omp" and vendor == "GNU", "TBB": numba_layer == "tbb"}[layer]
    if shares:
        assert int(threaded) == int(before), (numba_layer, vendor)
    elif not (layer == "GNU" and numba_layer == "omp"):  # GNU OpenMP beside another vendor's: either may hold
        assert int(threaded) > int(before), (numba_layer, vendor)


# ----------------------------------------------------------------------------- without Numba's private names


def test_fastbp_works_without_numbas_private_blas_helpers(tmp_path):
    """A Numba without numba.np.linalg's helpers (or numba_xxgemm): fastbp imports, the OpenBLAS engine takes
    its products through np.dot and the descent step apart, the compiled loops still split over threads."""
    out = run_py("""
        import sys, types
        import numba.np.linalg as real
        fake = types.ModuleType(real.__name__)
        fake.__dict__.update({k: v for k, v in vars(real).items()
                              if k not in ("check_blas_return", "ensure_blas", "get_blas_kind")})
        sys.modules[real.__name__] = fake
        import fastbp
        from fastbp.engine import products
        sys.modules[real.__name__] = real
        import numpy as np
        from fastbp.engine.kernels import _descend_layer
        from fastbp.engine.products import Blas, Loops, matmul_nt
        rng = np.random.default_rng(0)
        A, W, D = rng.random((64, 96)), rng.random((32, 96)), rng.random((64, 32))
        W2 = W.copy()
        _descend_layer(D, A, W2, np.empty_like(W), 0.5, Blas(0))
        Z = np.empty((64, 32))
        matmul_nt(A, W, Z, Loops(2))
        print(products._XXGEMM, np.allclose(W2, W - 0.5 * D.T @ A), np.allclose(Z, A @ W.T))
    """, env={"NUMBA_CACHE_DIR": str(tmp_path)})  # compiled afresh, as after a Numba upgrade
    assert out.split() == ["False", "True", "True"]


# ----------------------------------------------------------------------------- thread counts

def test_fit_is_bitwise_the_same_on_one_and_two_threads():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 200)).astype(np.float32)
    y = rng.integers(0, 10, 300)
    params = fit_on_threads(lambda: fastbp.Network([200, 256, 64, 10], seed=0), X, y, epochs=2, batch_size=100,
                            lr=0.05)
    np.testing.assert_array_equal(params[0], params[1])


ENGINE_NAMES = [e for e in policy.ENGINES if e != "mkl" or _mkl.available()]


@pytest.mark.parametrize("engine", ENGINE_NAMES)
def test_training_is_bitwise_the_same_on_one_thread_and_two(engine):
    """On each engine, with products large enough for its threads, the trained parameters do not depend
    on the thread count: the compiled loops split the rows of each product; OpenBLAS and MKL split the
    output blocks of each product, every element computed by the same kernel in the same order (MKL's
    conditional-reproducibility mode is not needed for that here). OpenBLAS only where its own products are
    bitwise the same on one thread and two, which depends on the build and the CPU (SciPy's OpenBLAS 0.3.30
    on its Haswell kernels rounds differently on two threads): fastbp adds no dependence of its own, so where
    OpenBLAS's products differ, the trainings agree within float32's rounding."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    X = rng.standard_normal((512, 256)).astype(np.float32)
    y = rng.integers(0, 10, 512)
    build = lambda: fastbp.Network([256, 512, 10], seed=0)  # noqa: E731 - 128 x 256 x 512: 16.8 M multiply-adds
    kw = dict(epochs=1, batch_size=128, optimizer=fastbp.Adam(lr=1e-3))
    bitwise = True
    with force_engine(engine):
        if engine == "openblas":  # its own threads, not Numba's
            runs, products_ = [], []
            for t in (1, 2):
                with threadpool_limits(limits=t, user_api="blas"):
                    net = build()
                    net.fit(X, y, verbose=0, **kw)
                    runs.append(net.params.copy())
                    Z = np.empty((128, 512), np.float32)  # a first forward product, on the same inputs each time
                    products.matmul_nt(X[:128], build().weights(1), Z, Blas(0))
                    products_.append(Z)
            bitwise = np.array_equal(*products_)
        else:
            runs = fit_on_threads(build, X, y, **kw)
    if bitwise:
        np.testing.assert_array_equal(runs[0], runs[1])
    else:
        np.testing.assert_allclose(runs[0], runs[1], rtol=1e-3, atol=1e-6)


def test_small_networks_take_openblas_on_the_calling_thread_beside_another_blas(monkeypatch):
    """Where OpenBLAS beats the loops on small products but another BLAS wins the large ones, a network
    whose products all stay on OpenBLAS's calling thread (no pool to wake) uses OpenBLAS."""
    def point(shape, **seconds):
        return {"shape": list(shape), "macs": shape[0] * shape[1] * shape[2], "seconds": seconds}

    pts = [point((16, 16, 16), loops1=1.1, loops=1.1, openblas=0.6, mkl1=1.0, mkl=0.9),
           point((32, 128, 64), loops1=27, loops=27, openblas=17, mkl1=19, mkl=18),
           point((128, 784, 10), loops1=93, loops=94, openblas=113, mkl1=165, mkl=112),
           point((128, 784, 256), loops1=2265, loops=1134, openblas=870, mkl1=1589, mkl=843),
           point((256, 1024, 1024), loops1=37347, loops=19248, openblas=8950, mkl1=16780, mkl=8917)]
    d = calibration.decide(pts)
    assert d["blas"] == "mkl" and d["small_openblas"] == 16 ** 3
    r = calibration.Rule(d["blas"], {b: tuple(t) for b, t in d["thresholds"].items()}, d["mkl_parallel"], "test",
                         None, d["small_openblas"])
    monkeypatch.setattr(calibration, "rule", lambda: r)
    monkeypatch.setattr(_mkl, "available", lambda: True)
    assert engine_for([64, 32, 10], 32, 2410) == Blas(16 ** 3)  # largest product 65 k
    assert isinstance(engine_for([784, 256, 128, 10], 128, 235146), Mkl)
    assert engine_for([8, 4, 2], 4, 46) is None  # below the small threshold: the loops on one core
    # Past OpenBLAS's own one-thread limit and below SERIAL_MACS: OpenBLAS still (fit holds it to one thread),
    # but a population keeps such a network in the loops (its members call OpenBLAS from every core).
    assert engine_for([30, 100, 2], 200, 3302) == Blas(16 ** 3)  # largest product 600 k
    assert population_engine([30, 100, 2], 200, 3302) is None


def test_fit_holds_openblas_to_one_thread_for_a_small_network(monkeypatch):
    """A network that trains in OpenBLAS with products past OpenBLAS's own threading threshold (and below
    SERIAL_MACS) trains with OpenBLAS on one thread; the thread count is given back after fit."""
    pytest.importorskip("threadpoolctl")
    before = openblas_threads()
    if not before or before == {1}:
        pytest.skip("no OpenBLAS on more than one thread here")
    monkeypatch.setattr(policy, "engine_for", lambda *a, **k: Blas(4096))
    seen = []
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 30)).astype(np.float32)
    net = fastbp.Network([30, 100, 2], seed=0)
    net.fit(X, (X[:, 0] > 0).astype(int), epochs=2, batch_size=200, verbose=0,
            callbacks=[lambda net, epoch, logs: seen.append(openblas_threads())])
    assert seen == [{1}, {1}]
    assert openblas_threads() == before

"""Intel MKL's gemm for the compiled kernels (the optional ``mkl`` extra).

The ``mkl`` package ships ``libmkl_rt``; it is opened with ctypes (locally, so its
``cblas_*`` names do not interpose on any other library) and the few functions
the kernels call are registered with LLVM under names of fastbp's own
(``ll.add_symbol``), so compiled code calls them directly, with no Python in
between, and a kernel loaded from Numba's cache finds them as soon as this
module is imported.

Threads: MKL is set up once, before its first product, so that its threads and
Numba's share one scheduler where they can: its threading layer is TBB when
Numba's is (the ``mkl`` wheel brings TBB, and Numba then prefers it), else GNU
OpenMP, the runtime of Numba's ``omp`` layer; ``MKL_THREADING_LAYER`` in the
environment wins. Its thread count is Numba's unless ``MKL_NUM_THREADS`` says
otherwise. Each product then runs on
``mm.threads`` threads through MKL's thread-local setting, set around the call
and restored after it, so a product inside a population's ``prange`` stays on
the calling thread and never touches the setting of the thread that runs ``fit``.
"""

import ctypes
import ctypes.util
import functools
import glob
import importlib.metadata
import os
import sys

from llvmlite import binding as ll
from llvmlite import ir
from numba import errors, types
from numba.extending import intrinsic

# MKL's C enums (mkl_cblas.h, mkl_service.h).
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112
_LAYERS = {"INTEL": 0, "SEQUENTIAL": 1, "GNU": 3, "TBB": 4}

_SGEMM, _DGEMM, _SET_LOCAL = "fastbp_mkl_sgemm", "fastbp_mkl_dgemm", "fastbp_mkl_set_num_threads_local"


def _candidates():
    """Paths where libmkl_rt may be: the files of the ``mkl`` distribution, then the loader's search."""
    try:
        files = importlib.metadata.files("mkl") or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for f in files:
        name = os.path.basename(str(f))
        if name.startswith(("libmkl_rt.so", "mkl_rt")) and not name.endswith(".a"):
            yield str(f.locate())
    yield from sorted(glob.glob(os.path.join(sys.prefix, "lib", "libmkl_rt.so*")))
    found = ctypes.util.find_library("mkl_rt")
    if found:
        yield found


@functools.cache
def library():
    """The set-up ``libmkl_rt`` (a ctypes handle) with its gemm registered for compiled code, or None."""
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
            fns = [lib.cblas_sgemm, lib.cblas_dgemm, lib.MKL_Set_Num_Threads_Local]
        except (OSError, AttributeError):
            continue
        _set_up(lib)
        for name, fn in zip((_SGEMM, _DGEMM, _SET_LOCAL), fns):
            ll.add_symbol(name, ctypes.cast(fn, ctypes.c_void_p).value)
        lib.fastbp_path = path
        return lib
    return None


def _set_up(lib):
    """MKL's threading layer and thread count, before its first product (see the module's docstring)."""
    import numba

    if "MKL_THREADING_LAYER" not in os.environ:
        lib.MKL_Set_Threading_Layer(ctypes.c_int(_LAYERS[threading_layer()]))
    if "MKL_NUM_THREADS" not in os.environ:
        lib.MKL_Set_Num_Threads(ctypes.c_int(numba.config.NUMBA_NUM_THREADS))


@functools.cache
def installed():
    """Whether a libmkl_rt is there to load (without loading it: cheap)."""
    return any(os.path.exists(p) for p in _candidates())


def threading_layer():
    """MKL's threading layer for this process: $MKL_THREADING_LAYER, else TBB beside Numba's TBB layer, else GNU."""
    import numba

    if "MKL_THREADING_LAYER" in os.environ:
        return os.environ["MKL_THREADING_LAYER"].upper()
    numba.get_num_threads()  # starts Numba's pool, which fixes its layer
    return "TBB" if numba.threading_layer() == "tbb" else "GNU"


def available():
    """Whether MKL's libmkl_rt could be loaded."""
    return library() is not None


def version():
    """MKL's version string, or None when it is not installed."""
    lib = library()
    if lib is None:
        return None
    buf = ctypes.create_string_buffer(256)
    lib.MKL_Get_Version_String(buf, ctypes.c_int(len(buf)))
    return buf.value.decode(errors="replace").strip()


def _function(builder, fnty, name):
    """The declaration of C function ``name`` in the module being built."""
    fn = builder.module.globals.get(name)
    return fn if fn is not None else ir.Function(builder.module, fnty, name)


def _ptr(builder, context, aryty, value):
    return builder.bitcast(context.make_array(aryty)(context, builder, value).data, ir.IntType(8).as_pointer())


@intrinsic
def gemm(typingctx, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
    """cblas_?gemm(RowMajor, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc) of MKL on ``C``'s dtype:
    ``ta``/``tb`` are NO_TRANS or TRANS; sizes and leading dimensions (in elements) must fit 32 bits."""
    arrays = (A, B, C)
    if not (all(isinstance(t, types.Array) and t.ndim == 2 and t.dtype == C.dtype for t in arrays)
            and C.dtype in (types.float32, types.float64) and isinstance(alpha, types.Float)
            and isinstance(beta, types.Float)
            and all(isinstance(t, types.Integer) for t in (ta, tb, m, n, k, lda, ldb, ldc))):
        return None
    if library() is None:
        raise errors.TypingError('the Mkl engine needs MKL: pip install "fastbp[mkl]"')

    def codegen(context, builder, sig, args):
        dtype = sig.args[11].dtype
        fl = context.get_value_type(dtype)
        i32, void_p = ir.IntType(32), ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [i32] * 6 + [fl, void_p, i32, void_p, i32, fl, void_p, i32])
        fn = _function(builder, fnty, _SGEMM if dtype == types.float32 else _DGEMM)

        def i(j):
            return builder.trunc(context.cast(builder, args[j], sig.args[j], types.int64), i32)

        def f(j):
            return context.cast(builder, args[j], sig.args[j], dtype)

        builder.call(fn, (ir.Constant(i32, ROW_MAJOR), i(0), i(1), i(2), i(3), i(4), f(5),
                          _ptr(builder, context, sig.args[6], args[6]), i(7),
                          _ptr(builder, context, sig.args[8], args[8]), i(9), f(10),
                          _ptr(builder, context, sig.args[11], args[11]), i(12)))
        return context.get_dummy_value()

    return types.void(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc), codegen


@intrinsic
def set_num_threads_local(typingctx, nt):
    """MKL_Set_Num_Threads_Local(nt): MKL's thread count on the calling thread (0: the global one); the previous."""
    if not isinstance(nt, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        i32 = ir.IntType(32)
        fn = _function(builder, ir.FunctionType(i32, [i32]), _SET_LOCAL)
        res = builder.call(fn, (builder.trunc(context.cast(builder, args[0], sig.args[0], types.int64), i32),))
        return builder.sext(res, ir.IntType(64))

    return types.int64(nt), codegen

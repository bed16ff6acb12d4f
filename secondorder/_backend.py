"""Array namespaces and kernel tables.

Solver code is written once against an array namespace ``xp`` (``numpy`` or
``cupy``) obtained from the user's arrays with :func:`get_namespace`.  The hot
loops live in three kernel packages with the same function names:

``secondorder._kernels.cpu``
    numba kernels (compiled lazily on first call, cached on disk);
``secondorder._kernels.gpu``
    numba-CUDA kernels launched on CuPy arrays;
``secondorder._kernels.fallback``
    namespace-generic (NumPy/CuPy) versions of every kernel, used for
    testing, when numba is disabled or missing, and for each kernel a
    package has no version of its own.

:func:`kernels` returns the table that fits a namespace.

Environment switches, read each time a table is requested so tests can flip
them:

``SECONDORDER_DISABLE_NUMBA=1``
    use the NumPy fallback instead of numba on the CPU;
``SECONDORDER_DISABLE_CUPY=1``
    never import CuPy, even when it is installed.
"""

import contextlib
import importlib
import os
import sys
import types

import numpy as np

__all__ = [
    "get_namespace",
    "set_backend",
    "backend",
    "kernels",
    "use_kernels",
    "numba_enabled",
    "cupy_available",
    "is_cupy",
    "jit",
    "one_blas_thread",
    "populated",
    "backend_info",
]

# The fastmath flags we allow: everything except ``nnan`` and ``ninf``, which
# would let LLVM delete the NaN/inf guards that every solver relies on.
FASTMATH = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})

_TRUTHY = {"1", "true", "yes", "on"}
_BACKENDS = ("numpy", "cupy")
_tables = {}
_cupy_state = {}
_forced = {"name": None, "kernels": None}


def _env_flag(name):
    return os.environ.get(name, "").strip().lower() in _TRUTHY


def numba_enabled():
    """Whether numba kernels are used on the CPU.

    False when ``SECONDORDER_DISABLE_NUMBA`` is set or numba cannot be
    imported (a numba/NumPy version clash must not take the package down).
    """
    if _env_flag("SECONDORDER_DISABLE_NUMBA"):
        return False
    try:
        import numba  # noqa: F401
    except Exception:
        return False
    return True


def _import_cupy():
    """Return the cupy module when it is importable and a device is usable."""
    if _env_flag("SECONDORDER_DISABLE_CUPY"):
        return None
    if "module" not in _cupy_state:
        module = None
        try:
            import cupy

            # Importing cupy succeeds without a driver; only a real allocation
            # and a kernel launch prove that the device is usable.
            if cupy.cuda.runtime.getDeviceCount() > 0:
                int((cupy.arange(2) + 1).sum())
                module = cupy
        except Exception:
            module = None
        _cupy_state["module"] = module
    return _cupy_state["module"]


def cupy_available():
    """Whether CuPy is installed, enabled and has a usable device."""
    return _import_cupy() is not None


def is_cupy(xp):
    """Whether ``xp`` (a namespace) is CuPy."""
    return getattr(xp, "__name__", "").split(".")[0] == "cupy"


def _array_module_name(a):
    module = type(a).__module__.split(".")[0]
    if module == "cupy" or module == "cupyx":
        return "cupy"
    if module == "numpy" or isinstance(a, (list, tuple)):
        return "numpy"
    from array_api_compat import is_array_api_obj

    # any other array-API library (PyTorch, JAX, array-api-strict) is its own namespace
    return module if is_array_api_obj(a) else "numpy"


def set_backend(name):
    """Force the backend of every solver, or go back to choosing it from the
    inputs.

    Parameters
    ----------
    name : {"numpy", "cupy", None}
        ``"numpy"``: run on the CPU; CuPy inputs are an error.  ``"cupy"``:
        run on the GPU; NumPy inputs are moved to the device where a solver
        receives them (once, at its entry), and the callables must then take
        and return CuPy arrays.  ``None`` (or ``"auto"``): the backend of
        the input arrays, the default.

    Returns
    -------
    str or None
        The previous setting, so that it can be restored.

    See Also
    --------
    backend : the same as a context manager.
    """
    if name == "auto":
        name = None
    if name is not None and name not in _BACKENDS:
        raise ValueError(f"`name` must be 'numpy', 'cupy' or None (from the inputs); got {name!r}.")
    if name == "cupy" and _import_cupy() is None:
        raise RuntimeError(
            "set_backend('cupy') needs CuPy with a usable CUDA device, but CuPy is not installed, is disabled "
            "(SECONDORDER_DISABLE_CUPY) or finds no device. Install it with pip install 'secondorder[gpu]'."
        )
    previous = _forced["name"]
    _forced["name"] = name
    return previous


@contextlib.contextmanager
def backend(name):
    """Context manager form of :func:`set_backend`::

        with secondorder.backend("numpy"):
            res = secondorder.minimize(...)
    """
    previous = set_backend(name)
    try:
        yield
    finally:
        _forced["name"] = previous


def get_namespace(*arrays):
    """Return the array namespace of ``arrays``.

    NumPy arrays (and lists, scalars) give the ``numpy`` module, CuPy arrays
    the ``cupy`` module (their fast paths: numba and CUDA kernels); arrays of
    any other library of the Python array API standard (PyTorch, JAX,
    array-api-strict) give its namespace from
    :func:`array_api_compat.array_namespace`, and results come back in it.
    ``None`` entries and Python scalars are ignored.  A backend forced with
    :func:`set_backend` wins over the inputs' own (and applies to NumPy and
    CuPy arrays).

    Raises
    ------
    TypeError
        When arrays of different libraries are mixed, or other arrays meet
        a forced backend.
    """
    names = set()
    others = []
    for a in arrays:
        if a is None or isinstance(a, (int, float, complex, bool)):
            continue
        name = _array_module_name(a)
        names.add(name)
        if name not in _BACKENDS:
            others.append(a)
    if len(names) > 1:
        raise TypeError(
            f"All array inputs must come from one array library, but {' and '.join(sorted(names))} arrays were "
            "mixed. Convert them to one library first (for NumPy and CuPy: cupy.asarray(a) or cupy.asnumpy(a))."
        )
    forced = _forced["name"]
    if others:
        if forced is not None:
            raise TypeError(
                f"The backend is forced to {forced!r} (set_backend) but {names.pop()} arrays were passed; "
                "call set_backend(None) to compute in their own library."
            )
        from array_api_compat import array_namespace

        return array_namespace(*others)
    if forced == "numpy":
        if names == {"cupy"}:
            raise TypeError(
                "The backend is forced to NumPy (set_backend('numpy')) but CuPy arrays were passed; "
                "move them to the host with cupy.asnumpy(a), or call set_backend(None)."
            )
        return np
    if forced == "cupy" or names == {"cupy"}:
        cupy = _import_cupy()
        if cupy is None:
            raise RuntimeError(
                "CuPy arrays were passed (or set_backend('cupy') is in force) but CuPy is disabled "
                "(SECONDORDER_DISABLE_CUPY) or no CUDA device is usable."
            )
        return cupy
    return np


def _table_name(xp):
    if _forced["kernels"] is not None:
        return _forced["kernels"]
    if is_cupy(xp):
        return "gpu"
    if xp is not np:  # another array-API library: the generic kernels, in its namespace
        return "fallback"
    return "cpu" if numba_enabled() else "fallback"


def kernels(xp=np, name=None):
    """The kernel table for namespace ``xp``.

    Parameters
    ----------
    xp : module
        ``numpy`` or ``cupy``.
    name : {"cpu", "gpu", "fallback"}, optional
        Force a table (tests compare the numba table with the fallback).

    Returns
    -------
    types.SimpleNamespace
        Every public kernel of the chosen package, by name.
    """
    name = name or _table_name(xp)
    if name not in _tables:
        from ._kernels import NAMES

        package = importlib.import_module(f"secondorder._kernels.{name}")
        fallback = importlib.import_module("secondorder._kernels.fallback")
        own = set(package.__all__)
        # one list of names; a package without its own version of a kernel takes the generic one
        table = {k: getattr(package if k in own else fallback, k) for k in NAMES}
        _tables[name] = types.SimpleNamespace(__name__=name, **table)
    return _tables[name]


@contextlib.contextmanager
def use_kernels(name):
    """Run every solver with the kernel table ``name`` whatever the arrays
    (``"cpu"``, ``"gpu"``, ``"fallback"``; ``None``: chosen from the arrays).

    For tests and benchmarks: with ``NUMBA_ENABLE_CUDASIM=1``,
    ``use_kernels("gpu")`` runs the CUDA kernels in numba's simulator on
    NumPy arrays, end to end through the solvers.
    """
    if name not in (None, "cpu", "gpu", "fallback"):
        raise ValueError(f"`name` must be 'cpu', 'gpu', 'fallback' or None; got {name!r}.")
    previous = _forced["kernels"]
    _forced["kernels"] = name
    try:
        yield
    finally:
        _forced["kernels"] = previous


def jit(func=None, *, parallel=False, error_model="python", fastmath=True):
    """Compile ``func`` with numba: lazily, cached on disk, NaN-safe fastmath.

    No signature is given, so nothing is compiled at import; the first call
    compiles (or loads from ``NUMBA_CACHE_DIR``) the specialisation it needs.
    ``error_model="numpy"`` drops the test for division by zero that
    Python's semantics put before every division (IEEE results instead):
    a loop that divides then vectorises.  ``fastmath=False`` compiles
    strict IEEE arithmetic: for control flow that tests values for inf
    (with all of :data:`FASTMATH` together, LLVM has folded
    ``math.isfinite`` of a sum that overflowed to True).
    """
    import numba

    flags = set(FASTMATH) if fastmath else False

    def wrap(f):
        return numba.njit(f, cache=True, fastmath=flags, parallel=parallel, nogil=True, error_model=error_model)

    return wrap if func is None else wrap(func)


_threadpools = {}


def one_blas_thread():
    """A context in which BLAS runs on one thread: around loops that
    alternate the numba kernels (parallel over their own threads) with small
    BLAS calls.  BLAS threads spin after each call and take the cores from
    the numba threads that follow (a sparse Newton stage ran 1.9x faster with
    one BLAS thread); the BLAS calls in such loops are too small to gain from
    threads."""
    from threadpoolctl import ThreadpoolController

    if "controller" not in _threadpools:
        _threadpools["controller"] = ThreadpoolController()  # inspects the loaded libraries once
    return _threadpools["controller"].limit(limits=1, user_api="blas")


# madvise's advice that maps a range's pages for writing (Linux 5.14 and later)
_MADV_POPULATE_WRITE = 23
_libc = {}


def populated(shape, dtype):
    """An uninitialised NumPy array whose pages are mapped at once, in one
    system call, where the system can (Linux 5.14 and later); else a plain
    ``np.empty``.

    For a large array that the caller will write whole: on a virtual machine
    that hands freed memory back to its host, a page first written seconds
    after the process freed memory costs up to 2 ms per MB (this machine: 0.07
    s for 800 MB freed a moment before, 0.4-1.7 s for the same once handed
    back).  Mapped when made, the array takes the pages while they are cheap;
    it costs no memory that writing it would not."""
    out = np.empty(shape, dtype=dtype)
    if out.nbytes < 1 << 26 or not sys.platform.startswith("linux"):
        return out
    if "madvise" not in _libc:
        import ctypes

        try:
            madvise = ctypes.CDLL(None, use_errno=True).madvise
            madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        except (OSError, AttributeError):
            madvise = None
        _libc["madvise"] = madvise
    madvise = _libc["madvise"]
    if madvise is not None:
        start = out.ctypes.data & ~4095  # page-aligned
        madvise(start, out.ctypes.data + out.nbytes - start, _MADV_POPULATE_WRITE)  # an older kernel: EINVAL, no harm
    return out


def backend_info():
    """A dict describing versions, backends and numba settings."""
    import platform

    import scipy

    info = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "numba": None,
        "numba_enabled": numba_enabled(),
        "numba_threads": None,
        "numba_threading_layer": None,
        "numba_cache_dir": None,
        "cupy": None,
        "cupy_device": None,
        "cpu_kernels": _table_name(np),
        "forced_backend": _forced["name"] or "auto (from the inputs)",
    }
    try:
        import numba

        info["numba"] = numba.__version__
        info["numba_threads"] = numba.config.NUMBA_NUM_THREADS
        info["numba_threading_layer"] = numba.config.THREADING_LAYER
        info["numba_cache_dir"] = numba.config.CACHE_DIR or "(next to each module, in __pycache__)"
    except Exception:
        pass
    cupy = _import_cupy()
    if cupy is not None:
        info["cupy"] = cupy.__version__
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        name = props["name"]
        info["cupy_device"] = name.decode() if isinstance(name, bytes) else str(name)
    else:
        try:
            import cupy

            info["cupy"] = f"{cupy.__version__} (no usable device)"
        except Exception:
            pass
    return info

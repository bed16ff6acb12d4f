import numpy as np
import pytest
from numpy.testing import assert_allclose

from secondorder import _backend
from secondorder._backend import get_namespace, kernels


class _FakeCupyArray:
    """Stands in for a cupy.ndarray: only its module name matters."""


_FakeCupyArray.__module__ = "cupy._core.core"


def test_namespace_numpy_and_array_likes():
    assert get_namespace(np.ones(3), [1.0, 2.0], None, 3.0) is np
    assert get_namespace() is np


def test_mixing_numpy_and_cupy_is_an_error():
    with pytest.raises(TypeError, match="mixed"):
        get_namespace(np.ones(2), _FakeCupyArray())


def test_cupy_array_without_usable_cupy(monkeypatch):
    monkeypatch.setenv("SECONDORDER_DISABLE_CUPY", "1")
    assert not _backend.cupy_available()
    with pytest.raises(RuntimeError, match="CuPy"):
        get_namespace(_FakeCupyArray())


def test_kernel_tables_share_names():
    import importlib

    cpu = importlib.import_module("secondorder._kernels.cpu")
    fallback = importlib.import_module("secondorder._kernels.fallback")
    gpu = importlib.import_module("secondorder._kernels.gpu")
    from secondorder._kernels import NAMES

    assert sorted(fallback.__all__) == sorted(NAMES)
    assert set(cpu.__all__) <= set(NAMES) and set(gpu.__all__) <= set(NAMES)
    for name in ("cpu", "gpu", "fallback"):
        table = kernels(name=name)
        assert all(callable(getattr(table, k)) for k in NAMES)


def test_disable_numba_switch(monkeypatch):
    monkeypatch.setenv("SECONDORDER_DISABLE_NUMBA", "1")
    assert not _backend.numba_enabled()
    assert kernels(np).__name__ == "fallback"
    monkeypatch.delenv("SECONDORDER_DISABLE_NUMBA")
    assert _backend.numba_enabled()
    assert kernels(np).__name__ == "cpu"


def test_jit_keeps_nan_checks():
    def count_nan(a):
        n = 0
        for v in a:
            if np.isnan(v) or np.isinf(v):
                n += 1
        return n

    f = _backend.jit(count_nan)
    assert f(np.array([1.0, np.nan, np.inf, 2.0])) == 2


def test_backend_info_fields():
    info = _backend.backend_info()
    for key in ("numpy", "scipy", "numba", "numba_threads", "numba_cache_dir", "cupy", "cpu_kernels"):
        assert key in info


def _random_case(rng, n, kind):
    w = rng.standard_normal(n) * 10
    b = rng.standard_normal(n)
    if kind == "pd":
        w = np.abs(w) + 0.1
    elif kind == "hard":
        w[3] = w.min() - 1.0
        b[3] = 0.0
    elif kind == "zero-gradient":
        b[:] = 0.0
    return w, b


@pytest.mark.parametrize("kind", ["pd", "indefinite", "hard", "zero-gradient"])
@pytest.mark.parametrize("radius", [1e-3, 0.5, 10.0, 1e4])
def test_trust_region_eig_numba_equals_fallback_and_is_optimal(kind, radius):
    rng = np.random.default_rng(7)
    w, b = _random_case(rng, 40, kind)
    c_ref, s_ref, h_ref = kernels(name="fallback").trust_region_eig(w, b, radius)
    c, s, h = kernels(name="cpu").trust_region_eig(w, b, radius)
    assert h == h_ref
    assert_allclose(s, s_ref, rtol=1e-10, atol=1e-12)
    if not h:  # the hard-case step is unique only up to the eigenvector's sign
        assert_allclose(c, c_ref, rtol=1e-10, atol=1e-12)
    # Moré-Sorensen optimality: (w + sigma) c = -b, w + sigma >= 0,
    # ||c|| <= radius, sigma (||c|| - radius) = 0.
    norm = np.linalg.norm(c)
    assert norm <= radius * (1 + 1e-10)
    assert s >= 0 and np.all(w + s >= -1e-12)
    assert abs(s * (norm - radius)) <= 1e-8 * max(1.0, s) * radius
    assert_allclose((w + s) * c, -b, atol=1e-9 * max(1.0, np.abs(b).max()))


def test_forced_numpy_backend_rejects_cupy_and_restores():
    import secondorder

    assert _backend._forced["name"] is None
    with secondorder.backend("numpy"):
        assert get_namespace(np.ones(2)) is np
        with pytest.raises(TypeError, match="forced to NumPy"):
            get_namespace(_FakeCupyArray())
        res = secondorder.minimize(lambda x: float(x @ x), np.ones(3), jac=lambda x: 2 * x, hess=lambda x: 2 * np.eye(3))
        assert res.success
    assert _backend._forced["name"] is None
    # the forced setting is restored after an error too
    with pytest.raises(RuntimeError):
        with secondorder.backend("numpy"):
            raise RuntimeError("inside")
    assert _backend._forced["name"] is None


def test_forced_cupy_without_a_device_is_a_clear_error(monkeypatch):
    import secondorder

    monkeypatch.setenv("SECONDORDER_DISABLE_CUPY", "1")
    with pytest.raises(RuntimeError, match="set_backend\\('cupy'\\) needs CuPy"):
        secondorder.set_backend("cupy")
    assert _backend._forced["name"] is None


def test_set_backend_names():
    import secondorder

    with pytest.raises(ValueError, match="'numpy', 'cupy' or None"):
        secondorder.set_backend("torch")
    previous = secondorder.set_backend("numpy")
    assert previous is None
    assert secondorder.set_backend("auto") == "numpy"
    assert _backend._forced["name"] is None
    assert "forced_backend" in _backend.backend_info()


@pytest.mark.gpu
def test_forced_cupy_moves_numpy_inputs_to_the_device():
    import cupy

    import secondorder

    with secondorder.backend("cupy"):
        assert get_namespace(np.ones(2)) is cupy
        P = secondorder.ot.sinkhorn([], [], np.random.default_rng(0).random((20, 20)), 0.1)
    assert type(P).__module__.startswith("cupy")


def test_one_blas_thread_limits_blas_inside_only():
    from threadpoolctl import threadpool_info

    from secondorder._backend import one_blas_thread

    def blas_threads():
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    before = blas_threads()
    with one_blas_thread():
        assert all(t == 1 for t in blas_threads())
    assert blas_threads() == before


@pytest.mark.parametrize("shape, dtype", [((3, 4), np.float64), ((4096, 4096), np.float32), ((2**24 + 3,), np.float64)])
def test_populated_is_a_writable_empty_array(shape, dtype):
    """Large or small, ``populated`` is an ``np.empty`` of that shape and
    dtype (its pages mapped where the system can): C-ordered, writable, its
    own memory."""
    out = _backend.populated(shape, dtype)
    assert out.shape == shape and out.dtype == dtype and out.flags.c_contiguous and out.flags.writeable
    assert out.base is None or out.base.nbytes == out.nbytes
    out.fill(1.5)
    assert float(out.reshape(-1)[-1]) == 1.5

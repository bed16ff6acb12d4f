"""The CUDA kernels, run by numba's simulator on the CPU (the test suite sets
NUMBA_ENABLE_CUDASIM=1 where no device is found): each kernel equals the
CPU kernel, and the solvers give the CPU results end to end with the GPU
table.  Small problems only: the simulator runs every thread as Python."""

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal

from secondorder._backend import cupy_available, kernels, use_kernels

pytest.importorskip("numba.cuda")
_cuda = pytest.importorskip("secondorder._kernels.gpu._cuda")

pytestmark = [
    pytest.mark.cudasim,
    pytest.mark.skipif(not (_cuda.SIMULATED or cupy_available()), reason="neither numba's CUDA simulator nor a device"),
    pytest.mark.filterwarnings("ignore::numba.core.errors.NumbaPerformanceWarning"),
]

GPU = kernels(name="gpu")
CPU = kernels(name="cpu")


def _tol(dtype):
    return 1e-12 if dtype == np.float64 else 1e-5


def test_the_gpu_table_has_its_own_kernels():
    for name in ("lse_rows", "lse_cols", "scaled_kernel", "transport_cost", "sns_eval", "logistic_grad",
                 "softmax_grad", "softmax_hessp", "chol_drop_first_upper"):
        assert getattr(GPU, name).__module__.startswith("secondorder._kernels.gpu"), name


@pytest.mark.parametrize("n, m", [(37, 45), (5, 70), (33, 1)])
def test_sinkhorn_kernels_equal_the_cpu_kernels(n, m, dtype):
    rng = np.random.default_rng(n)
    M = rng.random((n, m)).astype(dtype)
    f, g, reg = 0.1 * rng.standard_normal(n), 0.1 * rng.standard_normal(m), 0.05
    g[0] = -np.inf if m > 1 else 0.0  # a column without mass
    tol = _tol(dtype)
    assert_allclose(GPU.lse_rows(M, g, reg, np.empty(n)), CPU.lse_rows(M, g, reg, np.empty(n)), rtol=tol)
    assert_allclose(GPU.lse_cols(M, f, reg, np.empty(m)), CPU.lse_cols(M, f, reg, np.empty(m)), rtol=tol)
    g[0] = 0.0
    P = CPU.scaled_kernel(M, f, g, reg, np.empty((n, m)))
    assert_allclose(GPU.scaled_kernel(M, f, g, reg, np.empty((n, m))), P, rtol=tol)
    assert GPU.transport_cost(M, f, g, reg) == pytest.approx(CPU.transport_cost(M, f, g, reg), rel=tol)
    for delta, cap in [(1e-3, m), (1e-2, min(3, m)), (1e-6, 1)]:
        got, ref = GPU.sns_eval(M, f, g, reg, delta, cap), CPU.sns_eval(M, f, g, reg, delta, cap)
        assert_allclose(got[0], ref[0], rtol=tol)  # row sums
        assert_allclose(got[1], ref[1], rtol=tol)  # column sums
        assert_array_equal(got[2], ref[2])  # kept per row
        assert_array_equal(got[3], ref[3])  # threshold raises
        keep = np.arange(cap)[None, :] < got[2][:, None]
        assert_array_equal(got[4][keep], ref[4][keep])
        assert_allclose(got[5][keep], ref[5][keep], rtol=tol)


def test_lse_propagates_nan():
    M = np.ones((4, 40))
    M[2, 7] = np.nan
    out = GPU.lse_rows(M, np.zeros(40), 1.0, np.empty(4))
    assert np.isnan(out[2]) and np.isfinite(np.delete(out, 2)).all()
    assert np.isnan(GPU.lse_cols(M, np.zeros(4), 1.0, np.empty(40))[7])


@pytest.mark.parametrize("sparse", [False, True])
def test_glm_kernels_equal_the_cpu_kernels(sparse, dtype):
    rng = np.random.default_rng(1)
    n, d, K = 70, 6, 4
    X = rng.standard_normal((n, d)).astype(dtype)
    X[rng.random((n, d)) < 0.5] = 0.0
    sw = rng.random(n) + 0.5
    tol = _tol(dtype)
    y2 = (rng.random(n) < 0.4).astype(np.float64)
    coef = rng.standard_normal(d).astype(dtype) * 3.0
    yk = rng.integers(0, K, n)
    W = rng.standard_normal((K, d)).astype(dtype)
    bK = rng.standard_normal(K)
    V, vb = rng.standard_normal((K, d)).astype(dtype), rng.standard_normal(K)
    if sparse:
        Xs = sp.csr_matrix(X)
        args = (Xs.data, Xs.indices, Xs.indptr, d)
        logistic, softmax, hessp, gram = "logistic_grad_csr", "softmax_grad_csr", "softmax_hessp_csr", "gram_matvec_csr"
    else:
        args = (X,)
        logistic, softmax, hessp, gram = "logistic_grad", "softmax_grad", "softmax_hessp", "gram_matvec"
    out = []
    for table in (GPU, CPU):
        r, h = np.empty(n), np.empty(n)
        loss, grad = getattr(table, logistic)(*args, y2, sw, coef, 0.3, r, h)
        P = np.empty((n, K))
        sloss, sgrad, sgrad_b = getattr(table, softmax)(*args, yk, sw, W, bK, P)
        products = [getattr(table, hessp)(*args, yk, sw, P, V, vb, mode) for mode in (0, 1, 2)]
        gv = getattr(table, gram)(*args, h, coef, 0.2)
        out.append([loss, grad, r, h, sloss, sgrad, sgrad_b, P] + [a for pr in products for a in pr] + list(gv))
    for a, b in zip(*out):
        assert_allclose(a, b, rtol=tol, atol=tol * 1e-2)


@pytest.mark.parametrize("n", [1, 2, 7, 40])
def test_cholesky_drop_equals_the_cpu_kernel(n):
    rng = np.random.default_rng(n)
    B = rng.standard_normal((n + 3, n))
    U = np.linalg.cholesky(B.T @ B + np.eye(n)).T.copy()
    got = GPU.chol_drop_first_upper(U.copy(), n)
    ref = CPU.chol_drop_first_upper(U.copy(), n)
    assert_allclose(np.triu(got[: n - 1, : n - 1]), np.triu(ref[: n - 1, : n - 1]), rtol=1e-13, atol=1e-14)


# ------------------------------------------------------------- end to end
@pytest.mark.parametrize("method", ["sns", "sinkhorn_log"])
def test_sinkhorn_solvers_with_the_gpu_table(method):
    from secondorder import ot

    rng = np.random.default_rng(3)
    x, y = rng.random((24, 2)), rng.random((20, 2))
    a = rng.random(24) + 0.1
    a /= a.sum()
    b = np.full(20, 1 / 20)
    M = ot.dist(x, y)
    ref, ref_log = ot.sinkhorn(a, b, M, 0.05, method=method, log=True)
    with use_kernels("gpu"):
        P, log = ot.sinkhorn(a, b, M, 0.05, method=method, log=True)
        cost = ot.sinkhorn2(a, b, M, 0.05, method=method)
    assert_allclose(P, ref, rtol=1e-9, atol=1e-14)
    assert abs(log["niter"] - ref_log["niter"]) <= 1
    assert cost == pytest.approx(float(ot.sinkhorn2(a, b, M, 0.05, method=method)), rel=1e-9)


@pytest.mark.parametrize("method", ["sns", "sinkhorn_log"])
def test_grid_cost_with_the_gpu_table(method):
    # the GPU table's grid kernels are the generic ones; SNS's Newton stage runs its own CUDA kernels around them
    from secondorder import ot

    rng = np.random.default_rng(5)
    a, b = rng.random(30) + 0.1, rng.random(30)
    b[:4] = 0.0
    a, b = a / a.sum(), b / b.sum()
    ref = ot.sinkhorn(a, b, ot.grid_cost((5, 6)), 5e-3, method=method)
    with use_kernels("gpu"):
        P = ot.sinkhorn(a, b, ot.GridCost((5, 6)), 5e-3, method=method)
        cost = ot.sinkhorn2(a, b, ot.GridCost((5, 6)), 5e-3, method=method)
    assert_allclose(P, ref, rtol=1e-7, atol=1e-13)
    assert float(cost) == pytest.approx(float(np.sum(ref * ot.grid_cost((5, 6)))), rel=1e-8)


@pytest.mark.parametrize("estimator", ["LogisticRegression", "SoftmaxRegression"])
def test_estimators_with_the_gpu_table(estimator):
    pytest.importorskip("sklearn")
    from secondorder import linear_model

    rng = np.random.default_rng(4)
    X = rng.standard_normal((60, 5))
    y = rng.integers(0, 3, 60) if estimator == "SoftmaxRegression" else (X[:, 0] + rng.standard_normal(60) > 0)
    ref = getattr(linear_model, estimator)(tol=1e-10).fit(X, y)
    with use_kernels("gpu"):
        got = getattr(linear_model, estimator)(tol=1e-10).fit(X, y)
        proba = got.predict_proba(X)
    assert_allclose(got.coef_, ref.coef_, rtol=1e-8, atol=1e-10)
    assert_allclose(proba, ref.predict_proba(X), rtol=1e-8)


def test_mfac_window_with_the_gpu_table():
    from secondorder.curvature import MFAC

    rng = np.random.default_rng(5)
    grads = rng.standard_normal((11, 30))
    v = rng.standard_normal(30)
    ref = MFAC(4, damp=0.1)
    for g in grads:
        ref.update(None, g)
    with use_kernels("gpu"):
        got = MFAC(4, damp=0.1)
        for g in grads:  # the window wraps: the oldest gradient leaves the factor by the GPU rotations
            got.update(None, g)
        solved = got.solve(v)
    assert_allclose(solved, ref.solve(v), rtol=1e-10)


def test_gpu_bench_runs_its_rows_in_the_simulator():
    from benchmarks.harness_gpu import bench_gpu

    lines = []
    result = bench_gpu(ot_sizes=(12,), reg=0.05, glm_shape=(40, 3), mfac_shape=(30, 4), repeat=1, xp=np,
                       out=lines.append)
    assert result["bandwidth"] > 0
    assert not [line for line in lines if "failed" in line], lines
    assert sum("ms  floor" in line for line in lines) == 4, lines

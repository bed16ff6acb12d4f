"""GridCost: the separable grid cost, through the solvers that make their
passes on it, against the same solvers on the dense matrix."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from secondorder import ot
from secondorder._backend import kernels, use_kernels


def _images(shape, seed, empty=0.3):
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    a, b = rng.random(n), rng.random(n)
    a[rng.random(n) < empty] = 0.0
    b[rng.random(n) < empty] = 0.0
    return a / a.sum(), b / b.sum()


@pytest.mark.parametrize("metric", ["sqeuclidean", "cityblock"])
@pytest.mark.parametrize("shape,spacing", [((6, 9), None), ((11,), 0.5), ((4, 5), (0.3, 2.0))])
def test_toarray_is_grid_cost(metric, shape, spacing):
    C = ot.GridCost(shape, metric=metric, spacing=spacing)
    M = ot.grid_cost(shape, metric=metric, spacing=spacing)
    assert C.shape == M.shape and C.grid == tuple(np.atleast_1d(shape))
    assert_array_equal(C.toarray(), M)
    assert_array_equal(np.asarray(C), M)
    assert C.max == pytest.approx(M.max())
    assert "GridCost" in repr(C)


def test_grid_cost_checks_its_input():
    with pytest.raises(ValueError, match="metric.*grid_cost"):
        ot.GridCost((4, 4), metric="euclidean")
    with pytest.raises(TypeError, match="dtype"):
        ot.GridCost((4, 4), dtype=np.int64)
    with pytest.raises(ValueError, match="shape"):
        ot.GridCost((2, 3, 4))
    with pytest.raises(ValueError, match="spacing"):
        ot.GridCost((4, 4), spacing=(1.0,))
    a = np.full(16, 1 / 16)
    with pytest.raises(ValueError, match="`a` has 16 entries but M has 25 rows"):
        ot.sinkhorn(a, np.full(25, 1 / 25), ot.GridCost((5, 5)), 1e-2)
    with pytest.raises(ValueError, match="reg"):
        ot.sinkhorn(a, a, ot.GridCost((4, 4)), 0.0)


# the methods that pass on the grid, on three grids; the others (their dense matrix) on one
_CASES = [(m, shape, reg) for m in ("sns", "sinkhorn_log", "sinkhorn_epsilon_scaling")
          for shape, reg in (((7, 9), 1e-2), ((24,), 1e-3), ((12, 12), 2e-3))]
_CASES += [(m, (7, 9), 1e-2) for m in ("sinkhorn", "greenkhorn")]


@pytest.mark.parametrize("method,shape,reg", _CASES)
def test_solvers_on_grid_cost_match_dense(method, shape, reg):
    a, b = _images(shape, seed=len(shape) + int(1 / reg))
    dense = ot.grid_cost(shape)
    kw = dict(method=method, numItermax=500000 if method == "greenkhorn" else 50000, stopThr=1e-9, log=True)
    P0, log0 = ot.sinkhorn(a, b, dense, reg, **kw)
    P1, log1 = ot.sinkhorn(a, b, ot.GridCost(shape), reg, **kw)
    assert P1.shape == (a.size, b.size) and P1.dtype == np.float64
    assert log1["err"][-1] < 1e-9
    assert_allclose(P1, P0, rtol=1e-6, atol=1e-12)
    # zero-mass cells get exact zero rows and columns
    assert not P1[a == 0].any() and not P1[:, b == 0].any()
    c0 = ot.sinkhorn2(a, b, dense, reg, method=method, numItermax=kw["numItermax"])
    c1 = ot.sinkhorn2(a, b, ot.GridCost(shape), reg, method=method, numItermax=kw["numItermax"])
    assert isinstance(c1, np.float64)
    assert c1 == pytest.approx(float(c0), rel=1e-8)
    # the cost is the plan's <P, M>, computed without the plan
    assert c1 == pytest.approx(float(np.sum(P1 * dense)), rel=1e-10)


def test_sns_on_grid_takes_the_dense_solvers_steps():
    # same iterations as on the dense cost; the Newton stage's passes never form the n x n cost
    a, b = _images((16, 16), seed=3, empty=0.5)
    _, log0 = ot.sinkhorn(a, b, ot.grid_cost((16, 16)), 1e-3, log=True)
    _, log1 = ot.sinkhorn(a, b, ot.GridCost((16, 16)), 1e-3, log=True)
    assert log1["n_newton"] > 0
    assert abs(log1["niter"] - log0["niter"]) <= 2
    assert log1["err"][-1] < 1e-9


def test_float32_grid_cost_gives_float32_plan():
    a, b = _images((10, 10), seed=5)
    P = ot.sinkhorn(a, b, ot.GridCost((10, 10), dtype=np.float32), 1e-2)
    c = ot.sinkhorn2(a, b, ot.GridCost((10, 10), dtype=np.float32), 1e-2)
    assert P.dtype == np.float32 and isinstance(c, np.float32)
    assert_allclose(P, ot.sinkhorn(a, b, ot.grid_cost((10, 10)), 1e-2), rtol=1e-5, atol=1e-9)


def test_several_target_histograms_on_grid():
    a, _ = _images((6, 6), seed=7, empty=0.0)
    B = np.stack([_images((6, 6), seed=s)[1] for s in (8, 9)], axis=1)
    got = ot.sinkhorn2(a, B, ot.GridCost((6, 6)), 1e-2)
    want = ot.sinkhorn2(a, B, ot.grid_cost((6, 6)), 1e-2)
    assert_allclose(got, want, rtol=1e-9)


def test_fallback_kernels_on_grid():
    a, b = _images((9, 8), seed=11)
    want = ot.sinkhorn(a, b, ot.grid_cost((9, 8)), 2e-3)
    with use_kernels("fallback"):
        got = ot.sinkhorn(a, b, ot.GridCost((9, 8)), 2e-3)
        cost = ot.sinkhorn2(a, b, ot.GridCost((9, 8)), 2e-3)
    assert_allclose(got, want, rtol=1e-6, atol=1e-12)
    assert float(cost) == pytest.approx(float(np.sum(want * ot.grid_cost((9, 8)))), rel=1e-8)


def test_grid_kernels_numba_equal_fallback():
    cpu, ref = kernels(name="cpu"), kernels(name="fallback")
    rng = np.random.default_rng(0)
    h, w, reg = 7, 9, 3e-2
    C = ot.GridCost((h, w))
    N1, N2 = (-t / reg for t in C.tables)
    n = h * w
    G = rng.normal(size=n) * 3
    G[rng.random(n) < 0.2] = -np.inf  # cells off the support
    X = G.reshape(h, w)
    out = [np.empty((h, w)) for _ in range(4)]
    got, want = cpu.lse_axis(X, N2, out[0], out[1]), ref.lse_axis(X, N2, out[2], out[3])
    assert_allclose(got[0], want[0], rtol=1e-13)
    assert_array_equal(got[1], want[1])
    # the rows' largest exponent, from the stages' maxima
    Bmax = got[1]
    rowmax = np.empty((w, h))
    cpu.lse_axis(np.ascontiguousarray(Bmax.T), N1, np.empty((w, h)), rowmax)
    rowmax = rowmax.T.ravel()
    Nfull = (N1[:, None, :, None] + N2[None, :, None, :]).reshape(n, n)
    full = Nfull + G[None, :]
    assert_allclose(rowmax, full.max(axis=1), rtol=1e-13)
    rows = np.arange(0, n, 2, dtype=np.int64)
    F = rng.normal(size=rows.size)
    col_map = np.arange(n, dtype=np.int64) * 3  # any relabelling of the columns
    for delta, cap in [(1e-3, n), (1e-2, 8), (0.9, 3), (1e-6, 1)]:
        g = cpu.grid_kept(N1, N2, F, G, Bmax, rowmax[rows], rows, col_map, delta, cap)
        r = ref.grid_kept(N1, N2, F, G, Bmax, rowmax[rows], rows, col_map, delta, cap)
        assert_array_equal(g[0], r[0])
        assert_array_equal(g[1], r[1])
        keep = np.arange(cap)[None, :] < g[0][:, None]
        assert_array_equal(g[2][keep], r[2][keep])
        assert_allclose(g[3][keep], r[3][keep], rtol=1e-12)
        # the same rule as the dense kernel's, on the dense rows
        P = np.exp(F[:, None] + full[rows])
        for k in range(rows.size):
            s = g[1][k]
            t = P[k].max() * (delta * 10.0**s if s <= 6 and delta * 10.0**s < 1 else 1.0)
            cols = np.nonzero(P[k] >= t * (1 - 1e-12))[0][:cap]
            assert_array_equal(g[2][k, : g[0][k]], col_map[cols])
    cols = np.arange(1, n, 3, dtype=np.int64)
    Gs = rng.normal(size=cols.size)
    got = cpu.grid_plan(N1, N2, F, Gs, rows, cols, np.empty((rows.size, cols.size)))
    want = ref.grid_plan(N1, N2, F, Gs, rows, cols, np.empty((rows.size, cols.size)))
    assert_allclose(got, want, rtol=1e-13)
    assert_allclose(got, np.exp(F[:, None] + Gs[None, :] + Nfull[np.ix_(rows, cols)]), rtol=1e-12)


def test_images_at_small_reg_without_the_dense_cost():
    # 48 x 48 images, half their cells empty, at reg = 1e-3 of the largest cost: SNS on the grid cost
    # reaches the marginal error asked for, and its W2 matches the dense solve's
    side = 48
    a, b = _images((side, side), seed=13, empty=0.5)
    spacing = 1.0 / ((side - 1) * np.sqrt(2.0))  # largest cost 1
    c1, log1 = ot.sinkhorn2(a, b, ot.GridCost((side, side), spacing=spacing), 1e-3, log=True)
    c0 = ot.sinkhorn2(a, b, ot.grid_cost((side, side), spacing=spacing), 1e-3)
    assert log1["err"][-1] < 1e-9 and log1["n_newton"] > 0
    assert float(c1) == pytest.approx(float(c0), rel=1e-8)


def test_grid_cost_matches_pot():
    # POT's log-domain Sinkhorn on the dense grid cost: the plan and W2 of the GridCost solve
    pot = pytest.importorskip("ot")
    a, b = _images((9, 11), seed=17, empty=0.0)
    M = ot.grid_cost((9, 11))
    ref = pot.sinkhorn(a, b, M, 1e-2, method="sinkhorn_log", stopThr=1e-13, numItermax=100000)
    P = ot.sinkhorn(a, b, ot.GridCost((9, 11)), 1e-2, stopThr=1e-11)
    assert_allclose(P, ref, rtol=1e-6, atol=1e-12)
    assert float(ot.sinkhorn2(a, b, ot.GridCost((9, 11)), 1e-2, stopThr=1e-11)) == pytest.approx(
        float(np.sum(ref * M)), rel=1e-8)


def test_cost_rows_on_grid_equal_the_dense_cost():
    # the coarse level of SNS's preconditioner reads rows of the cost; on a grid they come from the tables
    from secondorder.ot._utils import prepare

    a, b = _images((9, 7), seed=12, empty=0.4)
    rows = np.array([0, 3, 10, 11])
    for cost in (ot.GridCost((9, 7)), ot.GridCost((9, 7), metric="cityblock")):
        grid = prepare(a, b, cost, 1e-2, 10, 1e-9, grid=True)
        dense = prepare(a, b, cost.toarray(), 1e-2, 10, 1e-9)
        assert_allclose(grid.cost_rows(rows), dense.cost_rows(rows), rtol=1e-14, atol=1e-15)

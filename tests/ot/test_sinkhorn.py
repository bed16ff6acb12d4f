"""secondorder.ot against POT: plans, costs, marginals, odd inputs, bad inputs."""

import math

import numpy as np
import scipy.sparse
import ot as pot
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from secondorder import ot
from secondorder._backend import kernels

METHODS = ["sns", "sinkhorn_log", "sinkhorn"]


def _clouds(n, m, seed=0, d=2):
    rng = np.random.default_rng(seed)
    x = rng.random((n, d))
    y = rng.random((m, d)) + 0.1
    M = ot.dist(x, y)
    return M / M.max()


def _marginal_error(P, a, b):
    return np.abs(P.sum(1) - a).sum() + np.abs(P.sum(0) - b).sum()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("reg", [0.05, 0.01])
def test_plan_matches_pot(method, reg):
    n, m = 60, 45
    rng = np.random.default_rng(1)
    a = rng.random(n) + 0.1
    a /= a.sum()
    b = rng.random(m) + 0.1
    b /= b.sum()
    M = _clouds(n, m)
    ref = pot.sinkhorn(a, b, M, reg, method="sinkhorn_log", stopThr=1e-13, numItermax=100000)
    P, log = ot.sinkhorn(a, b, M, reg, method=method, stopThr=1e-12, numItermax=100000, log=True)
    assert_allclose(P, ref, atol=1e-10, rtol=1e-6)
    assert log["err"][-1] < 1e-12
    assert _marginal_error(P, a, b) < 1e-11
    cost = ot.sinkhorn2(a, b, M, reg, method=method, stopThr=1e-12, numItermax=100000)
    assert_allclose(cost, pot.sinkhorn2(a, b, M, reg, method="sinkhorn_log", stopThr=1e-13, numItermax=100000), rtol=1e-8)


@pytest.mark.parametrize("method", METHODS)
def test_marginal_error_reaches_stopThr_and_log_keys(method):
    M = _clouds(80, 80, seed=2)
    P, log = ot.sinkhorn([], [], M, 1e-3, method=method, stopThr=1e-9, numItermax=100000, log=True)
    a = np.full(80, 1 / 80)
    assert log["err"][-1] < 1e-9
    assert _marginal_error(P, a, a) < 1e-9
    for key in ("niter", "err", "f", "g", "log_u", "log_v", "n_passes"):
        assert key in log
    assert len(log["err"]) >= 1 and log["niter"] >= 1
    # the potentials give the plan
    assert_allclose(np.exp((log["f"][:, None] + log["g"][None, :] - M) / 1e-3), P, atol=1e-14)
    if method == "sns":
        assert log["n_newton"] >= 1 and log["cg_iters"] >= 1 and log["nnz"] >= 80
        assert log["n_sinkhorn"] + log["n_newton"] == log["niter"]


def test_entropic_cost_approaches_emd():
    M = _clouds(50, 50, seed=3)
    a = np.full(50, 1 / 50)
    exact = pot.emd2(a, a, M)
    gaps = [ot.sinkhorn2(a, a, M, reg, stopThr=1e-10, numItermax=100000) - exact for reg in (1e-1, 1e-2, 1e-3, 1e-4)]
    assert all(g >= -1e-9 for g in gaps)
    assert gaps[0] > gaps[1] > gaps[2] > gaps[3]
    assert gaps[-1] < 1e-3 * exact + 1e-6


@pytest.mark.parametrize("reg", [0.05, 0.01])
def test_sns_newton_stage_matches_pot_at_moderate_reg(reg):
    # With adaptive=False Newton runs after 10 Sinkhorn iterations even where
    # Sinkhorn alone would be cheaper, so the Newton stage meets large reg too.
    n, m = 70, 50
    rng = np.random.default_rng(5)
    a = rng.random(n) + 0.1
    a /= a.sum()
    b = rng.random(m) + 0.1
    b /= b.sum()
    M = _clouds(n, m, seed=4)
    ref = pot.sinkhorn(a, b, M, reg, method="sinkhorn_log", stopThr=1e-13, numItermax=100000)
    P, log = ot.sinkhorn(a, b, M, reg, method="sns", stopThr=1e-12, log=True, adaptive=False)
    assert log["n_sinkhorn"] == 10 and log["n_newton"] >= 1
    assert_allclose(P, ref, atol=1e-10, rtol=1e-6)


def test_sns_adaptive_lets_sinkhorn_finish_at_large_reg(monkeypatch):
    from secondorder.ot import _sns

    # At reg = 0.05 Sinkhorn converges fast: the adaptive switch keeps it.
    M = _clouds(100, 100, seed=6)
    P, log = ot.sinkhorn([], [], M, 0.05, method="sns", stopThr=1e-9, log=True)
    assert log["n_newton"] == 0 and log["err"][-1] < 1e-9
    # and at small reg it hands over to Newton after a few tens of iterations (the hand-over alone: no solve
    # at a larger reg first)
    monkeypatch.setattr(_sns, "_MAX_DEPTH", 0)
    P, log = ot.sinkhorn([], [], M, 1e-3, method="sns", stopThr=1e-9, log=True)
    assert log["n_newton"] >= 1 and log["n_sinkhorn"] <= 60


def test_random_assignment_of_the_paper():
    # C ~ U[0, 1], n = 500, eta = 1200: the paper reports 20 Sinkhorn + 9 Newton.
    rng = np.random.default_rng(0)
    C = rng.random((500, 500))
    P, log = ot.sinkhorn([], [], C, 1 / 1200, method="sns", stopThr=1e-9, log=True)
    assert log["err"][-1] < 1e-9
    assert log["niter"] <= 60
    assert log["n_newton"] <= 20


@pytest.mark.parametrize("method", METHODS)
def test_rectangular_nonuniform_and_zero_mass(method):
    rng = np.random.default_rng(4)
    n, m = 40, 25
    a = rng.random(n)
    a[[0, 7, 39]] = 0.0
    a /= a.sum()
    b = rng.random(m)
    b[[3, 24]] = 0.0
    b /= b.sum()
    M = _clouds(n, m, seed=5)
    P, log = ot.sinkhorn(a, b, M, 1e-2, method=method, stopThr=1e-11, numItermax=100000, log=True)
    assert P.shape == (n, m)
    assert np.all(P[[0, 7, 39]] == 0) and np.all(P[:, [3, 24]] == 0)
    assert _marginal_error(P, a, b) < 1e-10
    assert np.all(np.isneginf(log["f"][[0, 7, 39]])) and np.all(np.isneginf(log["g"][[3, 24]]))
    keep_a, keep_b = a > 0, b > 0
    ref = pot.sinkhorn(a[keep_a], b[keep_b], M[np.ix_(keep_a, keep_b)], 1e-2, method="sinkhorn_log", stopThr=1e-13, numItermax=100000)
    assert_allclose(P[np.ix_(keep_a, keep_b)], ref, atol=1e-10)


@pytest.mark.parametrize("method", METHODS)
def test_float32_cost_gives_float32_plan(method):
    M = _clouds(50, 40, seed=6)
    P64 = ot.sinkhorn([], [], M, 1e-2, method=method, stopThr=1e-10)
    P32 = ot.sinkhorn([], [], M.astype(np.float32), 1e-2, method=method, stopThr=1e-6)
    assert P32.dtype == np.float32
    assert_allclose(P32, P64, atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_small_reg_is_stable(method):
    # reg = 1e-4 with costs in [0, 1]: no underflow to zero rows, no NaN.
    # Plain Sinkhorn needs far more iterations here; SNS converges.
    M = _clouds(100, 100, seed=7)
    iters = 100000 if method == "sns" else 2000
    P, log = ot.sinkhorn([], [], M, 1e-4, method=method, stopThr=1e-9, numItermax=iters, log=True, warn=False)
    assert np.all(np.isfinite(P)) and np.all(np.isfinite(log["f"]))
    assert np.all(P.sum(axis=1) > 0)
    assert np.all(np.isfinite(log["err"]))
    if method == "sns":
        assert log["err"][-1] < 1e-9
    else:
        assert log["err"][-1] < 0.1 * log["err"][0]


def test_warmstart_and_inputs_unchanged():
    M = _clouds(30, 30, seed=8)
    a = np.full(30, 1 / 30)
    M0, a0 = M.copy(), a.copy()
    P, log = ot.sinkhorn(a, a, M, 1e-2, log=True, stopThr=1e-12)
    P2, log2 = ot.sinkhorn(a, a, M, 1e-2, log=True, stopThr=1e-12, method="sinkhorn_log", warmstart=(log["log_u"], log["log_v"]))
    assert log2["niter"] <= 2
    assert_allclose(P2, P, atol=1e-12)
    assert np.array_equal(M, M0) and np.array_equal(a, a0)


def test_not_converged_warns():
    M = _clouds(40, 40, seed=9)
    with pytest.warns(UserWarning, match="did not converge.*numItermax"):
        ot.sinkhorn([], [], M, 1e-3, method="sinkhorn_log", numItermax=3)
    with pytest.warns(UserWarning, match="did not converge"):  # the cost is wrong: said so, unlike POT
        ot.sinkhorn2([], [], M, 1e-3, method="sinkhorn_log", numItermax=3)
    ot.sinkhorn2([], [], M, 1e-3, method="sinkhorn_log", numItermax=3, warn=False)


def test_costs_and_grids_check_their_input():
    x = np.random.default_rng(0).random((5, 2))
    assert np.all(np.diag(ot.dist(x, metric="euclidean")) == 0.0)
    big = ot.dist(x * 1e200, metric="euclidean")
    np.testing.assert_allclose(big / 1e200, ot.dist(x, metric="euclidean"), rtol=1e-12)
    for call, exc, match in [
        (lambda: ot.dist(x * 1e200), ValueError, "overflow"),
        (lambda: ot.dist(np.array([[np.nan, 1.0]])), ValueError, "`x1` must be finite"),
        (lambda: ot.grid_cost((2, 3), spacing=(0.1,)), ValueError, "one entry per axis"),
        (lambda: ot.grid_cost(2.5), TypeError, "`shape`"),
        (lambda: ot.grid_cost(3, spacing=0.0), ValueError, "`spacing`"),
        (lambda: ot.grid_cost(3, spacing=np.nan), ValueError, "`spacing`"),
    ]:
        with pytest.raises(exc, match=match):
            call()


@pytest.mark.parametrize("method", ["sns", "sinkhorn_log", "sinkhorn"])
def test_several_target_histograms_as_pot(method):
    """A 2-D b: one cost per column, from sinkhorn and sinkhorn2 alike, equal
    to the columns solved one by one and to POT's."""
    pot = pytest.importorskip("ot")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((30, 2))
    M = ot.dist(x)
    a = np.full(30, 1 / 30)
    b = rng.random((30, 3))
    b /= b.sum(axis=0)
    costs, log = ot.sinkhorn(a, b, M, 0.1, method=method, stopThr=1e-11, log=True)
    assert costs.shape == (3,) and log["u"].shape == (30, 3) and log["log_v"].shape == (30, 3)
    one_by_one = [ot.sinkhorn2(a, b[:, k], M, 0.1, method=method, stopThr=1e-11) for k in range(3)]
    assert_allclose(costs, one_by_one, rtol=1e-12)
    assert_allclose(ot.sinkhorn2(a, b, M, 0.1, method=method, stopThr=1e-11), costs, rtol=1e-12)
    assert_allclose(costs, pot.sinkhorn2(a, b, M, 0.1, method="sinkhorn_log", stopThr=1e-11), rtol=1e-7)
    fn = {"sns": ot.sinkhorn_newton_sparse, "sinkhorn_log": ot.sinkhorn_log, "sinkhorn": ot.sinkhorn_stabilized}[method]
    assert_allclose(fn(a, b, M, 0.1, stopThr=1e-11), costs, rtol=1e-12)


def test_pot_options_and_conventions():
    pot = pytest.importorskip("ot")
    M = _clouds(25, 25, seed=4)
    a = np.full(25, 1 / 25)
    # stopThr=0: exactly numItermax iterations, and the warning that says so
    with pytest.warns(UserWarning, match="did not converge"):
        _, log = ot.sinkhorn(a, a, M, 0.5, method="sinkhorn_log", stopThr=0, numItermax=7, log=True)
    assert log["niter"] == 7
    with pytest.warns(UserWarning, match="did not converge"):
        ot.sinkhorn(a, a, M, 0.5, stopThr=0, numItermax=30)  # SNS too
    # POT's positional order of sinkhorn_stabilized (numItermax, tau, stopThr)
    P = ot.sinkhorn_stabilized(a, a, M, 0.05, 1000, 1e3, 1e-10)
    assert_allclose(P, pot.bregman.sinkhorn_stabilized(a, a, M, 0.05, 1000, 1e3, 1e-10), rtol=1e-6, atol=1e-12)
    # tau and print_period accepted; log["u"], log["v"] are POT's scalings
    P, log = ot.sinkhorn(a, a, M, 0.05, method="sinkhorn", tau=1e3, print_period=5, log=True)
    assert_allclose(log["u"][:, None] * np.exp(-M / 0.05) * log["v"][None, :], P, rtol=1e-9)
    ot.sinkhorn(a, a, M, 0.05, method="sinkhorn_log", print_period=5)
    # sinkhorn2 gives a NumPy scalar of M's dtype
    cost = ot.sinkhorn2(a, a, M.astype(np.float32), 0.05)
    assert isinstance(cost, np.float32)


def test_verbose_prints(capsys):
    ot.sinkhorn([], [], _clouds(20, 20), 1e-2, verbose=True)
    out = capsys.readouterr().out
    assert "Err" in out and "Newton" in out


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"a": [-0.5, 1.5, 0.0]}, ValueError, "`a` must be non-negative"),
        ({"b": [0.5, 0.2, 0.1]}, ValueError, "same total mass"),
        ({"M": np.ones((3, 4))}, ValueError, "Dimension mismatch"),
        ({"M": np.ones(3)}, ValueError, "2-D cost matrix"),
        ({"M": np.array([[0.0, np.nan, 1], [1, 0, 1], [1, 1, 0]])}, ValueError, "`M` must be finite"),
        ({"M": np.array([[0.0, np.inf, 1], [1, 0, 1], [1, 1, 0]])}, ValueError, "`M` must be finite"),
        ({"reg": 0.0}, ValueError, "`reg` must be a positive"),
        ({"reg": -1.0}, ValueError, "`reg` must be a positive"),
        ({"a": [np.nan, 0.5, 0.5]}, ValueError, "`a` must be finite"),
        ({"method": "knopp"}, ValueError, "Unknown method 'knopp'"),
        ({"a": np.ones((3, 2)) / 3}, ValueError, "1-D histogram"),
        ({"frobnicate": 1}, TypeError, "unexpected keyword"),
        ({"a": [0.0, 0.0, 0.0]}, ValueError, "zero total mass"),
        ({"M": np.array([[0.0, 1e17, 1], [1, 0, 1], [1, 1, 0]])}, ValueError, "`M` is too large for `reg`"),
        ({"threshold": 0.0}, ValueError, "`threshold` must be"),
        ({"threshold": 1.0}, ValueError, "threshold must be below 1"),
        ({"max_per_row": 0}, ValueError, "`max_per_row`"),
        ({"sparsity": 0.1}, TypeError, "unexpected keyword arguments: sparsity"),
    ],
)
def test_bad_input(kwargs, exc, match):
    call = {"a": [1 / 3] * 3, "b": [1 / 3] * 3, "M": np.ones((3, 3)) - np.eye(3), "reg": 0.1}
    call.update(kwargs)
    with pytest.raises(exc, match=match):
        ot.sinkhorn(**call)


def test_numba_kernels_equal_fallback():
    rng = np.random.default_rng(10)
    n, m = 70, 50
    M = rng.random((n, m))
    f = rng.standard_normal(n) * 0.01
    g = rng.standard_normal(m) * 0.01
    reg = 3e-3
    cpu, ref = kernels(name="cpu"), kernels(name="fallback")
    assert_allclose(cpu.lse_rows(M, g, reg, np.empty(n)), ref.lse_rows(M, g, reg, np.empty(n)), rtol=1e-13)
    assert_allclose(cpu.lse_cols(M, f, reg, np.empty(m)), ref.lse_cols(M, f, reg, np.empty(m)), rtol=1e-13)
    assert_allclose(cpu.scaled_kernel(M, f, g, reg, np.empty((n, m))), ref.scaled_kernel(M, f, g, reg, np.empty((n, m))), rtol=1e-13, atol=1e-300)
    assert_allclose(cpu.transport_cost(M, f, g, reg), ref.transport_cost(M, f, g, reg), rtol=1e-12)
    # every level of the keep threshold: delta fits, delta raised, the row's max only
    for delta, cap in [(1e-3, m), (1e-2, 8), (0.9, 3), (1e-6, 1)]:
        got, want = cpu.sns_eval(M, f, g, reg, delta, cap), ref.sns_eval(M, f, g, reg, delta, cap)
        assert_allclose(got[0], want[0], rtol=1e-12)  # row sums
        assert_allclose(got[1], want[1], rtol=1e-12)  # column sums
        assert_array_equal(got[2], want[2])  # kept per row
        assert_array_equal(got[3], want[3])  # threshold raises
        keep = np.arange(cap)[None, :] < got[2][:, None]
        assert_array_equal(got[4][keep], want[4][keep])  # their columns, ascending
        assert_allclose(got[5][keep], want[5][keep], rtol=1e-12)
        # the rule itself, from the plan
        P = np.exp((f[:, None] + g[None, :] - M) / reg)
        for i in range(n):
            s = got[3][i]
            t = P[i].max() * (delta * 10.0**s if s <= 6 and delta * 10.0**s < 1 else 1.0)
            cols = np.nonzero(P[i] >= t * (1 - 1e-12))[0][:cap]
            assert_array_equal(got[4][i, : got[2][i]], cols)
            assert len(cols) <= cap
            if 0 < s <= 6:  # raised because the level below kept too many
                assert (P[i] >= P[i].max() * delta * 10.0 ** (s - 1)).sum() > cap
    # float32 costs read directly
    assert_allclose(cpu.lse_rows(M.astype(np.float32), g, reg, np.empty(n)), ref.lse_rows(M.astype(np.float32), g, reg, np.empty(n)), rtol=1e-12)


def test_fast_exp_accuracy_and_clamp():
    from secondorder._kernels.cpu._fastexp import fast_exp
    from secondorder._backend import jit

    @jit
    def apply(x, out):
        for i in range(x.shape[0]):
            out[i] = fast_exp(x[i])
        return out

    x = np.linspace(-499, 699, 200001)
    assert_allclose(apply(x, np.empty_like(x)), np.exp(x), rtol=2e-14)
    y = apply(np.array([-1e4, -600.0, 800.0]), np.empty(3))
    assert y[0] == y[1]
    assert_allclose(y, [np.exp(-500.0), np.exp(-500.0), np.exp(700.0)], rtol=1e-14)


def test_sinkhorn_disabled_numba_gives_same_plan(monkeypatch):
    M = _clouds(30, 20, seed=11)
    P = ot.sinkhorn([], [], M, 1e-2, method="sinkhorn_log", stopThr=1e-12)
    monkeypatch.setenv("SECONDORDER_DISABLE_NUMBA", "1")
    P2 = ot.sinkhorn([], [], M, 1e-2, method="sinkhorn_log", stopThr=1e-12)
    assert_allclose(P, P2, atol=1e-14)


def test_dist_and_grid_cost():
    rng = np.random.default_rng(12)
    x, y = rng.random((7, 3)), rng.random((5, 3))
    assert_allclose(ot.dist(x, y), pot.dist(x, y), atol=1e-14)
    assert_allclose(ot.dist(x, y, "euclidean"), pot.dist(x, y, "euclidean"), atol=1e-7)
    assert_allclose(ot.dist(x, y, "cityblock"), pot.dist(x, y, "cityblock"))
    G = ot.grid_cost((3, 4))
    assert G.shape == (12, 12)
    # cells (0, 0) and (2, 3): squared distance (2^2 + 3^2) / 4^2
    assert_allclose(G[0, 11], 13 / 16)
    assert_allclose(ot.grid_cost(5, "euclidean", spacing=1.0)[0], [0, 1, 2, 3, 4])
    with pytest.raises(ValueError, match="1-D or 2-D grid"):
        ot.grid_cost((2, 2, 2))
    # every metric equals POT's dist between the cell centres; the separable ones exactly symmetric, zero on the
    # diagonal
    for shape, spacing in [((6,), None), ((5, 7), None), ((4, 3), (0.5, 2.0))]:
        h = (1.0 / max(shape),) * len(shape) if spacing is None else spacing
        axes = [np.arange(s_) * h_ for s_, h_ in zip(shape, h)]
        cells = np.stack([c.ravel() for c in np.meshgrid(*axes, indexing="ij")], axis=1)
        for metric in ("sqeuclidean", "euclidean", "cityblock", "chebyshev"):
            G = ot.grid_cost(shape, metric, spacing=spacing)
            assert_allclose(G, pot.dist(cells, cells, metric), atol=1e-7 if metric == "euclidean" else 1e-14)
            assert np.array_equal(G, G.T) and np.all(np.diag(G) == 0.0)
    with pytest.raises(ValueError, match="arrays of points"):
        ot.dist(np.ones((3, 2)), np.ones((3, 3)))


def test_w1_w2_between_images():
    img1 = np.zeros((8, 8))
    img1[1:3, 1:3] = 1
    img2 = np.zeros((8, 8))
    img2[5:7, 4:6] = 1
    a, b = img1.ravel() / img1.sum(), img2.ravel() / img2.sum()
    # a pure translation by (4, 3) cells of 1/8: W2^2 = (16 + 9) / 64, W1 = 5/8
    w2 = ot.sinkhorn2(a, b, ot.grid_cost(img1.shape), 1e-3, stopThr=1e-10)
    w1 = ot.sinkhorn2(a, b, ot.grid_cost(img1.shape, "euclidean"), 1e-3, stopThr=1e-10)
    assert_allclose(w2, 25 / 64, rtol=1e-3)
    assert_allclose(w1, 5 / 8, rtol=1e-3)


def test_epsilon_scaling_matches_pot_and_the_log_solver():
    pot = pytest.importorskip("ot")
    M = _clouds(30, 25, seed=6)
    a, b = np.full(30, 1 / 30), np.full(25, 1 / 25)
    P, log = ot.sinkhorn(a, b, M, 1e-2, method="sinkhorn_epsilon_scaling", stopThr=1e-11, numItermax=5000, log=True)
    ref = ot.sinkhorn_log(a, b, M, 1e-2, stopThr=1e-11, numItermax=5000)
    assert_allclose(P, ref, rtol=1e-6, atol=1e-12)
    assert log["n_stages"] > 1 and log["err"][-1] < 1e-11
    assert_allclose(P, pot.sinkhorn(a, b, M, 1e-2, method="sinkhorn_log", stopThr=1e-12, numItermax=100000),
                    rtol=1e-6, atol=1e-12)
    # POT's positional order: numItermax, epsilon0, numInnerItermax, tau, stopThr
    P2 = ot.sinkhorn_epsilon_scaling(a, b, M, 1e-2, 5000, 1.0, 50, 1e3, 1e-11)
    assert_allclose(P2, ref, rtol=1e-6, atol=1e-12)


def test_sns_converges_where_the_plan_is_spread():
    """Clouds far apart (costs varying little relative to reg): the kept
    entries cannot hold the plan's mass, the rank-one term carries the rest,
    and Newton still converges in a few steps, to the log-domain Sinkhorn
    plan; also when each row may keep only a few entries."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((900, 2))
    y = rng.standard_normal((900, 2)) + np.array([6.0, 0.0])
    M = ot.dist(x, y)
    M /= M.max()
    a = np.full(900, 1 / 900)
    P, log = ot.sinkhorn(a, a, M, 1e-3, stopThr=1e-9, log=True, adaptive=False)  # Newton after the warm-up
    assert log["n_newton"] <= 30 and log["nnz"] > 900
    _, few = ot.sinkhorn(a, a, M, 1e-3, stopThr=1e-9, log=True, adaptive=False, max_per_row=4)
    assert few["err"][-1] < 1e-9 and few["nnz"] <= 4 * 900
    ref = ot.sinkhorn(a, a, M, 1e-3, method="sinkhorn_epsilon_scaling", epsilon0=1.0, stopThr=1e-11, numItermax=100000)
    assert_allclose(P, ref, rtol=1e-5, atol=1e-10)
    # by default Sinkhorn, fast and steady on such a plan, finishes on its own, over-relaxed: in a third of
    # plain Sinkhorn's iterations
    P, log = ot.sinkhorn(a, a, M, 1e-3, stopThr=1e-9, log=True)
    assert log["n_newton"] == 0 and log["err"][-1] < 1e-9
    assert_allclose(P, ref, rtol=1e-4, atol=1e-9)
    _, plain = ot.sinkhorn(a, a, M, 1e-3, method="sinkhorn", stopThr=1e-9, log=True)
    assert log["n_sinkhorn"] < plain["niter"] / 3


@pytest.mark.parametrize("solve", ["scaling", "log"])
def test_over_relaxed_sinkhorn(solve):
    """omega > 1 reaches the plain iterations' solution in fewer iterations,
    counting both marginals' errors; omega too large for the problem falls
    back to plain iterations and still converges."""
    from secondorder.ot._scaling import scaling_iterations
    from secondorder.ot._sinkhorn_log import solve_log
    from secondorder.ot._utils import prepare

    rng = np.random.default_rng(2)
    M = ot.dist(rng.standard_normal((300, 2)), rng.standard_normal((300, 2)) + np.array([6.0, 0.0]))
    M /= M.max()
    a = rng.random(300) + 0.5
    a /= a.sum()
    problem = prepare(a, [], M, 1e-3, 10000, 1e-9)
    start = scaling_iterations(problem, np.zeros(300), np.zeros(300), 20, 1e-9)  # as SNS: plain ones first

    def run(omega):
        if solve == "scaling":
            return scaling_iterations(problem, start.f, start.g, 10000, 1e-9, omega=omega)
        return solve_log(problem, 10000, 1e-9, potentials=(start.f, start.g), omega=omega)

    plain, fast, wild = run(1.0), run(1.6), run(1.99)
    assert fast.errs[-1] < 1e-9 and wild.errs[-1] < 1e-9
    assert len(fast.errs) < len(plain.errs) / 2
    for sol in (fast, wild):
        P = np.exp((sol.f[:, None] + sol.g[None, :] - M) / 1e-3)
        assert _marginal_error(P, a, np.full(300, 1 / 300)) < 2e-9
        assert_allclose(sol.f - sol.f[0], plain.f - plain.f[0], atol=1e-8)


def test_sns_hands_over_to_newton_where_sinkhorn_slows_down():
    """The paper's random assignment case (n = 500, reg = 1/1200): Sinkhorn
    decelerates, and SNS finishes in at most 40 iterations in all."""
    rng = np.random.default_rng(0)
    M = rng.random((500, 500))
    a = np.full(500, 1 / 500)
    _, log = ot.sinkhorn(a, a, M, 1 / 1200, stopThr=1e-9, log=True)
    assert log["niter"] <= 40 and log["n_newton"] > 0 and log["err"][-1] < 1e-9


def test_sns_hands_over_early_only_where_sinkhorn_slows_down_from_the_start(monkeypatch):
    """At _EARLY (5) iterations, where the rate still rises and predicts
    many iterations left (a concentrated plan: uniform clouds at reg =
    1e-3), Newton takes over before n_sinkhorn; where the rate levels off
    (reg = 1e-2) or falls (clouds far apart, a spread plan), or Sinkhorn is
    fast (large reg), the warm-up goes on as before.  The early hand-over
    takes at most one Newton step more here than the later one; on costs
    below ``_EARLY_ENTRIES`` it does not happen."""
    from secondorder.ot import _sns

    monkeypatch.setattr(_sns, "_MAX_DEPTH", 0)  # the hand-over alone
    monkeypatch.setattr(_sns, "_EARLY_ENTRIES", 1000**2)  # (8 million entries by default)
    rng = np.random.default_rng(21)
    x, y = rng.random((1500, 2)), rng.random((1500, 2))
    M = ot.dist(x, y)
    M /= M.max()
    early = ot.sinkhorn([], [], M, 1e-3, method="sns", stopThr=1e-9, log=True)[1]
    assert early["n_sinkhorn"] == _sns._EARLY == 5 and early["err"][-1] < 1e-9
    with monkeypatch.context() as patch:
        patch.setattr(_sns, "_EARLY", 0)  # no early check
        late = ot.sinkhorn([], [], M, 1e-3, method="sns", stopThr=1e-9, log=True)[1]
    assert late["n_sinkhorn"] >= 10 and early["n_newton"] <= late["n_newton"] + 1
    ratios = [early["err"][i] / early["err"][i - 1] for i in range(1, 5)]
    assert ratios[0] < ratios[1] < ratios[2] < ratios[3]  # Sinkhorn slowing down from the start

    apart = ot.dist(rng.standard_normal((300, 2)), rng.standard_normal((300, 2)) + np.array([6.0, 0.0]))
    apart /= apart.max()
    log = ot.sinkhorn([], [], apart, 1e-3, method="sns", stopThr=1e-9, log=True)[1]
    assert log["n_sinkhorn"] > 10 and log["err"][-1] < 1e-9
    log = ot.sinkhorn([], [], M, 0.05, method="sns", stopThr=1e-9, log=True)[1]
    assert log["n_newton"] == 0 and log["err"][-1] < 1e-9
    # at reg = 1e-2 the rate levels off after a few iterations: Sinkhorn finishes over-relaxed
    C = ot.dist(x[:1000], y[:1000])
    C /= C.max()
    log = ot.sinkhorn([], [], C, 1e-2, method="sns", stopThr=1e-9, log=True)[1]
    ratios = [log["err"][i] / log["err"][i - 1] for i in range(3, 5)]
    assert ratios[1] - ratios[0] < _sns._EARLY_RISE
    assert log["n_newton"] == 0 and log["n_sinkhorn"] > 10 and log["err"][-1] < 1e-9
    monkeypatch.setattr(_sns, "_EARLY_ENTRIES", M.size + 1)
    assert ot.sinkhorn([], [], M, 1e-3, method="sns", stopThr=1e-9, log=True)[1]["n_sinkhorn"] >= 10


def test_sns_newton_takes_over_from_a_slow_over_relaxed_finish(monkeypatch):
    """Where Sinkhorn goes on to finish the solve over-relaxed but converges
    far slower than the over-relaxation aims for (uniform clouds, n = 1000,
    reg = 1e-3, this draw: over 300 relaxed iterations), Newton takes over
    once the relaxed rate predicts more than _RELAXED_LEFT iterations; where
    it converges as aimed (clouds far apart; another draw at reg = 1e-2),
    Sinkhorn finishes."""
    from secondorder.ot import _sns

    rng = np.random.default_rng(20)
    x, y = rng.random((1000, 2)), rng.random((1000, 2))
    M = ot.dist(x, y)
    M /= M.max()
    log = ot.sinkhorn([], [], M, 1e-3, method="sns", stopThr=1e-9, log=True)[1]
    assert log["n_newton"] >= 1 and log["niter"] < 60 and log["err"][-1] < 1e-9
    with monkeypatch.context() as patch:
        patch.setattr(_sns, "_RELAXED_LEFT", math.inf)
        slow = ot.sinkhorn([], [], M, 1e-3, method="sns", stopThr=1e-9, log=True)[1]
    assert slow["n_newton"] == 0 and slow["niter"] > 200  # what the check spares
    apart = ot.dist(rng.standard_normal((300, 2)), rng.standard_normal((300, 2)) + np.array([6.0, 0.0]))
    apart /= apart.max()
    other = np.random.default_rng(0)
    spread = ot.dist(other.random((1000, 2)), other.random((1000, 2)))
    spread /= spread.max()
    for C, reg in ((apart, 1e-3), (spread, 1e-2)):
        log = ot.sinkhorn([], [], C, reg, method="sns", stopThr=1e-9, log=True)[1]
        assert log["n_newton"] == 0 and log["n_sinkhorn"] > 30 and log["err"][-1] < 1e-9


def test_sns_sinkhorn_finishes_where_newton_contracts_poorly(monkeypatch):
    """Where _POOR_STEPS Newton steps in a row each leave more than
    _POOR_CONTRACTION of the error, Sinkhorn finishes over-relaxed, once a
    solve, to the same solution (made to happen here by asking each step
    for a thousandfold contraction); not on a float32 cost, whose kernel
    does not resolve the errors a finish must reach."""
    from secondorder.ot import _sns

    rng = np.random.default_rng(31)
    M = ot.dist(rng.standard_normal((400, 2)), rng.standard_normal((400, 2)))
    M /= M.max()
    P0, log0 = ot.sinkhorn([], [], M, 1e-2, method="sns", log=True)
    assert log0["n_sinkhorn"] == 15 and log0["n_newton"] > _sns._POOR_STEPS
    monkeypatch.setattr(_sns, "_POOR_CONTRACTION", 1e-3)
    P1, log1 = ot.sinkhorn([], [], M, 1e-2, method="sns", log=True)
    assert log1["n_newton"] == _sns._POOR_STEPS and log1["n_sinkhorn"] > 20
    assert log1["n_sinkhorn"] + log1["n_newton"] == log1["niter"] == len(log1["err"])
    assert log1["err"][-1] < 1e-9
    assert_allclose(P1, P0, rtol=1e-6, atol=1e-12)
    _, log32 = ot.sinkhorn([], [], M.astype(np.float32), 1e-2, method="sns", log=True)
    assert log32["n_sinkhorn"] == 15 and log32["err"][-1] < 1e-9


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_sns_clouds_far_apart_at_small_reg_converge(seed):
    """Clouds far apart at reg = 3e-4, marginals not uniform: the mass
    travels far (a solve at a larger reg first), and the relaxed finish
    after it goes on to its end; a Newton stage started in its middle took
    tens of damped steps and could end above stopThr.  No warning (pytest
    turns them into errors)."""
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((476, 2)), rng.standard_normal((859, 2)) + np.array([5.0, 0.0])
    M = ot.dist(x, y)
    M /= M.max()
    a, b = rng.random(476) + 1.0, rng.random(859) + 1.0
    a, b = a / a.sum(), b / b.sum()
    P, log = ot.sinkhorn(a, b, M, 3e-4, method="sns", log=True)
    assert log["err"][-1] < 1e-9 and log["niter"] < 600
    assert np.abs(P.sum(axis=1) - a).sum() + np.abs(P.sum(axis=0) - b).sum() < 2e-9


def test_greenkhorn_matches_pot_and_the_log_solver():
    pot = pytest.importorskip("ot")
    rng = np.random.default_rng(3)
    M = _clouds(20, 15, seed=3)
    a = rng.random(20)
    a[4] = 0.0  # a zero-mass row: restored in the plan
    a /= a.sum()
    b = np.full(15, 1 / 15)
    P, log = ot.sinkhorn(a, b, M, 0.05, method="greenkhorn", stopThr=1e-10, numItermax=100000, log=True)
    assert log["err"][-1] < 1e-10
    ref = ot.sinkhorn_log(a, b, M, 0.05, stopThr=1e-12, numItermax=100000)
    assert_allclose(P, ref, rtol=1e-6, atol=1e-12)
    assert_allclose(P, pot.bregman.greenkhorn(a, b, M, 0.05, stopThr=1e-12, numItermax=100000), rtol=1e-5, atol=1e-10)
    assert_allclose(ot.greenkhorn(a, b, M, 0.05, stopThr=1e-10, numItermax=100000), P, rtol=1e-12)


def test_sns_starts_from_a_larger_reg_where_the_mass_travels_far(monkeypatch):
    """Images whose masses lie in opposite thirds of the grid at a small reg:
    Sinkhorn's warm-up ends far from the solution, so SNS first solves at a
    larger reg and starts from there: a few Newton steps, the log-domain
    Sinkhorn plan, and no NumPy warning on the way (pytest turns warnings
    into errors).  Without that start Newton takes tens of damped steps."""
    from secondorder.ot import _sns

    side = 24
    rng = np.random.default_rng(2)
    a = rng.random((side, side))
    a[:, side // 3 :] = 0
    b = rng.random((side, side))
    b[:, : 2 * side // 3] = 0
    a, b = a.ravel() / a.sum(), b.ravel() / b.sum()
    M = ot.grid_cost((side, side))
    P, log = ot.sinkhorn(a, b, M, 3e-4, log=True)
    assert log["n_newton"] <= 12 and log["err"][-1] < 1e-9
    assert log["n_sinkhorn"] + log["n_newton"] == log["niter"]
    ref = ot.sinkhorn(a, b, M, 3e-4, method="sinkhorn_log", stopThr=1e-11, numItermax=200000)
    assert_allclose(P, ref, atol=1e-10)
    assert abs(float((P * M).sum()) - pot.emd2(a, b, M)) < 1e-4  # close to the exact cost at this reg
    monkeypatch.setattr(_sns, "_MAX_DEPTH", 0)
    monkeypatch.setattr(_sns, "_POOR_STEPS", 10**9)  # Newton alone, however slowly its damped steps contract
    _, plain = ot.sinkhorn(a, b, M, 3e-4, log=True)
    assert plain["n_newton"] > 2 * log["n_newton"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sns_adds_one_array_the_size_of_the_cost(dtype, monkeypatch):
    """The only n x m arrays SNS makes are the warm-up's kernel (float32,
    which then holds the Newton stage's candidate entries) and the plan (in
    the cost's dtype).  Where the plan is returned, the kernel lies in the
    plan's own bytes: NumPy's allocations during a solve peak at one cost
    matrix plus the Newton stage's arrays (three times n x 256 slots of 12
    bytes).  Where only the cost is returned (``sinkhorn2``), the kernel is
    the one n x m array."""
    import tracemalloc

    rng = np.random.default_rng(0)
    x, y = rng.random((1200, 2)), rng.random((1200, 2))
    M = ot.dist(x, y).astype(dtype)
    M /= M.max()
    table = kernels(np)
    buffers = []

    def spy(kernel):
        def wrapper(*args):
            buffers.append(args[-1])
            return kernel(*args)

        return wrapper

    for name in ("scaled_kernel", "row_scaled_kernel"):  # the plan; the warm-up's kernel
        monkeypatch.setattr(table, name, spy(getattr(table, name)))
    ot.sinkhorn([], [], M, 1e-3)  # kernels compiled or loaded outside the measure
    buffers.clear()
    tracemalloc.start()
    try:
        P, log = ot.sinkhorn([], [], M, 1e-3, log=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert P.dtype == dtype and log["n_newton"] >= 1 and log["err"][-1] < 1e-9
    assert [out.dtype for out in buffers] == [np.float32, dtype]
    assert all(out.shape == M.shape for out in buffers)
    assert np.shares_memory(buffers[0], P) and buffers[1] is P
    assert peak < M.nbytes + 3 * 1200 * 256 * 12 + 2**20
    # the plan written over the Newton stage's arrays: the potentials' plan, with its marginals
    want = np.exp(log["log_u"][:, None] + log["log_v"][None, :] - M.astype(np.float64) / 1e-3)
    assert_allclose(P, want, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-30)
    assert_allclose(P.sum(axis=1, dtype=np.float64), 1 / 1200, rtol=1e-5)

    buffers.clear()
    tracemalloc.start()
    try:
        cost = ot.sinkhorn2([], [], M, 1e-3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [(out.dtype, out.shape) for out in buffers] == [(np.float32, M.shape)]
    assert peak < M.size * 4 + 3 * 1200 * 256 * 12 + 2**20
    assert_allclose(cost, np.sum(P * M), rtol=1e-6)


def test_group_sums_kernels_equal_a_dense_sum():
    rng = np.random.default_rng(13)
    n, m, k = 40, 30, 6
    S = scipy.sparse.random(n, m, density=0.3, random_state=rng, format="csr")
    groups = rng.integers(-1, k, size=m)  # -1: the column is in no group
    want = np.stack([(S.toarray()[:, groups == a]).sum(axis=1) for a in range(k)], axis=1)
    for table in (kernels(name="cpu"), kernels(name="fallback")):
        got = table.group_sums(S.data, S.indices, S.indptr, groups, k)
        assert got.shape == (n, k)
        assert_allclose(got, want, rtol=1e-12, atol=1e-13)  # the fallback differences a cumulative sum
    empty = scipy.sparse.csr_matrix((n, m))
    assert not kernels(name="fallback").group_sums(empty.data, empty.indices, empty.indptr, groups, k).any()


@pytest.mark.parametrize("kind", ["clouds", "random"])
def test_sns_coarse_level_keeps_the_newton_direction(kind):
    # The coarse level only preconditions: CG reaches the same solution of the sparsified system, in fewer
    # iterations where the cost has a geometry.
    from secondorder.ot import _sns
    from secondorder.ot._sinkhorn_log import initial_potentials
    from secondorder.ot._utils import prepare

    n = 600
    rng = np.random.default_rng(14)
    M = _clouds(n, n, seed=14) if kind == "clouds" else rng.random((n, n))
    problem = prepare(None, None, M, 1e-3, 100, 1e-9)
    f, g = initial_potentials(problem, None)
    sol = _sns.scaling_iterations(problem, f, g, 20, 1e-9)
    point = _sns._Point(problem, sol.f, sol.g, 1e-5, n // 4)
    H = _sns._Hessian(np, point, n, n)
    rhs = problem.reg * np.concatenate([problem.a - point.r, problem.b - point.c])
    k = 25
    level = _sns._Coarse(np, point, H, _sns._groups(np, _sns._seeds(problem, k), point.f, n), k)
    plain, it_plain = _sns._newton_direction(point, H, rhs, 1e-12, 5000, np)
    coarse, it_coarse = _sns._newton_direction(point, H, rhs, 1e-12, 5000, np, level)
    assert_allclose(coarse, plain, rtol=1e-7, atol=1e-9 * np.abs(plain).max())
    # the system itself, dense: [[D_r, P~], [P~^T, D_c]] delta = rhs with the last column potential held
    Pt = H.S._S.toarray() + np.outer(H.u, H.w)
    A = np.block([[np.diag(point.r), Pt], [Pt.T, np.diag(point.c)]])[:-1, :-1]
    assert_allclose(coarse[:-1], np.linalg.solve(A, rhs[:-1]), rtol=1e-6, atol=1e-9 * np.abs(plain).max())
    assert coarse[-1] == 0.0
    if kind == "clouds":  # at the tolerances of the Newton steps
        its = [_sns._newton_direction(point, H, rhs, rtol, 5000, np, lv)[1] for rtol in (1e-2, 1e-4) for lv in (None, level)]
        assert its[1] < 0.6 * its[0] and its[3] < 0.6 * its[2], its


@pytest.mark.parametrize("n", [30, 3000])  # one block, and a pass over the threads
def test_csr_products_equal_scipy(n):
    from secondorder._array_api import SparseRows

    rng = np.random.default_rng(15)
    m = 40
    S = scipy.sparse.random(n, m, density=0.6, random_state=rng, format="csr")
    x, y = rng.standard_normal(m), rng.standard_normal(n)
    for table in (kernels(name="cpu"), kernels(name="fallback")):
        assert_allclose(table.csr_matvec(S.data, S.indices, S.indptr, m, x), S @ x, rtol=1e-13)
        assert_allclose(table.csr_rmatvec(S.data, S.indices, S.indptr, m, y), S.T @ y, rtol=1e-12)
    rows = SparseRows(np, S.data, None, S.indices, (n, m), indptr=S.indptr)
    assert_allclose(rows.matvec(x), S @ x, rtol=1e-13)
    assert_allclose(rows.rmatvec(y), S.T @ y, rtol=1e-12)
    assert_allclose(rows.squared().rmatvec(y), S.power(2).T @ y, rtol=1e-12)
    assert_allclose(rows.squared_rmatvec(y), S.power(2).T @ y, rtol=1e-12)
    for table in (kernels(name="cpu"), kernels(name="fallback")):
        assert_allclose(table.csr_rmatvec(S.data, S.indices, S.indptr, m, y, square=True), S.power(2).T @ y, rtol=1e-12)


def test_kept_csr_kernels_equal_the_mask():
    rng = np.random.default_rng(16)
    n, cap = 50, 7
    count = rng.integers(0, cap + 1, size=n)
    idx = rng.integers(0, 100, size=(n, cap)).astype(np.int32)
    vals = rng.random((n, cap))
    keep = np.arange(cap)[None, :] < count[:, None]
    for table in (kernels(name="cpu"), kernels(name="fallback")):
        data, indices, indptr = table.kept_csr(count, idx, vals)
        assert_array_equal(data, vals[keep])
        assert_array_equal(indices, idx[keep])
        assert indices.dtype == np.int32
        assert_array_equal(indptr, np.concatenate([[0], np.cumsum(count)]))
        nnz = int(count.sum())
        out = (np.full(nnz, np.nan), np.full(nnz, -1, dtype=np.int32))
        data, indices, _ = table.kept_csr(count, idx, vals, out=out)
        assert_array_equal(data, vals[keep])
        assert_array_equal(indices, idx[keep])
    data, indices, _ = kernels(name="cpu").kept_csr(count, idx, vals, out=out)
    assert data is out[0] and indices is out[1]  # written in place


def test_sns_hessians_keep_their_csr_arrays_while_they_have_room():
    import scipy.sparse

    from secondorder.ot._sns import _held_csr

    held = {}
    data, indices = _held_csr(held, 800)
    assert data.shape == indices.shape == (800,) and data.dtype == np.float32 and indices.dtype == np.int32
    room = held["csr"][0]
    for nnz in (1000, 500, 800):  # within [size / 2, size]: the same arrays
        again, _ = _held_csr(held, nnz)
        assert again.shape == (nnz,) and np.shares_memory(again, room)
        # SciPy keeps them (it copies a view of less than half its array)
        S = scipy.sparse.csr_matrix((again, np.zeros(nnz, dtype=np.int32), np.array([0, nnz], dtype=np.int32)),
                                    shape=(1, 3))
        assert np.shares_memory(S.data, room)
    for nnz in (1001, 100):  # beyond: new arrays, with a quarter more room
        fresh, _ = _held_csr(held, nnz)
        assert not np.shares_memory(fresh, room) and held["csr"][0].shape == (nnz + nnz // 4,)
        room = held["csr"][0]


def test_sns_eval_sparse_equals_the_dense_pass_on_its_entries():
    # Entries of the plan at (f0, g0), moved to (f, g) by the scalings: the dense pass's outputs where every
    # entry is given, and on a subset the same rule over the entries given.
    rng = np.random.default_rng(17)
    n, m, reg = 60, 45, 3e-3
    M = rng.random((n, m))
    f0, g0 = rng.standard_normal(n) * 0.01, rng.standard_normal(m) * 0.01
    f, g = f0 + rng.standard_normal(n) * 1e-3, g0 + rng.standard_normal(m) * 1e-3
    ef, eg = np.exp((f - f0) / reg), np.exp((g - g0) / reg)
    cpu, ref = kernels(name="cpu"), kernels(name="fallback")

    def entries(delta, cap):
        _, _, count, _, idx, vals = cpu.sns_eval(M, f0, g0, reg, delta, cap)
        return count, idx, vals

    full = entries(1e-300, m)
    assert full[0].sum() == n * m
    for delta, cap in [(1e-3, m), (1e-2, 8), (0.9, 3)]:
        want = cpu.sns_eval(M, f, g, reg, delta, cap)
        for table in (cpu, ref):
            got = table.sns_eval_sparse(*full, ef, eg, delta, cap, m)
            assert_allclose(got[0], want[0], rtol=1e-12)
            # (the fallback's column sums difference a cumulative sum: exact to round-off of the total)
            assert_allclose(got[1], want[1], rtol=1e-12, atol=1e-14 * want[1].sum())
            assert_array_equal(got[2], want[2])
            assert_array_equal(got[3], want[3])
            keep = np.arange(cap)[None, :] < got[2][:, None]
            assert_array_equal(got[4][:, :cap][keep], want[4][keep])
            assert_allclose(got[5][:, :cap][keep], want[5][keep], rtol=1e-12)
    # a subset: rows with a few entries; the others are zeros of the plan
    count, idx0, vals0 = entries(1e-2, 10)
    data, indices, indptr = cpu.kept_csr(count, idx0, vals0)
    S = scipy.sparse.csr_matrix((data, indices, indptr), shape=(n, m)).toarray() * ef[:, None] * eg[None, :]
    for table in (cpu, ref):
        r, c, kept, raised, idx, vals = table.sns_eval_sparse(count, idx0, vals0, ef, eg, 1e-1, 4, m)
        assert_allclose(r, S.sum(axis=1), rtol=1e-12)
        assert_allclose(c, S.sum(axis=0), rtol=1e-12, atol=1e-14 * S.sum())
        for i in range(n):
            s = raised[i]
            t = S[i].max() * (0.1 * 10.0**s if s <= 6 and 0.1 * 10.0**s < 1 else 1.0)
            cols = np.nonzero(S[i] >= t * (1 - 1e-12))[0][:4]
            assert_array_equal(idx[i, : kept[i]], cols)


def test_sns_candidates_bound_the_mass_they_leave_out():
    # Newton's trial points are evaluated on the candidates; their bound on the mass left out holds at points
    # away from where they were collected, and the solve ends with the whole plan's error below stopThr.
    from secondorder.ot import _sns
    from secondorder.ot._utils import prepare

    n = 500
    M = _clouds(n, n, seed=18)
    problem = prepare(None, None, M, 1e-3, 100, 1e-9)
    _, log = ot.sinkhorn(None, None, M, 1e-3, method="sinkhorn_log", log=True, numItermax=30, warn=False)
    f0, g0 = log["f"], log["g"]
    cands = _sns._Candidates(problem, f0, g0, n // 2)
    assert cands.complete
    rng = np.random.default_rng(18)
    for scale in (0.0, 1e-4, 1e-3, 3e-3):
        f = f0 + scale * rng.standard_normal(n)
        g = g0 + scale * rng.standard_normal(n)
        P = np.exp((f[:, None] + g[None, :] - M) / 1e-3)
        count, idx, _ = cands.entries
        inside = np.zeros_like(P, dtype=bool)
        for i in range(n):
            inside[i, idx[i, : count[i]]] = True
        outside = P[~inside].sum()
        assert outside <= cands.left_out(f, g) * (1 + 1e-12)
        r, c = cands.sns_eval(f, g, 1e-5, 50)[:2]
        assert_allclose(r, np.where(inside, P, 0.0).sum(axis=1), rtol=1e-11)
        assert_allclose(c, np.where(inside, P, 0.0).sum(axis=0), rtol=1e-11, atol=1e-300)
    P, log = ot.sinkhorn(None, None, M, 1e-3, log=True)
    a = np.full(n, 1.0 / n)
    assert _marginal_error(P, a, a) < 1e-9
    assert log["n_passes_newton"] <= 2  # the candidates' pass, and at most one check of the whole plan


def test_value_range_kernels():
    rng = np.random.default_rng(19)
    M = rng.standard_normal((300, 7))
    for table in (kernels(name="cpu"), kernels(name="fallback")):
        assert table.value_range(M) == (M.max(), M.min())
        assert table.value_range(M.astype(np.float32)) == (float(M.astype(np.float32).max()), float(M.astype(np.float32).min()))
        assert table.value_range(M[:, ::2]) == (M[:, ::2].max(), M[:, ::2].min())
        bad = M.copy()
        bad[150, 3] = np.nan
        assert all(np.isnan(table.value_range(bad)))
        bad[150, 3] = -np.inf
        assert table.value_range(bad)[1] == -np.inf


def test_group_gram_and_row_max_kernels():
    rng = np.random.default_rng(20)
    n, m, k = 50, 40, 7
    S = scipy.sparse.random(n, m, density=0.4, random_state=rng, format="csr")
    groups = rng.integers(-1, k, size=m)
    w = rng.random(n)
    Q = np.stack([(S.toarray()[:, groups == a]).sum(axis=1) for a in range(k)], axis=1)
    vals = rng.random((n, 9))
    count = rng.integers(0, 10, size=n)
    want_max = np.array([vals[i, : count[i]].max() if count[i] else 0.0 for i in range(n)])
    for table in (kernels(name="cpu"), kernels(name="fallback")):
        assert_allclose(table.group_gram(S.data, S.indices, S.indptr, groups, k, w), Q.T @ (w[:, None] * Q),
                        rtol=1e-12, atol=1e-13)
        assert_array_equal(table.row_max(count, vals), want_max)


def test_row_scaled_kernel_equals_lse_then_kernel():
    rng = np.random.default_rng(21)
    n, m, reg = 40, 30, 2e-3
    M = rng.random((n, m))
    log_a = np.log(rng.random(n) + 0.1)
    zeros = np.zeros(m)
    for table in (kernels(name="cpu"), kernels(name="fallback")):
        for dtype in (np.float64, np.float32):
            out = np.empty((n, m), dtype=dtype)
            f = table.row_scaled_kernel(M.astype(dtype), log_a, reg, out)
            want_f = reg * (log_a - table.lse_rows(M.astype(dtype), zeros, reg, np.empty(n)))
            assert_allclose(f, want_f, rtol=1e-14, atol=1e-17)
            assert_allclose(out, table.scaled_kernel(M.astype(dtype), want_f, zeros, reg, np.empty((n, m), dtype=dtype)),
                            rtol=1e-6 if dtype == np.float32 else 1e-13, atol=1e-300)
            assert_allclose(np.log((out.astype(np.float64)).sum(axis=1)), log_a, atol=1e-5 if dtype == np.float32 else 1e-12)


def test_sns_float32_cost_where_the_float32_kernel_underflows():
    # Clouds far apart at small reg: at the cold start whole rows of the float32 kernel underflow and the
    # scalings overflow.  A float32 cost then warms up in the log domain (a float64 cost on a float64 kernel)
    # instead of returning NaN.
    rng = np.random.default_rng(22)
    x, y = rng.standard_normal((200, 2)), rng.standard_normal((200, 2)) + np.array([6.0, 0.0])
    M = ot.dist(x, y)
    M /= M.max()
    a = np.full(200, 1 / 200)
    for dtype in (np.float32, np.float64):
        P, log = ot.sinkhorn(a, a, M.astype(dtype), 1e-3, log=True, numItermax=5000)
        assert P.dtype == dtype and np.isfinite(P).all()
        assert log["err"][-1] < 1e-9
        assert _marginal_error(P.astype(np.float64), a, a) < (1e-5 if dtype == np.float32 else 1e-9)


@pytest.mark.parametrize("kind", ["clouds", "apart"])
def test_sns_holds_no_array_after_it_returns(kind):
    # Nothing of the solve outlives it but the plan: no reference cycle keeps the kernel's array (or anything
    # else) alive until the garbage collector runs.
    import gc
    import tracemalloc

    rng = np.random.default_rng(23)
    shift = np.array([6.0, 0.0]) if kind == "apart" else 0.0
    x, y = rng.standard_normal((1000, 2)), rng.standard_normal((1000, 2)) + shift
    M = ot.dist(x, y)
    M /= M.max()
    ot.sinkhorn([], [], M, 1e-3)
    gc.collect()
    gc.disable()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        P = ot.sinkhorn([], [], M, 1e-3)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
        gc.enable()
    assert after - before < P.nbytes + 2**18


def test_scratch_like_lies_in_the_plan_where_it_fits():
    from secondorder.ot._utils import prepare

    rng = np.random.default_rng(5)
    a = np.array([0.0, 0.3, 0.7])  # a zero row: the problem's rows are the support's
    M = rng.random((3, 4))
    problem = prepare(a, np.full(4, 0.25), M, 0.1, 10, 1e-9)
    assert problem.dims == (2, 4)
    fresh = problem.scratch_like(np.float32)
    assert fresh.shape == (2, 4) and fresh.dtype == np.float32
    problem.plan_out = np.empty(problem.dims, dtype=np.float32)
    assert np.shares_memory(problem.scratch_like(np.float32), problem.plan_out)
    wide = problem.scratch_like(np.float64)  # does not fit in float32's bytes: its own array
    assert wide.shape == (2, 4) and wide.dtype == np.float64 and not np.shares_memory(wide, problem.plan_out)
    f, g = rng.random(2) * 0.01, rng.random(4) * 0.01
    P = problem.plan(f, g)
    assert P.shape == (3, 4) and not P[0].any()
    assert_allclose(P[1:], np.exp((f[:, None] + g[None, :] - M[1:]) / 0.1), rtol=1e-6)


def test_only_a_solver_that_uses_it_gets_the_plans_array_before_the_solve(monkeypatch):
    """The plan's array is made before the solve only for SNS, which lays its
    arrays in it; the other solvers' plans are made after theirs are freed."""
    from secondorder.ot import _utils

    made = []
    real = _utils.populated

    def spy(shape, dtype):
        made.append(shape)
        return real(shape, dtype)

    monkeypatch.setattr(_utils, "populated", spy)
    rng = np.random.default_rng(3)
    M = ot.dist(rng.random((30, 2)), rng.random((40, 2)))
    ot.sinkhorn([], [], M, 0.05, method="sinkhorn_stabilized")
    ot.sinkhorn2([], [], M, 0.05, method="sns")
    assert made == []
    P = ot.sinkhorn([], [], M, 0.05, method="sns")
    assert made == [(30, 40)] and P.shape == (30, 40)

import numpy as np
import pytest
from numpy.testing import assert_allclose

from secondorder._backend import kernels
from secondorder.curvature import MFAC, MFACStatic
from tests.conftest import rtol_for


def _dense_fisher(grads, m, damp):
    G = np.asarray(grads, dtype=np.float64)
    return damp * np.eye(G.shape[1]) + G.T @ G / m


def _rel(a, b):
    return np.linalg.norm(np.asarray(a, dtype=np.float64) - b) / np.linalg.norm(b)


@pytest.mark.parametrize("damp", [1e-3, 0.1, 10.0])
def test_dynamic_ihvp_equals_dense_solve_while_filling_and_after_wrapping(dtype, damp):
    rng = np.random.default_rng(0)
    d, m = 120, 8
    model = MFAC(window=m, damp=damp)
    grads = []
    for t in range(3 * m + 3):
        g = rng.standard_normal(d).astype(dtype)
        grads.append(g)
        model.update(None, g)
        assert model.n_grads == min(t + 1, m)
        F = _dense_fisher(grads[-m:], m, damp)
        v = rng.standard_normal(d).astype(dtype)
        tol = 1e-10 if dtype == np.float64 else 1e-4
        assert _rel(model.solve(v), np.linalg.solve(F, v)) < tol
        assert _rel(model.solve(v, 0.37), np.linalg.solve(F + 0.37 * np.eye(d), v)) < tol
        assert _rel(model.matvec(v), F @ v) < tol
        assert_allclose(model.diagonal(), np.diag(F), rtol=tol)
        assert model.solve(v).dtype == dtype


def test_update_and_ihvp_uses_the_new_window(dtype):
    rng = np.random.default_rng(1)
    d, m = 64, 5
    a, b = MFAC(m, 0.05), MFAC(m, 0.05)
    for _ in range(7):
        g = rng.standard_normal(d).astype(dtype)
        got = a.update_and_ihvp(g)
        b.add(g)
        assert _rel(got, np.asarray(b.ihvp(g), np.float64)) < rtol_for(dtype)


def test_empty_window_is_damped_identity():
    model = MFAC(4, damp=0.5)
    v = np.arange(3.0)
    assert_allclose(model.solve(v), v / 0.5)
    assert_allclose(model.solve(v, 1.5), v / 2.0)


@pytest.mark.parametrize("radius", [1e-3, 0.3, 5.0, 1e6])
def test_trust_step_is_exact(dtype, radius):
    rng = np.random.default_rng(2)
    d, m = 50, 6
    model = MFAC(m, 0.2)
    grads = [rng.standard_normal(d) for _ in range(9)]
    for g in grads:
        model.update(None, g.astype(dtype))
    F = _dense_fisher(grads[-m:], m, 0.2)
    g = rng.standard_normal(d)
    w, Q = np.linalg.eigh(F)
    c, _, _ = kernels(name="fallback").trust_region_eig(w, Q.T @ g, radius)
    ref = Q @ c
    assert _rel(model.trust_step(g.astype(dtype), radius)[0], ref) < (1e-9 if dtype == np.float64 else 1e-4)


def test_static_inverse_pieces_equal_dense_inverse(dtype):
    rng = np.random.default_rng(3)
    m, d, damp = 12, 80, 0.03
    G = rng.standard_normal((m, d))
    static = MFACStatic(G.astype(dtype), damp=damp)
    Finv = np.linalg.inv(_dense_fisher(G, m, damp))
    tol = 1e-10 if dtype == np.float64 else 1e-4
    v = rng.standard_normal(d)
    assert _rel(static.ihvp(v.astype(dtype)), Finv @ v) < tol
    assert _rel(static.inverse_diagonal(), np.diag(Finv)) < tol
    for j, q in [(0, 0), (3, 17), (79, 5)]:
        assert abs(static.inverse_element(j, q) - Finv[j, q]) < tol * np.abs(Finv).max()
    assert _rel(static.inverse_columns([4, 9]), Finv[:, [4, 9]]) < tol


@pytest.mark.parametrize("joint", [True, False])
def test_obs_pruning_matches_dense_formulas(joint):
    rng = np.random.default_rng(4)
    m, d, damp = 10, 40, 0.1
    G = rng.standard_normal((m, d))
    w = rng.standard_normal(d)
    static = MFACStatic(G, damp=damp)
    F = _dense_fisher(G, m, damp)
    Finv = np.linalg.inv(F)
    scores = w**2 / (2 * np.diag(Finv))
    w_new, Q, got_scores = static.prune(w, 6, joint=joint)
    assert_allclose(got_scores, scores, rtol=1e-10)
    assert_allclose(np.sort(Q), np.sort(np.argsort(scores)[:6]))
    if joint:
        delta = -Finv[:, Q] @ np.linalg.solve(Finv[np.ix_(Q, Q)], w[Q])
        # The joint correction is the constrained minimiser of the quadratic model.
        keep = np.setdiff1d(np.arange(d), Q)
        best = w.copy()
        best[Q] = 0
        best[keep] = w[keep] - np.linalg.solve(F[np.ix_(keep, keep)], F[np.ix_(keep, Q)] @ (0 - w[Q]))
        assert_allclose(w + delta, best, atol=1e-10)
    else:
        e = np.zeros(d)
        e[Q] = w[Q] / np.diag(Finv)[Q]
        delta = -Finv @ e
    expected = w + delta
    expected[Q] = 0.0
    assert_allclose(w_new, expected, rtol=1e-9, atol=1e-12)
    assert np.all(w_new[Q] == 0)


@pytest.mark.parametrize(
    "make, exc, match",
    [
        (lambda: MFAC(window=0), ValueError, "`window` must be an integer >= 1"),
        (lambda: MFAC(damp=-1.0), ValueError, "`damp` must be > 0"),
        (lambda: MFAC(damp=0.0), ValueError, "`damp` must be > 0"),
        (lambda: MFACStatic(np.ones(5)), ValueError, "`grads` must be a non-empty"),
        (lambda: MFACStatic(np.full((2, 3), np.nan)), ValueError, "NaN"),
    ],
)
def test_bad_construction(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_bad_gradients():
    model = MFAC(3, 0.1)
    model.add(np.ones(4))
    with pytest.raises(ValueError, match="gradients must have length 4"):
        model.add(np.ones(5))
    with pytest.raises(ValueError, match="NaN or inf"):
        model.add(np.array([1.0, np.nan, 0.0, 0.0]))
    with pytest.raises(ValueError, match="needs the gradient"):
        model.update(np.zeros(4))
    static = MFACStatic(np.ones((2, 4)))
    with pytest.raises(ValueError, match="`n_prune`"):
        static.prune(np.ones(4), 5)


def test_incremental_factor_stays_accurate_over_many_wraps():
    # 400 replacements with a small damping: the O(m^2) factor changes must
    # not drift from a fresh factorisation.
    rng = np.random.default_rng(8)
    d, m, damp = 40, 8, 1e-6
    model = MFAC(m, damp)
    grads = []
    for t in range(400):
        g = rng.standard_normal(d) * 10.0 ** rng.uniform(-3, 3)
        grads.append(g)
        model.update(None, g)
        if t % 50 == 49 or t == 0:
            fresh = MFAC(m, damp)
            fresh.fill(np.array(grads[-m:]))
            v = rng.standard_normal(d)
            assert _rel(model.ihvp(v), np.asarray(fresh.ihvp(v))) < 1e-9
    assert model.nfact == 1  # one factorisation, then only O(m^2) changes


def test_fill_equals_adding_one_by_one(dtype):
    rng = np.random.default_rng(9)
    grads = rng.standard_normal((11, 30)).astype(dtype)
    a, b = MFAC(6, 0.1), MFAC(6, 0.1)
    a.fill(grads)
    for g in grads:
        b.add(g)
    v = rng.standard_normal(30).astype(dtype)
    assert _rel(a.ihvp(v), np.asarray(b.ihvp(v), np.float64)) < rtol_for(dtype)
    g = rng.standard_normal(30).astype(dtype)
    assert _rel(a.update_and_ihvp(g), np.asarray(b.update_and_ihvp(g), np.float64)) < rtol_for(dtype)


def test_cholesky_drop_first_kernel_numba_equals_fallback_and_dense():
    rng = np.random.default_rng(10)
    n = 30
    B = rng.standard_normal((n, n))
    A = B @ B.T + n * np.eye(n)
    U = np.linalg.cholesky(A).T.copy()
    ref = kernels(name="fallback").chol_drop_first_upper(U.copy(), n)
    got = kernels(name="cpu").chol_drop_first_upper(U.copy(), n)
    assert_allclose(np.triu(got[: n - 1, : n - 1]), np.triu(ref[: n - 1, : n - 1]), rtol=1e-12, atol=1e-12)
    R = np.triu(got[: n - 1, : n - 1])
    assert_allclose(R.T @ R, A[1:, 1:], rtol=1e-12)


def test_solve_right_after_update_reuses_the_new_row_and_stays_exact():
    """update(x, g) then solve(g) (the drivers' order) reads the window
    twice, not three times, and still equals the dense solve."""
    rng = np.random.default_rng(11)
    d, m, damp = 40, 6, 0.3
    model = MFAC(window=m, damp=damp)
    grads = rng.standard_normal((9, d))
    for g in grads:
        model.update(None, g)
        k = min(model.n_grads, m)
        G = model._G[:k]
        F = damp * np.eye(d) + G.T @ G / m
        calls = {"n": 0}
        real = model._G

        class Counting(np.ndarray):
            def __matmul__(self, other):
                calls["n"] += 1
                return np.asarray(self) @ other

        model._G = real.view(Counting)
        try:
            out = model.solve(g.copy())
        finally:
            model._G = real
        assert calls["n"] == 1  # G g came from the update: only the pass for G^T y remains
        np.testing.assert_allclose(out, np.linalg.solve(F, g), rtol=1e-10)
        np.testing.assert_allclose(model.solve(g + 1.0), np.linalg.solve(F, g + 1.0), rtol=1e-10)

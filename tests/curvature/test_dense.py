import numpy as np
import pytest
from numpy.testing import assert_allclose

from secondorder.curvature import DenseHessian, NonFiniteCurvatureError, NotPositiveDefiniteError
from tests.conftest import rtol_for


def _spd(n, rng, shift=0.0):
    A = rng.standard_normal((n, n))
    return A @ A.T / n + shift * np.eye(n)


@pytest.mark.parametrize("factorization", ["auto", "cholesky", "eigh"])
@pytest.mark.parametrize("n", [5, 40])
def test_solve_matches_dense_solve(dtype, factorization, n):
    rng = np.random.default_rng(0)
    H = _spd(n, rng, 0.1)
    calls = []

    def hess(x):
        calls.append(x.copy())
        return H.astype(dtype)

    model = DenseHessian(hess, factorization=factorization)
    x = np.zeros(n, dtype=dtype)
    model.update(x, None)
    assert calls == []  # lazy: nothing evaluated before it is needed
    v = rng.standard_normal(n).astype(dtype)
    for shift in [0.0, 0.3, 5.0, 0.3, 1e-3, 2.0, 7.0, 11.0, 0.01, 0.02, 0.04, 0.08]:
        got = model.solve(v, shift)
        ref = np.linalg.solve(H + shift * np.eye(n), v.astype(np.float64))
        assert_allclose(got, ref, rtol=rtol_for(dtype) * 100, atol=rtol_for(dtype))
    assert len(calls) == 1  # one Hessian evaluation per point
    assert_allclose(model.matvec(v), H @ v, rtol=rtol_for(dtype) * 10)
    assert_allclose(model.diagonal(), np.diag(H), rtol=rtol_for(dtype))


def test_auto_switches_to_one_eigh_after_enough_choleskys():
    rng = np.random.default_rng(1)
    n = 60
    model = DenseHessian(_spd(n, rng, 0.1))
    model.update(np.zeros(n))
    v = rng.standard_normal(n)
    for k in range(20):
        model.solve(v, 2.0**-k)
    # 8 Choleskys (the cost of one eigh) and then a single eigh for the rest.
    assert model.nfact == 9


def test_not_positive_definite_raises():
    H = np.diag([2.0, -1.0, 3.0])
    for factorization in ["cholesky", "eigh"]:
        model = DenseHessian(H, factorization=factorization)
        model.update(np.zeros(3))
        with pytest.raises(NotPositiveDefiniteError):
            model.solve(np.ones(3), 0.5)
        assert_allclose(model.solve(np.ones(3), 1.5), np.ones(3) / (np.diag(H) + 1.5))


def test_nan_hessian_is_reported():
    model = DenseHessian(lambda x: np.full((2, 2), np.nan))
    model.update(np.zeros(2))
    with pytest.raises(NonFiniteCurvatureError):
        model.solve(np.ones(2), 1.0)


def test_wrong_shape_names_hess():
    model = DenseHessian(lambda x: np.eye(3))
    model.update(np.zeros(2))
    with pytest.raises(ValueError, match="`hess` returned an array of shape"):
        model.matvec(np.ones(2))


@pytest.mark.parametrize("case", ["pd-interior", "pd-boundary", "indefinite", "hard"])
def test_trust_step_optimality(dtype, case):
    rng = np.random.default_rng(3)
    n = 30
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    w = np.linspace(1.0, 10.0, n)
    g = rng.standard_normal(n)
    radius = 1e3 if case == "pd-interior" else 0.5
    if case in ("indefinite", "hard"):
        w = np.linspace(-3.0, 10.0, n)
    if case == "hard":
        g = g - Q[:, 0] * (Q[:, 0] @ g)  # no weight on the most negative eigenvector
        radius = 50.0
    H = (Q * w) @ Q.T
    model = DenseHessian(H.astype(dtype))
    model.update(np.zeros(n, dtype=dtype))
    s = np.asarray(model.trust_step(g.astype(dtype), radius)[0], dtype=np.float64)
    norm = np.linalg.norm(s)
    tol = 1e-8 if dtype == np.float64 else 1e-3
    assert norm <= radius * (1 + tol)
    # Optimality: (H + sigma I) s = -g with sigma >= max(0, -w_min).
    if case == "pd-interior":
        assert_allclose(s, -np.linalg.solve(H, g), rtol=tol * 10)
    else:
        assert_allclose(norm, radius, rtol=tol)
        sigma = -(s @ (H @ s) + g @ s) / (s @ s)
        assert sigma >= -w.min() - tol * 10
        assert_allclose(H @ s + sigma * s, -g, atol=tol * 100)
    # No point of the ball does better (checked against random boundary points).
    def m(p):
        return g @ p + 0.5 * p @ H @ p

    for _ in range(50):
        p = rng.standard_normal(n)
        p *= radius / np.linalg.norm(p) * rng.uniform(0, 1)
        assert m(s) <= m(p) + tol * abs(m(s))

"""Newton with a Cholesky solve and a line search, ``solver="auto"``'s
method where the gradient's pass sums the Hessian: against scikit-learn's
newton-cholesky and a dense solve, and its hand-over to the trust region."""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.linear_model import LogisticRegression as SKLogisticRegression

from secondorder.linear_model import LogisticLoss, LogisticRegression
from secondorder.linear_model._auto import fit_auto
from secondorder.linear_model._newton_cholesky import newton_cholesky


def _problem(n, d, seed=0, spread=1.0, scale=1.0):
    rng = np.random.default_rng(seed)
    scales = np.logspace(0, np.log10(spread), d)
    X = rng.standard_normal((n, d)) * scales
    z = scale * (X / scales) @ rng.standard_normal(d) / np.sqrt(d)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    return X, y


@pytest.mark.parametrize("n, d, C, spread, scale", [
    (500, 3, 1.0, 1.0, 1.0),
    (1000, 10, 1e4, 1.0, 3.0),  # weak penalty
    (3000, 23, 1e2, 1e3, 1.0),  # 24 parameters, unscaled features
    (400, 8, 1e6, 1.0, 20.0),  # nearly separable
])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matches_scikit_learn(n, d, C, spread, scale, dtype):
    X, y = _problem(n, d, seed=d, spread=spread, scale=scale)
    ref = SKLogisticRegression(C=C, solver="newton-cholesky", tol=1e-14, max_iter=1000).fit(X, y)
    tol = 1e-9 if dtype == np.float64 else 1e-4
    clf = LogisticRegression(C=C, tol=tol).fit(X.astype(dtype), y)
    assert clf.solver_ == "newton-cholesky"
    assert clf.coef_.dtype == dtype
    loss = LogisticLoss(X, y, alpha=1 / (C * n))
    w = np.concatenate([clf.coef_.ravel(), clf.intercept_]).astype(np.float64)
    if dtype == np.float64:
        assert np.linalg.norm(loss.grad(w)) <= 1e-9
        assert_allclose(clf.predict_proba(X), ref.predict_proba(X), atol=1e-7)
    else:
        assert_allclose(clf.predict_proba(X), ref.predict_proba(X), atol=1e-3)


def test_iterates_are_newton_steps_from_a_dense_solve():
    """Where the full step is accepted, each iterate is w - H^{-1} g with
    the Hessian from its own pass (checked against the loss's ``hess``)."""
    X, y = _problem(800, 6, seed=3)
    loss = LogisticLoss(X, y, alpha=1e-2)
    w0 = np.zeros(loss.n_params)
    one = newton_cholesky(loss, w0.copy(), 1e-300, 1)
    assert one.nit == 1 and not one.success
    reference = LogisticLoss(X, y, alpha=1e-2)
    step = np.linalg.solve(reference.hess(w0), reference.grad(w0))
    assert_allclose(one.x, w0 - step, rtol=1e-12)
    assert loss._prefetch is None  # later gradients no longer sum the matrix
    full = newton_cholesky(loss, w0, 1e-10, 50)
    assert full.success and full.nit <= 8
    assert np.linalg.norm(reference.grad(full.x)) <= 1e-10
    assert np.array_equal(w0, np.zeros(loss.n_params))  # the start is not written into


@pytest.mark.parametrize("start", [5.0, -30.0])
def test_line_search_from_a_far_start(start):
    """Far from the solution the margins are large, the Hessian nearly
    vanishes and the full Newton step overshoots: the line search halves
    it, and the iteration still converges."""
    X, y = _problem(1000, 10, seed=1)
    loss = LogisticLoss(X, y, alpha=1e-3)
    res = newton_cholesky(loss, np.full(11, start), 1e-9, 100)
    assert res.success and np.linalg.norm(res.jac) <= 1e-9
    assert loss.n_passes > res.nit + 1  # trials were rejected
    ref = LogisticLoss(X, y, alpha=1e-3)
    assert_allclose(res.x, newton_cholesky(ref, np.zeros(11), 1e-12, 100).x, rtol=1e-8, atol=1e-10)


def test_hands_over_to_the_trust_region_where_the_hessian_is_singular():
    X, y = _problem(600, 5, seed=4)
    X[:, 2] = 0.0  # no curvature along it: no penalty, no intercept
    loss = LogisticLoss(X, y, alpha=0.0, fit_intercept=False)
    res = newton_cholesky(loss, np.zeros(5), 1e-9, 100)
    assert not res.success and res.nit == 0 and "not positive definite" in res.message
    res = fit_auto(LogisticLoss(X, y, alpha=0.0, fit_intercept=False), 1e-9, 100, "exact")
    assert res.success and res.solver == "newton-cholesky+trust-region"
    assert np.linalg.norm(res.jac) <= 1e-9


def test_max_iter_counts_newton_iterations():
    X, y = _problem(1000, 10, scale=3.0)
    with pytest.warns(Warning, match="did not converge"):
        clf = LogisticRegression(C=1e4, tol=1e-12, max_iter=2).fit(X, y)
    assert clf.n_iter_[0] == 2 and clf.solver_ == "newton-cholesky"

"""method="trust-region" with every curvature model, against scipy's minimisers."""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.optimize import OptimizeWarning

import secondorder as so
from secondorder.curvature import MFAC, DiagonalFisher, HutchinsonDiagonal
from secondorder.optimize import problems
from tests.optimize.test_gns import PROBLEMS, reference

SMALL = [n for n in PROBLEMS if n != "rosenbrock-1000"]
# The models built from gradients alone (a running average of g^2, the
# M-FAC window of past gradients) carry no curvature of a deterministic
# problem: on the narrow Rosenbrock valleys of n >= 10 they behave like
# gradient descent and do not reach the minimiser in a test's budget.
APPROX_PROBLEMS = ["rosenbrock-2", "quadratic-50", "quartic-30", "logistic-2000x50", "logsumexp-100"]
APPROX_PROBLEMS_F32 = ["quartic-30", "logistic-2000x50", "logsumexp-100"]


@pytest.mark.parametrize("curvature", ["hess", "hessp"])
@pytest.mark.parametrize("name", SMALL)
def test_exact_curvature_reaches_scipy_minimiser(name, curvature, dtype):
    p = PROBLEMS[name].astype(dtype)
    tol = 1e-9 if dtype == np.float64 else 1e-4
    res = so.minimize(p.fun, p.x0, jac=p.jac, method="trust-region", tol=tol, **{curvature: getattr(p, curvature)})
    assert res.success, res.message
    assert res.x.dtype == dtype
    ref = reference(name, curvature)
    scale = max(1.0, np.linalg.norm(ref.x))
    atol = 10 * tol if dtype == np.float64 else 3e-3
    assert np.linalg.norm(res.x - ref.x) <= atol * scale


def test_exact_dense_matches_scipy_trust_exact_iterations():
    # Same constants, same exact subproblem: the same iterates.
    from scipy.optimize import minimize as scipy_minimize

    p = PROBLEMS["rosenbrock-2"]
    res = so.minimize(p.fun, p.x0, jac=p.jac, hess=p.hess, method="trust-region", tol=1e-8)
    ref = scipy_minimize(p.fun, p.x0, jac=p.jac, hess=p.hess, method="trust-exact", options={"gtol": 1e-8})
    assert abs(res.nit - ref.nit) <= 2


def _approx_options(kind, p):
    if kind == "fisher-samples":
        return {}, {"curvature": DiagonalFisher(p.jac_samples)}
    if kind.startswith("precond-"):
        return {"hessp": p.hessp}, {"curvature_options": {"preconditioner": kind.split("-", 1)[1]}}
    return {"hessp": p.hessp}, {"curvature": kind}


@pytest.mark.parametrize("kind", ["diag-fisher", "hutchinson", "mfac", "precond-diag-fisher", "precond-mfac"])
@pytest.mark.parametrize("name", APPROX_PROBLEMS)
def test_approximate_models_reach_the_minimiser(name, kind):
    p = PROBLEMS[name]
    kwargs, options = _approx_options(kind, p)
    options["maxiter"] = 30000
    res = so.minimize(p.fun, p.x0, jac=p.jac, method="trust-region", tol=1e-7, options=options, **kwargs)
    assert res.status in (0, 2), res.message
    assert np.linalg.norm(res.jac) <= 1e-5
    ref = reference(name, "hess")
    # ||x - x*|| <= ||g|| / lambda_min(H(x*)); lambda_min >= 1e-3 (logistic's ridge).
    assert_allclose(res.x, ref.x, atol=max(1e-4, 2e-3 * np.linalg.norm(res.jac) / 1e-5))


@pytest.mark.parametrize("kind", ["diag-fisher", "hutchinson", "mfac", "precond-diag-fisher"])
@pytest.mark.parametrize("name", APPROX_PROBLEMS_F32)
def test_approximate_models_float32(name, kind):
    p = PROBLEMS[name].astype(np.float32)
    kwargs, options = _approx_options(kind, p)
    res = so.minimize(p.fun, p.x0, jac=p.jac, method="trust-region", tol=1e-3, options=options, **kwargs)
    assert res.success, res.message
    assert res.x.dtype == np.float32
    ref = reference(name, "hess")
    lam_min = 1e-3 if name.startswith("logistic") else 0.05
    assert np.linalg.norm(res.x - ref.x) <= 2e-3 / lam_min


def test_fisher_from_per_sample_gradients_on_logistic_regression():
    p = PROBLEMS["logistic-2000x50"]
    res = so.minimize(p.fun, p.x0, jac=p.jac, method="trust-region", tol=1e-8, options={"curvature": DiagonalFisher(p.jac_samples)})
    assert res.success
    assert_allclose(res.x, reference("logistic-2000x50", "hess").x, atol=1e-5)
    assert res.nhev == res.nit + 0 or res.nhev <= res.nit + 1  # jac_samples once per accepted point


@pytest.mark.parametrize("method", ["gns", "trust-region"])
@pytest.mark.parametrize(
    "make",
    [
        lambda p: DiagonalFisher(p.jac_samples),
        lambda p: MFAC(window=20, damp=1e-4),
        lambda p: HutchinsonDiagonal(p.hessp, n_probes=4, absolute=True, damp=1e-3, seed=0),
    ],
    ids=["diag-fisher", "mfac", "hutchinson"],
)
def test_both_methods_take_every_model(method, make):
    p = PROBLEMS["logistic-2000x50"]
    res = so.minimize(p.fun, p.x0, jac=p.jac, method=method, tol=1e-7, options={"curvature": make(p), "maxiter": 5000})
    assert res.success, res.message
    assert_allclose(res.x, reference("logistic-2000x50", "hess").x, atol=2e-3)


def test_zero_gradient_at_x0_returns_at_once():
    calls = {"hess": 0}

    def hess(x):
        calls["hess"] += 1
        return np.eye(2)

    res = so.minimize(lambda x: float(x @ x), np.zeros(2), jac=lambda x: 2 * x, hess=hess, method="trust-region")
    assert res.success and res.nit == 0 and calls["hess"] == 0


def test_hessian_only_at_accepted_points():
    p = problems.rosenbrock(10)
    seen = []
    accepted = [p.x0.copy()]

    def hess(x):
        seen.append(x.copy())
        return p.hess(x)

    res = so.minimize(p.fun, p.x0, jac=p.jac, hess=hess, method="trust-region", tol=1e-8, callback=lambda x: accepted.append(x))
    assert res.success
    distinct = [a for i, a in enumerate(accepted) if i == 0 or not np.array_equal(a, accepted[i - 1])]
    assert len(seen) == len(distinct) - 1  # none at rejected trials, none at the final point
    for x, a in zip(seen, distinct):
        assert_allclose(x, a, rtol=0, atol=0)


def test_nan_at_trial_points_shrinks_the_radius():
    c = np.array([1.0, 0.1, 10.0])

    def fun(x):
        return np.nan if np.any(x <= 0) else float(c @ x - np.sum(np.log(x)))

    res = so.minimize(
        fun,
        [10.0, 10.0, 10.0],
        jac=lambda x: c - 1 / x,
        hess=lambda x: np.diag(1 / x**2),
        method="trust-region",
        tol=1e-10,
        options={"initial_trust_radius": 100.0},
    )
    assert res.success
    assert_allclose(res.x, 1 / c, rtol=1e-9)


def test_steps_stay_finite_and_statuses():
    p = problems.rosenbrock(2)
    res = so.minimize(p.fun, p.x0, jac=p.jac, hess=p.hess, method="trust-region", options={"maxiter": 4})
    assert res.status == 1 and res.nit == 4
    # A gradient that points uphill: no step passes the ratio test, the radius
    # collapses, and the run ends without success, close to x0.
    res = so.minimize(p.fun, p.x0, jac=lambda x: -p.jac(x), hess=p.hess, method="trust-region")
    assert res.status in (1, 2) and not res.success
    assert_allclose(res.x, p.x0, atol=1e-10)
    assert abs(p.fun(res.x) - p.fun(p.x0)) < 1e-8


@pytest.mark.parametrize(
    "options, exc, match",
    [
        ({"eta": 0.3}, ValueError, r"`eta` must be in \[0, 0.25\)"),
        ({"initial_trust_radius": 5000.0}, ValueError, "must not exceed `max_trust_radius`"),
        ({"initial_trust_radius": -1.0}, ValueError, "`initial_trust_radius` must be a positive"),
        ({"curvature": "bfgs"}, ValueError, "`curvature` must be one of"),
        ({"curvature": MFAC(4), "curvature_options": {"damp": 1.0}}, ValueError, "curvature_options"),
        ({"curvature_options": {"window": 3}}, ValueError, "curvature 'exact' takes no curvature_options"),
        ({"curvature": "mfac", "curvature_options": {"window": 0}}, ValueError, "`window`"),
        ({"curvature": "mfac", "curvature_options": {"damp": -1.0}}, ValueError, "`damp` must be > 0"),
    ],
)
def test_bad_options(options, exc, match):
    p = problems.rosenbrock(2)
    with pytest.raises(exc, match=match):
        so.minimize(p.fun, p.x0, jac=p.jac, hess=p.hess, method="trust-region", options=options)


def test_trust_region_needs_curvature_and_warns_on_unknown_options():
    p = problems.rosenbrock(2)
    with pytest.raises(ValueError, match="needs curvature"):
        so.minimize(p.fun, p.x0, jac=p.jac, method="trust-region")
    with pytest.raises(ValueError, match="needs `hessp`"):
        so.minimize(p.fun, p.x0, jac=p.jac, method="trust-region", options={"curvature": "hutchinson"})
    with pytest.warns(OptimizeWarning, match="Unknown solver options: frob"):
        so.minimize(p.fun, p.x0, jac=p.jac, hess=p.hess, method="trust-region", options={"frob": 1})

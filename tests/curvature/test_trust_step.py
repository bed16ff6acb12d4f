"""Every model's trust_step says whether its step lies on the boundary, as
scipy's trust-region subproblems do, and the driver keeps working with a
model that returns the step alone."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

import secondorder as so
from secondorder.curvature import MFAC, DenseHessian, DiagonalHessian, GaussNewton, OperatorHessian


def _models(rng, n=6):
    A = rng.standard_normal((n, n))
    H = A @ A.T / n + 0.5 * np.eye(n)
    J = rng.standard_normal((9, n))
    window = MFAC(window=4, damp=0.5)
    for g in rng.standard_normal((5, n)):
        window.add(g)
    return {
        "dense": (DenseHessian(H), H),
        "dense-eigh": (DenseHessian(H, factorization="eigh"), H),
        "operator": (OperatorHessian(lambda x, v: H @ v, rtol=1e-10), H),
        "diagonal": (DiagonalHessian(np.diag(H).copy()), np.diag(np.diag(H))),
        "gauss-newton": (GaussNewton(lambda x: J), J.T @ J),
        "mfac": (window, None),
    }


@pytest.mark.parametrize("name", ["dense", "dense-eigh", "operator", "diagonal", "gauss-newton", "mfac"])
def test_hits_boundary_is_reported(name):
    rng = np.random.default_rng(0)
    model, H = _models(rng)[name]
    x = np.zeros(6)
    model.update(x, rng.standard_normal(6)) if name == "mfac" else model.update(x)
    g = rng.standard_normal(6)
    H = H if H is not None else np.array([model.matvec(e) for e in np.eye(6)]).T
    newton = -np.linalg.solve(H, g)
    step, hits = model.trust_step(g, 10.0 * np.linalg.norm(newton))
    assert hits is False
    assert_allclose(step, newton, rtol=1e-5, atol=1e-8)
    radius = 0.1 * np.linalg.norm(newton)
    step, hits = model.trust_step(g, radius)
    assert hits is True
    assert np.linalg.norm(step) == pytest.approx(radius, rel=1e-6)
    step, hits = model.trust_step(np.zeros(6), 1.0)
    assert hits is False and not np.any(step)


def test_models_returning_the_step_alone_still_drive_trust_region():
    class StepOnly(DenseHessian):
        def trust_step(self, g, radius):
            return super().trust_step(g, radius)[0]

    from scipy.optimize import rosen, rosen_der, rosen_hess

    x0 = np.array([-1.2, 1.0, 0.5])
    ref = so.minimize(rosen, x0, jac=rosen_der, hess=rosen_hess, method="trust-region")
    res = so.minimize(rosen, x0, jac=rosen_der, hess=StepOnly(rosen_hess), method="trust-region")
    assert res.success and ref.success
    assert_allclose(res.x, ref.x, atol=1e-6)

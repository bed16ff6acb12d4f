import numpy as np
import pytest
import scipy.sparse
from numpy.testing import assert_allclose
from scipy.sparse.linalg import aslinearoperator

from secondorder.curvature import (
    DenseHessian,
    HessianCallable,
    NotPositiveDefiniteError,
    OperatorHessian,
    as_curvature,
)


def _spd(n, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n))
    return A @ A.T / n + 0.1 * np.eye(n)


@pytest.mark.parametrize("shift", [0.0, 0.5, 10.0])
def test_cg_solve_matches_dense(shift):
    n = 50
    H = _spd(n)
    model = OperatorHessian(lambda x, v: H @ v, rtol=1e-12, maxiter=500)
    model.update(np.zeros(n))
    v = np.random.default_rng(1).standard_normal(n)
    assert_allclose(model.solve(v, shift), np.linalg.solve(H + shift * np.eye(n), v), rtol=1e-9)
    assert model.ncg > 0 and model.nhev >= model.ncg


def test_cg_warm_start_reuses_previous_solution():
    n = 50
    H = _spd(n)
    model = OperatorHessian(lambda x, v: H @ v, rtol=1e-10, maxiter=500)
    model.update(np.zeros(n))
    v = np.ones(n)
    model.solve(v, 1.0)
    first = model.ncg
    model.solve(v, 1.0)  # same system: the warm start is already a solution
    assert model.ncg == first


def test_cg_stops_at_a_tenth_of_the_drivers_gtol():
    n = 200
    H = _spd(n, seed=3) + np.diag(np.logspace(-3, 1, n))
    v = np.random.default_rng(2).standard_normal(n)
    v *= 1e-4 / np.linalg.norm(v)
    tight = OperatorHessian(lambda x, v: H @ v, maxiter=1000)
    tight.update(np.zeros(n))
    s_tight = tight.solve(v)
    loose = OperatorHessian(lambda x, v: H @ v, maxiter=1000)
    loose.update(np.zeros(n), gtol=1e-4)
    s_loose = loose.solve(v)
    # the forcing term sqrt(|v|) asks for a residual of 1e-6, gtol for 1e-5
    assert np.linalg.norm(H @ s_tight - v) <= 1.5e-6
    assert 1.5e-6 < np.linalg.norm(H @ s_loose - v) <= 1.5e-5
    assert loose.ncg < tight.ncg
    # a new point without gtol forgets it
    loose.update(np.zeros(n))
    assert_allclose(loose.solve(v), s_tight)


def test_forcing_term_from_the_last_steps_prediction():
    # Eisenstat and Walker's first choice: how far the model's predicted gradient ||g + H s|| missed the actual
    # one, relative to the last gradient; not below the last term to the power 1.618 while that is above 0.1;
    # at most 0.5; none without a record (the default rule then applies)
    from secondorder.curvature._operator import _forcing

    assert _forcing(None, 1.0) is None
    assert _forcing((1.0, 1e-3, 0.05), 0.2) == pytest.approx(0.199)
    assert _forcing((1.0, 1e-3, 0.05), 1e-3 + 1e-6) == pytest.approx(1e-6)
    assert _forcing((1.0, 0.0, 0.4), 1e-3) == pytest.approx(0.4 ** ((1 + 5**0.5) / 2))
    assert _forcing((1.0, 0.0, 0.1), 3.0) == 0.5


def test_newton_with_loose_forcing_where_the_outer_rate_is_linear(monkeypatch):
    """Weakly regularised softmax regression (digits) by the estimators'
    default: from L-BFGS's point Newton's steps contract the gradient four
    to fivefold whatever the inner accuracy, so the forcing term from the
    last step loosens the solves there and spends fewer CG products than
    min(0.5, sqrt(||g||)) alone, for the same solution."""
    from sklearn.datasets import load_digits

    from secondorder.curvature import _operator
    from secondorder.linear_model import LogisticRegression

    X, y = load_digits(return_X_y=True)
    X = (X - X.mean(0)) / np.maximum(X.std(0), 1e-12)
    products = []
    trust_step = _operator.OperatorHessian.trust_step

    def spy(self, g, radius):
        start = self.ncg
        out = trust_step(self, g, radius)
        products[-1] += self.ncg - start
        return out

    monkeypatch.setattr(_operator.OperatorHessian, "trust_step", spy)
    fits = []
    for forcing in (_operator._forcing, lambda last, gnorm: None):
        monkeypatch.setattr(_operator, "_forcing", forcing)
        products.append(0)
        fits.append(LogisticRegression(C=1.0, tol=1e-8).fit(X, y))
    adaptive, fixed = fits
    assert adaptive.solver_ == fixed.solver_ == "lbfgs+trust-region"
    assert products[0] < 0.9 * products[1]
    # each within ||g|| / alpha of the minimiser (the penalty alpha = 1 / n bounds the curvature below)
    assert_allclose(adaptive.coef_, fixed.coef_, atol=2 * 1e-8 * X.shape[0])


def test_cg_detects_indefinite():
    H = np.diag([1.0, -2.0, 3.0])
    model = OperatorHessian(operator=aslinearoperator(H))
    model.update(np.zeros(3))
    with pytest.raises(NotPositiveDefiniteError):
        model.solve(np.ones(3), 0.5)


def test_hessp_wrong_shape_names_hessp():
    model = OperatorHessian(lambda x, v: np.ones(4))
    model.update(np.zeros(3))
    with pytest.raises(ValueError, match="`hessp` returned an array of shape"):
        model.solve(np.ones(3), 1.0)


@pytest.mark.parametrize("indefinite", [False, True])
def test_steihaug_step(indefinite):
    rng = np.random.default_rng(4)
    n = 40
    H = _spd(n, 2)
    if indefinite:
        H -= 0.5 * np.eye(n)
    g = rng.standard_normal(n)
    dense = DenseHessian(H)
    dense.update(np.zeros(n))
    model = OperatorHessian(lambda x, v: H @ v, rtol=1e-12, maxiter=200)
    model.update(np.zeros(n))

    def m(p):
        return g @ p + 0.5 * p @ H @ p

    for radius in [0.05, 1.0, 1e4]:
        s, _ = model.trust_step(g, radius)
        assert np.linalg.norm(s) <= radius * (1 + 1e-10)
        # At least the Cauchy decrease.
        t = min(radius / np.linalg.norm(g), (g @ g) / max(g @ H @ g, 1e-300)) if g @ H @ g > 0 else radius / np.linalg.norm(g)
        assert m(s) <= m(-t * g) + 1e-12
        if not indefinite:
            # Yuan (1998): on a convex model Steihaug-CG gets at least half of
            # the optimal decrease.
            assert m(s) <= 0.5 * m(dense.trust_step(g, radius)[0])
        if not indefinite and radius == 1e4:
            assert_allclose(s, -np.linalg.solve(H, g), rtol=1e-8)


def test_zero_gradient_trust_step():
    model = OperatorHessian(lambda x, v: v)
    model.update(np.zeros(3))
    assert_allclose(model.trust_step(np.zeros(3), 1.0)[0], 0.0)


def test_hess_callable_dispatches_on_what_it_returns():
    n = 10
    H = _spd(n)
    v = np.arange(n, dtype=float)
    ref = np.linalg.solve(H + np.eye(n), v)
    returns = {
        "dense": lambda x: H,
        "linear-operator": lambda x: aslinearoperator(H),
        "sparse": lambda x: scipy.sparse.csr_matrix(H),
        "model": lambda x: DenseHessian(H),
    }
    for name, hess in returns.items():
        model = as_curvature(hess=hess)
        assert isinstance(model, HessianCallable), name
        model.update(np.zeros(n))
        if name in ("linear-operator", "sparse"):
            model.model.rtol = 1e-12
        assert_allclose(model.solve(v, 1.0), ref, rtol=1e-8, err_msg=name)
        assert model.nhev >= 1


def test_as_curvature_choices():
    assert as_curvature() is None
    model = DenseHessian(np.eye(2))
    assert as_curvature(hess=model) is model
    assert isinstance(as_curvature(hessp=lambda x, v: v), OperatorHessian)
    assert isinstance(as_curvature(hess=np.eye(2)), DenseHessian)
    assert isinstance(as_curvature(hess=aslinearoperator(np.eye(2))), OperatorHessian)
    with pytest.raises(ValueError, match="hess='2-point'"):
        as_curvature(hess="2-point")
    with pytest.raises(TypeError, match="hessp"):
        as_curvature(hessp=3)

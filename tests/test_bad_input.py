"""Bad and odd inputs: a clear error naming the argument, or a correct
result; never a crash, a NaN, a truncated result or a changed input."""

import numpy as np
import pytest
import scipy.sparse as sp
import warnings

from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from secondorder import minimize, ot
from secondorder.curvature import MFAC, DenseHessian, DiagonalHessian, MFACStatic, OperatorHessian
from secondorder.linear_model import LogisticLoss, SoftmaxLoss


def _malformed(kind):
    X = sp.csr_matrix(np.eye(4) + np.diag(np.ones(3), 1))
    if kind == "negative index":
        X.indices[0] = -1
    elif kind == "index past the end":
        X.indices[0] = 7
    else:
        X.indptr[1] = 5
    return X


@pytest.mark.parametrize("kind", ["negative index", "index past the end", "decreasing indptr"])
def test_malformed_csr_is_an_error_before_any_kernel(kind):
    y = np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match="`X` is a malformed CSR matrix"):
        LogisticLoss(_malformed(kind), y)
    with pytest.raises(ValueError, match="`X` is a malformed CSR matrix"):
        SoftmaxLoss(_malformed(kind), y)
    pytest.importorskip("sklearn")
    from secondorder.linear_model import LogisticRegression

    clf = LogisticRegression().fit(sp.csr_matrix(np.eye(4)), y)
    with pytest.raises(ValueError, match="`X` is a malformed CSR matrix"):
        LogisticRegression().fit(_malformed(kind), y)
    with pytest.raises(ValueError, match="`X` is a malformed CSR matrix"):
        clf.predict(_malformed(kind))


@pytest.mark.parametrize("method", ["trust-region", "gns"])
def test_a_gradient_buffer_reused_by_fun_does_not_corrupt_the_solve(method):
    buf = np.zeros(3)

    def f(x):
        buf[:] = 2.0 * (x - 1.0)
        return float(np.sum((x - 1.0) ** 2)), buf

    res = minimize(f, np.zeros(3), jac=True, hess=lambda x: 2.0 * np.eye(3), method=method)
    assert res.success
    np.testing.assert_allclose(res.x, 1.0, atol=1e-8)
    np.testing.assert_allclose(res.jac, 2.0 * (res.x - 1.0), atol=1e-14)


def _updated(model, n=2):
    model.update(np.zeros(n))
    return model


def test_integer_vectors_are_not_truncated():
    rng = np.random.default_rng(0)
    v = np.arange(6)
    model = MFAC(3, damp=0.1)
    for g in rng.standard_normal((4, 6)):
        model.update(None, g)
    np.testing.assert_allclose(model.solve(v), model.solve(v.astype(float)), rtol=1e-14)
    np.testing.assert_allclose(model.matvec(v), model.matvec(v.astype(float)), rtol=1e-14)
    static = MFACStatic(rng.standard_normal((3, 6)), damp=0.1)
    np.testing.assert_allclose(static.solve(v), static.solve(v.astype(float)), rtol=1e-14)
    X, y = rng.standard_normal((20, 5)), rng.integers(0, 2, 20)
    loss = LogisticLoss(X, y)
    w = np.array([1, -1, 0, 2, 1, 0])
    assert loss.grad(w).dtype == np.float64
    np.testing.assert_allclose(loss.grad(w), loss.grad(w.astype(float)), rtol=1e-14)
    np.testing.assert_allclose(loss.hessp(w, w), loss.hessp(w.astype(float), w.astype(float)), rtol=1e-14)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: OperatorHessian(lambda x, v: v, maxiter=0), ValueError, "`maxiter`"),
        (lambda: OperatorHessian(lambda x, v: v, rtol=2.0), ValueError, "`rtol`"),
        (lambda: MFAC(4, damp="1e-3"), TypeError, "`damp`"),
        (lambda: DenseHessian(lambda x: np.eye(2)).trust_step(np.ones(2), -1.0), ValueError, "`radius`"),
        (lambda: DenseHessian(lambda x: np.eye(2)).trust_step(np.ones(2), np.nan), ValueError, "`radius`"),
        (lambda: DenseHessian(lambda x: np.eye(2)).trust_step(np.ones(2), 0.0), ValueError, "`radius`"),
        (lambda: MFAC(2, damp=1e-3).update(None, np.full(4, 1e200)), ValueError, "too large"),
        (lambda: MFACStatic(np.full((2, 4), 1e200)), ValueError, "too large"),
        (lambda: MFACStatic(np.ones((2, 4))).solve(np.array([1.0, np.nan, 0.0, 0.0])), ValueError, "`v` must be finite"),
        (lambda: MFACStatic(np.ones((2, 4))).solve(np.ones(5)), ValueError, "`v` must have shape"),
        (lambda: SoftmaxLoss(np.ones((3, 2)), [0, 1, 2], n_classes=3.7), TypeError, "`n_classes`"),
        (lambda: minimize(lambda x: x @ x, np.ones(2), jac=lambda x: 2 * x, hess=lambda x: 2 * np.eye(2),
                          method="gns", options={"gamma0": 1e-3, "gamma_min": 1.0}), ValueError, "`gamma_min`"),
        (lambda: minimize(lambda x: "1.5", np.ones(2), jac=lambda x: x, hess=lambda x: np.eye(2)), TypeError, "`fun`"),
        (lambda: minimize(lambda x: 1.0, np.ones(2), jac=lambda x: x + 1j, hess=lambda x: np.eye(2)), TypeError, "`jac`"),
        (lambda: DenseHessian(lambda x: np.eye(2)).solve(np.ones(2)), ValueError, "update"),
        (lambda: OperatorHessian(lambda x, v: v).solve(np.ones(2)), ValueError, "update"),
        (lambda: _updated(DenseHessian(np.eye(2))).solve(np.ones(3)), ValueError, "`v` must have shape"),
        (lambda: _updated(DenseHessian(np.eye(2))).solve(np.ones(2), np.nan), ValueError, "`shift`"),
        (lambda: _updated(DenseHessian(np.eye(2))).matvec(np.array([1.0, np.inf])), ValueError, "`v` must be finite"),
        (lambda: _updated(OperatorHessian(lambda x, v: v)).solve(np.ones(3)), ValueError, "`v` must have shape"),
        (lambda: _updated(OperatorHessian(lambda x, v: v)).trust_step(np.array([np.nan, 1.0]), 1.0), ValueError, "`g`"),
        (lambda: _updated(DiagonalHessian(np.ones(2))).solve(np.ones(2), "0.5"), TypeError, "`shift`"),
        (lambda: _updated(DiagonalHessian(np.ones(2))).matvec(np.ones((2, 2))), ValueError, "`v` must have shape"),
        (lambda: LogisticLoss(np.eye(3), [0, 1, 0]).value(np.array([np.nan, 0.0, 0.0, 0.0])), ValueError, "`w` must be finite"),
        (lambda: LogisticLoss(np.eye(3), [0, 1, 0]).hessp(np.zeros(4), np.full(4, np.inf)), ValueError, "`v` must be finite"),
        (lambda: ot.dist(np.ones((3, 2)), metric="nope"), ValueError, "`metric`"),
        (lambda: ot.dist("abc"), TypeError, "`x1`"),
        (lambda: ot.grid_cost((2, 3), metric="cosine"), ValueError, "`metric`"),
        (lambda: ot.sinkhorn([], [], sp.csr_matrix(np.ones((3, 3))), 1e-1), TypeError, "`M` must be a dense"),
        (lambda: MFACStatic(np.ones((2, 3)) + 0j), TypeError, "`grads`"),
    ],
)
def test_invalid_input_is_a_clear_error(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_a_non_finite_hessian_is_a_value_error():
    model = DenseHessian(lambda x: np.full((2, 2), np.nan))
    model.update(np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match="NaN or inf"):
        model.solve(np.ones(2))


def test_other_dtypes_compute_in_float64():
    rng = np.random.default_rng(0)
    for M in (rng.random((5, 5)).astype(np.float16), (10 * rng.random((5, 5))).astype(int)):
        P = ot.sinkhorn([], [], M, 1.0)
        assert P.dtype == np.float64 and np.all(np.isfinite(P))
    with pytest.raises(TypeError, match="`M` must hold real numbers"):
        ot.sinkhorn([], [], rng.random((5, 5)) + 0j, 1.0)


# ------------------------------------------------------------ properties
_odd_floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([0.0, -0.0, 1e-300, 1e300, -1e300, np.nan, np.inf]),
)


# no shrinking: a failure is reported as drawn (shrinking a solver's input can take minutes)
_FAST = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], phases=(Phase.explicit, Phase.reuse, Phase.generate))


@settings(max_examples=60, **_FAST)
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=2, max_side=5), elements=_odd_floats))
def test_sinkhorn_on_odd_costs(M):
    """An odd cost matrix: a ValueError naming `M`, or a finite plan whose
    marginals are right to stopThr unless a warning says it did not converge
    (costs of 1e10 over reg = 1 leave float64 potentials a few digits); the
    input is never changed."""
    before = M.copy()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            P, log = ot.sinkhorn([], [], M, 1.0, log=True)
        except ValueError as exc:
            assert "`M`" in str(exc) or "M has" in str(exc)
            P = None
    if P is not None:
        assert np.all(np.isfinite(P))
        n, m = P.shape
        err = np.abs(P.sum(axis=1) - 1 / n).sum() + np.abs(P.sum(axis=0) - 1 / m).sum()
        converged = not any("did not converge" in str(w.message) for w in caught)
        assert err < 1e-8 if converged else log["err"][-1] >= 1e-9
    np.testing.assert_array_equal(M, before)


@settings(max_examples=60, **_FAST)
@given(
    hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), elements=_odd_floats),
    st.integers(0, 3),
)
def test_logistic_loss_on_odd_data(X, seed):
    """Odd features: a ValueError/TypeError naming `X` or `y`, or a finite
    loss and gradient; the input is never changed."""
    before = X.copy()
    y = np.random.default_rng(seed).integers(0, 2, X.shape[0] if X.ndim else 1)
    try:
        loss = LogisticLoss(X, y)
    except (ValueError, TypeError) as exc:
        assert "`X`" in str(exc) or "`y`" in str(exc)
    else:
        value, grad = loss.value_and_grad(loss.initial_params())
        assert np.isfinite(value) and np.all(np.isfinite(grad))
    np.testing.assert_array_equal(X, before)


@settings(max_examples=40, **_FAST)
@given(hnp.arrays(np.float64, st.integers(1, 5), elements=_odd_floats))
def test_minimize_from_odd_starting_points(x0):
    """A non-finite x0 is a ValueError naming it; a finite one (even huge)
    gives a finite answer or an unsuccessful result, never success with NaN."""
    before = x0.copy()
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # the user's function overflows, not ours
            res = minimize(lambda x: float(x @ x), x0, jac=lambda x: 2 * x, hess=lambda x: 2 * np.eye(x.shape[0]))
    except ValueError as exc:
        assert "`x0`" in str(exc) or "`fun`" in str(exc) or "non-finite" in str(exc)
    else:
        assert not res.success or np.all(np.isfinite(res.x))
    np.testing.assert_array_equal(x0, before)


@pytest.mark.parametrize("alpha", [0.0, 1e-3])
def test_huge_parameters_give_a_huge_or_infinite_loss_never_nan(alpha):
    X = np.random.default_rng(0).standard_normal((30, 4))
    loss = LogisticLoss(X, np.arange(30) % 2, alpha=alpha)
    for scale in (1e300, 1e307):
        value, grad = loss.value_and_grad(np.full(5, scale))
        assert value > 1e290 and np.all(np.isfinite(grad))


def test_a_run_whose_every_step_is_skipped_is_not_a_success():
    from secondorder import stochastic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stochastic.minimize(lambda x, b: (np.nan, x * np.nan), np.ones(2), np.arange(4), method="adamw")
    assert not res.success and "every step was skipped" in res.message


def test_a_run_that_diverges_is_not_a_success():
    from secondorder import stochastic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stochastic.minimize(lambda x, b: (float(x @ x), 2 * x), np.ones(2), np.arange(8), method="adamw",
                                  batch_size=1, options={"lr": 1e300})
    assert not res.success and "diverged" in res.message


def _models():
    H = np.diag([2.0, 1.0, 3.0, 0.5])
    mfac = MFAC(3, damp=0.5)
    for g in np.random.default_rng(0).standard_normal((4, 4)):
        mfac.update(None, g)
    out = [DenseHessian(H), OperatorHessian(lambda x, v: H @ v), DiagonalHessian(np.diag(H).copy()), mfac]
    for m in out[:3]:
        m.update(np.zeros(4))
    return out


@st.composite
def _odd_vectors(draw):
    dtype = draw(st.sampled_from([np.float64, np.float32, np.int64, np.bool_]))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=2, max_side=5))
    if dtype == np.float64:
        elements = _odd_floats
    elif dtype == np.float32:
        elements = st.floats(allow_nan=True, allow_infinity=True, width=32)
    elif dtype == np.int64:
        elements = st.integers(-(2**40), 2**40)
    else:
        elements = st.booleans()
    return draw(hnp.arrays(dtype, shape, elements=elements))


@settings(max_examples=80, **_FAST)
@given(_odd_vectors(), st.booleans(), st.sampled_from(["matvec", "solve", "trust_step"]))
# float32 with a norm whose square overflows float32 (CG's inner products) but not float64
@example(np.array([0.15, 1.0450132e29, 3.1391454e16, 4.0695588e16], dtype=np.float32), True, "solve")
def test_models_on_odd_vectors(v, strided, method):
    """A vector of any shape, dtype, magnitude or layout given to a model's
    products: a clean error naming it, or a finite result; never a changed
    input."""
    if strided and v.ndim == 1:
        v = np.repeat(v, 2)[::2]  # a non-contiguous view
    if v.dtype == np.float64 and v.size:
        v.setflags(write=False)
    before = v.copy()
    for model in _models():
        args = (v, 1.0) if method == "trust_step" else (v,)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", RuntimeWarning)
                out = getattr(model, method)(*args)
        except (ValueError, TypeError) as exc:
            assert "`v`" in str(exc) or "`g`" in str(exc) or "radius" in str(exc), str(exc)
        else:
            out = out[0] if isinstance(out, tuple) else out
            assert out.shape == (4,) and np.all(np.isfinite(out))
        np.testing.assert_array_equal(v, before)

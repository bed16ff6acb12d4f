"""GLM losses: gradients and curvature against finite differences and dense
references, the numba kernels against the NumPy fallback, bad input."""

import functools

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose
from scipy.optimize import approx_fprime

from secondorder import minimize
from secondorder._backend import kernels
from secondorder.linear_model import LogisticLoss, SoftmaxLoss

KINDS = ["exact", "gauss-newton", "fisher", "subsampled"]


def _data(n=240, d=6, K=3, seed=0, layout="C"):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    if layout == "F":
        X = np.asfortranarray(X)
    elif layout == "csr":
        X = sp.csr_matrix(X * (rng.random(X.shape) < 0.4))
    y2 = (rng.random(n) < 0.4).astype(float)
    yK = rng.integers(0, K, n)
    sw = rng.random(n) + 0.5
    return X, y2, yK, sw, rng


def _losses(layout, fit_intercept):
    X, y2, yK, sw, rng = _data(layout=layout)
    yield LogisticLoss(X, y2, alpha=0.1, fit_intercept=fit_intercept, sample_weight=sw), rng
    yield SoftmaxLoss(X, yK, alpha=0.1, fit_intercept=fit_intercept, sample_weight=sw), rng


@pytest.mark.parametrize("layout", ["C", "F", "csr"])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_grad_hess_hessp_match_finite_differences(layout, fit_intercept):
    for loss, rng in _losses(layout, fit_intercept):
        w = 0.3 * rng.standard_normal(loss.n_params)
        v = rng.standard_normal(loss.n_params)
        assert_allclose(loss.grad(w), approx_fprime(w, loss.value, 1e-7), atol=1e-6)
        H = loss.hess(w)
        H_fd = np.stack([approx_fprime(w, lambda u, i=i: loss.grad(u)[i], 1e-6) for i in range(loss.n_params)])
        assert_allclose(H, H_fd, atol=1e-6)
        assert_allclose(H, H.T, atol=1e-14)
        assert_allclose(loss.hessp(w, v), H @ v, rtol=1e-12, atol=1e-14)
        value, grad = loss.value_and_grad(w)
        assert value == loss.value(w) and np.array_equal(grad, loss.grad(w))


@pytest.mark.parametrize("layout", ["C", "csr"])
@pytest.mark.parametrize("kind", KINDS)
def test_curvature_kinds_dense_equals_products(layout, kind):
    for loss, rng in _losses(layout, True):
        w = 0.3 * rng.standard_normal(loss.n_params)
        rows = np.arange(0, loss.n_samples, 3) if kind == "subsampled" else None
        D = loss._dense(w, kind, rows)
        V = rng.standard_normal((loss.n_params, 3))
        prods = np.stack([loss._product(w, v, kind, rows) for v in V.T], axis=1)
        assert_allclose(D @ V, prods, rtol=1e-11, atol=1e-13)
        assert np.linalg.eigvalsh(D).min() > -1e-10  # every kind is PSD (+ alpha on the weights)


@pytest.mark.parametrize("layout", ["C", "csr"])
def test_product_model_follows_its_point(layout):
    """The CG model's products (its point's state looked up once) equal the
    loss's hessp at each point it is updated to, leave their input alone and
    come back as new arrays."""
    for loss, rng in _losses(layout, True):
        model = loss.curvature("exact", solver="cg")
        for _ in range(2):
            w = 0.3 * rng.standard_normal(loss.n_params)
            loss.value_and_grad(w + 1.0)  # another point evaluated in between
            model.update(w, loss.grad(w))
            v = rng.standard_normal(loss.n_params)
            before = v.copy()
            a, b = model.matvec(v), model.matvec(v)
            assert_allclose(a, loss.hessp(w, v), rtol=1e-13)
            assert np.array_equal(v, before) and a is not b and np.array_equal(a, b)
        assert model.nhev == 4


def test_curvature_kinds_against_definitions():
    X, _, y, sw, rng = _data(n=50, d=4, K=3)
    loss = SoftmaxLoss(X, y, alpha=0.0, fit_intercept=False, sample_weight=sw)
    w = 0.5 * rng.standard_normal(loss.n_params)
    P = np.exp(X @ w.reshape(3, 4).T)
    P /= P.sum(1, keepdims=True)
    Y = np.eye(3)[y]
    blocks = {"exact": [], "gauss-newton": [], "fisher": []}
    for i in range(50):
        xx = np.outer(X[i], X[i])
        blocks["exact"].append(sw[i] * np.kron(np.diag(P[i]) - np.outer(P[i], P[i]), xx))
        blocks["gauss-newton"].append(sw[i] * np.kron(np.diag(P[i]), xx))
        g = P[i] - Y[i]
        blocks["fisher"].append(sw[i] * np.kron(np.outer(g, g), xx))
    Pi = np.kron(np.eye(3) - 1 / 3, np.eye(4))
    for kind, parts in blocks.items():
        ref = sum(parts) / sw.sum()
        if kind == "gauss-newton":
            ref = Pi @ ref @ Pi
            # it dominates the Hessian
            assert np.linalg.eigvalsh(ref - sum(blocks["exact"]) / sw.sum()).min() > -1e-12
        assert_allclose(loss._dense(w, kind, None), ref, atol=1e-13)


@pytest.fixture(params=["threaded", "serial"])
def passes(request, monkeypatch):
    """Both compilations of the numba kernels: over threads, and serially
    (passes over fewer entries than ``_SERIAL_MAX``, or
    ``_PRODUCT_SERIAL_MAX`` for the products of ``SparseRows``)."""
    from secondorder._kernels.cpu import glm

    for name in ("_SERIAL_MAX", "_PRODUCT_SERIAL_MAX"):
        monkeypatch.setattr(glm, name, 0 if request.param == "threaded" else 1 << 62)
    return request.param


def test_numba_kernels_equal_fallback(dtype, passes):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((500, 9)).astype(dtype)
    Xs = sp.csr_matrix(X * (rng.random(X.shape) < 0.3))
    y = (rng.random(500) < 0.5).astype(float)
    yK = rng.integers(0, 4, 500)
    sw = rng.random(500)
    coef, b = rng.standard_normal(9), 0.3
    C, cb = rng.standard_normal((4, 9)), rng.standard_normal(4)
    cpu, ref = kernels(np, "cpu"), kernels(np, "fallback")
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    for M, suffix, args in ((X, "", (X,)), (Xs, "_csr", (Xs.data, Xs.indices, Xs.indptr, 9))):
        outs = []
        for k in (cpu, ref):
            r, h, P = np.empty(500), np.empty(500), np.empty((500, 4))
            lg = getattr(k, "logistic_grad" + suffix)(*args, y, sw, coef, b, r, h)
            gm = getattr(k, "gram_matvec" + suffix)(*args, h, coef, 0.5)
            sg = getattr(k, "softmax_grad" + suffix)(*args, yK, sw, C, cb, P)
            sh = [getattr(k, "softmax_hessp" + suffix)(*args, yK, sw, P, C, cb, mode) for mode in (0, 1, 2)]
            outs.append((lg, r, h, gm, sg, P, sh))
        got, expected = _flatten(outs[0]), _flatten(outs[1])
        assert len(got) == len(expected) == 16
        for a, e in zip(got, expected):
            assert_allclose(np.asarray(a, dtype=float), np.asarray(e, dtype=float), rtol=rtol, atol=rtol)


@pytest.mark.parametrize("layout", ["C", "F"])
def test_fused_gradient_and_hessian_kernel(layout, dtype, passes):
    # one pass for the loss, the gradient and [X 1]^T diag(h) [X 1]: against the two-pass kernels and a dense sum
    rng = np.random.default_rng(4)
    X = rng.standard_normal((503, 7)).astype(dtype)  # rows not a multiple of the kernel's four
    X = np.asfortranarray(X) if layout == "F" else X
    y, sw = (rng.random(503) < 0.5).astype(float), rng.random(503)
    coef = rng.standard_normal(7).astype(dtype)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    r0, h0 = np.empty(503), np.empty(503)
    loss0, g0 = kernels(np, "fallback").logistic_grad(X, y, sw, coef, 0.3, r0, h0)
    A = np.c_[X.astype(float), np.ones(503)]
    for table in ("cpu", "fallback"):
        r, h = np.empty(503), np.empty(503)
        loss, g, G = kernels(np, table).logistic_grad_gram(X, y, sw, coef, 0.3, r, h)
        assert loss == pytest.approx(loss0, rel=rtol)
        for a, e in ((g, g0), (r, r0), (h, h0), (G, A.T @ (h0[:, None] * A))):
            assert_allclose(a, e, rtol=rtol, atol=rtol * 1e-3)


@pytest.mark.parametrize("layout", ["C", "F", "csr"])
def test_fused_gradient_and_diagonal_kernel(layout, dtype):
    # one pass for the loss, the gradient and sum_i h_i x_ij^2: against the gradient's kernel and a dense sum
    rng = np.random.default_rng(6)
    X = rng.standard_normal((503, 9)).astype(dtype)
    X[rng.random(X.shape) < 0.5] = 0.0
    y, sw = (rng.random(503) < 0.5).astype(float), rng.random(503)
    coef = rng.standard_normal(9).astype(dtype)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    r0, h0 = np.empty(503), np.empty(503)
    loss0, g0 = kernels(np, "fallback").logistic_grad(X, y, sw, coef, 0.3, r0, h0)
    expected = (X.astype(float) ** 2).T @ h0
    for table in ("cpu", "fallback"):
        k = kernels(np, table)
        r, h = np.empty(503), np.empty(503)
        if layout == "csr":
            A = sp.csr_matrix(X)
            loss, g, D = k.logistic_grad_squares_csr(A.data, A.indices, A.indptr, 9, y, sw, coef, 0.3, r, h)
        else:
            loss, g, D = k.logistic_grad_squares(np.asarray(X, order=layout), y, sw, coef, 0.3, r, h)
        assert loss == pytest.approx(loss0, rel=rtol)
        for a, e in ((g, g0), (r, r0), (h, h0), (D, expected)):
            assert_allclose(a, e, rtol=rtol, atol=rtol * 1e-3)


@pytest.mark.parametrize("layout", ["C", "csr"])
def test_hessian_diagonal_at_a_new_point_costs_no_pass_of_its_own(layout):
    X, y2, _, sw, rng = _data(d=9)
    X = sp.csr_matrix(X) if layout == "csr" else X
    loss = LogisticLoss(X, y2, alpha=0.1, sample_weight=sw)
    w = 0.3 * rng.standard_normal(loss.n_params)
    D = loss.hessian_diagonal(w)
    assert loss.n_passes == 1
    assert_allclose(D, np.diag(loss.hess(w)), rtol=1e-12)
    assert_allclose(loss.hessian_diagonal(w), D, rtol=0)  # again at the same point: no pass either
    assert loss.n_passes == 2  # the one of hess
    loss.value_and_grad(w + 1.0)
    loss.hessian_diagonal(w + 1.0)  # at a point evaluated without it: a pass of its own
    assert loss.n_passes == 4


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_dense_model_takes_the_hessian_from_the_gradients_pass(fit_intercept):
    X, y2, _, sw, rng = _data(d=9)
    p = 10 if fit_intercept else 9
    w = 0.3 * rng.standard_normal(p)
    fused = LogisticLoss(X, y2, alpha=0.1, sample_weight=sw, fit_intercept=fit_intercept)
    model = fused.curvature(solver="dense")
    fused.value_and_grad(w)
    assert fused._gram is not None  # summed in the gradient's pass
    H = fused._dense(w, "exact", None)
    assert H.shape == (p, p)
    assert fused.n_passes == 1
    # no dense model: two passes
    reference = LogisticLoss(X, y2, alpha=0.1, sample_weight=sw, fit_intercept=fit_intercept)
    assert_allclose(H, reference.hess(w), rtol=1e-12)
    assert reference._gram is None and reference.n_passes == 2
    # the second point of the cache has no fused matrix: the matrix is summed from its weights
    w2 = w + 0.1
    fused.value(w2)
    assert_allclose(fused._dense(w, "exact", None), H, rtol=1e-12)
    assert_allclose(fused._dense(w, "fisher", None), reference._dense(w, "fisher", None), rtol=1e-12)
    res = minimize(fused.value_and_grad, np.zeros(p), jac=True, hess=model, method="trust-region",
                   options={"gtol": 1e-10})
    ref = minimize(reference.value_and_grad, np.zeros(p), jac=True, hess=reference.curvature(solver="cg"),
                   method="trust-region", options={"gtol": 1e-10})
    assert res.success and ref.success
    assert_allclose(res.x, ref.x, rtol=1e-8, atol=1e-9)


def _flatten(items):
    out = []
    for item in items:
        if isinstance(item, (tuple, list)):
            out.extend(_flatten(item))
        else:
            out.append(item)
    return out


def test_large_margins_are_stable():
    X = np.array([[1000.0], [-1000.0], [800.0]])
    loss = LogisticLoss(X, [1, 0, 0], fit_intercept=False)
    value, grad = loss.value_and_grad(np.array([1.0]))
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    assert_allclose(value, 800.0 / 3, rtol=1e-12)  # two samples cost ~0, the third 800
    soft = SoftmaxLoss(np.hstack([X, X]), [0, 1, 1], fit_intercept=False)
    assert np.isfinite(soft.value(np.array([1.0, 0.0, -1.0, 0.0])))


@pytest.mark.parametrize("method", ["gns", "trust-region"])
@pytest.mark.parametrize("kind", KINDS)
def test_minimize_with_every_curvature_kind(method, kind, dtype):
    X, y2, yK, sw, _ = _data(n=400, d=5, seed=4)
    for loss in (LogisticLoss(X.astype(dtype), y2, alpha=1e-2, sample_weight=sw), SoftmaxLoss(X.astype(dtype), yK, alpha=1e-2)):
        w0 = loss.initial_params()
        assert w0.dtype == dtype
        ref = minimize(loss.value_and_grad, np.zeros(loss.n_params), jac=True, hessp=loss.hessp, method="trust-region",
                       options={"gtol": 1e-10})
        gtol = 1e-8 if dtype == np.float64 else 1e-4
        res = minimize(loss.value_and_grad, w0, jac=True, hess=loss.curvature(kind), method=method,
                       options={"gtol": gtol, "maxiter": 3000})
        assert res.success, res.message
        assert res.x.dtype == dtype
        assert_allclose(res.x, ref.x, atol=1e-6 if dtype == np.float64 else 2e-3)


def test_inputs_not_modified():
    X, y2, yK, sw, rng = _data()
    copies = [a.copy() for a in (X, y2, yK, sw)]
    for loss in (LogisticLoss(X, y2, alpha=0.1, fit_intercept=False, sample_weight=sw), SoftmaxLoss(X, yK, sample_weight=sw)):
        w = rng.standard_normal(loss.n_params)
        loss.hess(w)
        loss.hessp(w, w)
        for kind in KINDS:
            loss._dense(w, kind, None)
    for a, b in zip((X, y2, yK, sw), copies):
        assert np.array_equal(a, b)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda X, y: LogisticLoss(np.where(X > 1, np.nan, X), y), "`X` must be finite"),
        (lambda X, y: LogisticLoss(X, y[:-1]), "one label per sample"),
        (lambda X, y: LogisticLoss(X, y + 2), "binary labels"),
        (lambda X, y: LogisticLoss(X, y, sample_weight=-np.ones(len(y))), "non-negative"),
        (lambda X, y: LogisticLoss(X, y, sample_weight=np.ones(3)), "one weight per sample"),
        (lambda X, y: LogisticLoss(X, y, alpha=-1.0), "alpha"),
        (lambda X, y: LogisticLoss(X[:, 0], y), "2-D"),
        (lambda X, y: SoftmaxLoss(X, y - 1), "class indices"),
        (lambda X, y: SoftmaxLoss(X, np.zeros(len(y)).astype(str)), "integer class indices"),
        (lambda X, y: LogisticLoss(X, y).curvature("hessian"), "`kind`"),
        (lambda X, y: LogisticLoss(X, y).curvature("subsampled", fraction=0), "`fraction`"),
        (lambda X, y: LogisticLoss(X, y).grad(np.zeros(2)), "n_params"),
    ],
)
def test_bad_input(make, match):
    X, y, _, _, _ = _data()
    with pytest.raises((ValueError, TypeError), match=match):
        make(X, y)


@pytest.mark.parametrize("layout", ["C", "F", "csr"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_unchecked_X_is_checked_by_its_first_pass(layout, bad):
    """With check_input=False a NaN or inf in X is found by the first
    evaluation, at any point, and named; a finite X passes as before."""
    X, y, yK, _, _ = _data()
    X = X.copy()
    X[7, 2] = bad
    X = sp.csr_matrix(X) if layout == "csr" else np.asarray(X, order=layout)
    for loss in (LogisticLoss(X, y, check_input=False), SoftmaxLoss(X, yK, check_input=False)):
        for w in (loss.initial_params(), np.full(loss.n_params, 0.1)):
            loss._cache = []
            with pytest.raises(ValueError, match="`X` must be finite but holds"):
                loss.value_and_grad(w)
    X, y, yK, _, _ = _data()
    loss = LogisticLoss(X, y, check_input=False)
    assert_allclose(loss.grad(loss.initial_params()), LogisticLoss(X, y).grad(loss.initial_params()))


def test_the_logistic_kernels_exp_and_log1p_to_a_few_ulps():
    """The vectorisable exp and log1p of the logistic pass, against libm's
    (NumPy's), in units in the last place; log1p also where 1 + e rounds."""
    from secondorder._backend import jit
    from secondorder._kernels.cpu._fastexp import exact_exp, log1p_unit

    @jit(error_model="numpy")
    def apply(x, out, which):
        for i in range(x.shape[0]):
            out[i] = exact_exp(x[i]) if which == 0 else log1p_unit(x[i])
        return out

    x = np.linspace(-499.0, 0.0, 400001)
    ulps = np.abs(apply(x, np.empty_like(x), 0) - np.exp(x)) / np.spacing(np.exp(x))
    assert ulps.max() <= 2
    e = np.concatenate([np.linspace(0.0, 1.0, 200001), np.logspace(-300, 0, 3001)])
    ref = np.log1p(e)
    got = apply(e, np.empty_like(e), 1)
    assert got[0] == 0.0
    assert (np.abs(got - ref)[1:] / np.spacing(ref[1:])).max() <= 4


@pytest.mark.parametrize("layout", ["C", "csr"])
@pytest.mark.parametrize("preconditioned", [True, False])
def test_compiled_steihaug_takes_the_python_steps(layout, preconditioned):
    """The products model's trust step, compiled whole on small data, against
    the Python Steihaug loop of OperatorHessian on the same model: the same
    step, boundary or not, the same products, the same record for the next
    forcing term."""
    from secondorder.curvature import DiagonalHessian, OperatorHessian

    for loss, rng in _losses(layout, True):
        assert loss._compiled_steihaug("exact", None) is not None
        pre = DiagonalHessian(loss.hessian_diagonal) if preconditioned else None
        model = loss.curvature("exact", solver="cg", preconditioner=pre, rtol=1e-10)
        w = 0.3 * rng.standard_normal(loss.n_params)
        g = loss.grad(w)
        model.update(w, g, gtol=1e-10)
        if pre is not None:
            pre.diagonal()  # its pass, before either loop counts
        for radius in (1e3, 0.05):
            before = (model.ncg, model.nhev, loss.n_passes)
            z, hit = model.trust_step(g, radius)
            compiled = (model.ncg - before[0], model.nhev - before[1], loss.n_passes - before[2], model._last)
            before = (model.ncg, model.nhev, loss.n_passes)
            with pytest.MonkeyPatch.context() as patch:  # the Python loop on the same model
                patch.setattr(model, "_steihaug", functools.partial(OperatorHessian._steihaug, model))
                z_ref, hit_ref = model.trust_step(g, radius)
            python = (model.ncg - before[0], model.nhev - before[1], loss.n_passes - before[2], model._last)
            assert hit == hit_ref and hit == (radius < 1)
            assert compiled[:3] == python[:3]
            assert_allclose(z, z_ref, rtol=1e-10, atol=1e-14)
            if not hit:
                assert compiled[0] > 2
                assert_allclose(compiled[3], python[3], rtol=1e-8, atol=1e-15)

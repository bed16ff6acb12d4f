"""minimize and the curvature models on other array libraries: the same
numbers as with NumPy, and arrays of the caller's library back."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

import secondorder as so
from secondorder._array_api import to_numpy
from secondorder.curvature import DenseHessian, DiagonalHessian, HutchinsonDiagonal, OperatorHessian


def _namespaces():
    out = [pytest.param("numpy", id="numpy")]
    out.append(pytest.param("array_api_strict", id="array-api-strict"))
    out.append(pytest.param("torch", id="torch", marks=pytest.mark.torch))
    return out


@pytest.fixture(params=_namespaces())
def nx(request):
    """(module to build arrays with, its array-API namespace), as POT's ``nx``."""
    mod = pytest.importorskip(request.param)
    from array_api_compat import array_namespace

    def make(a):
        return mod.asarray(np.array(a, dtype=np.float64))  # a copy: torch wants writable memory

    xp = array_namespace(make([0.0]))
    return make, xp


def _problem(xp, n=8, seed=0):
    """A smooth strongly convex problem written with array-API functions:
    f(x) = sum log(1 + exp(a_i.x - b_i)) / m + |x|^2 / 2 + sum x^4 / 4."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((20, n))
    b = rng.standard_normal(20)

    def parts(x):
        Aa, ba = xp.asarray(A, dtype=x.dtype), xp.asarray(b, dtype=x.dtype)
        z = Aa @ x - ba
        s = 1.0 / (1.0 + xp.exp(-z))
        return Aa, z, s

    def fun(x):
        _, z, _ = parts(x)
        return float(xp.mean(xp.log(1.0 + xp.exp(z))) + 0.5 * xp.sum(x * x) + 0.25 * xp.sum(x**4))

    def jac(x):
        Aa, _, s = parts(x)
        return xp.matrix_transpose(Aa) @ s / Aa.shape[0] + x + x**3

    def hess(x):
        Aa, _, s = parts(x)
        w = s * (1.0 - s) / Aa.shape[0]
        H = xp.matrix_transpose(Aa) @ (Aa * w[:, None])
        return H + xp.eye(n, dtype=x.dtype) + xp.eye(n, dtype=x.dtype) * (3.0 * x * x)[None, :]

    def hessp(x, v):
        return hess(x) @ v

    def diag(x):
        return xp.linalg.diagonal(hess(x))

    return fun, jac, hess, hessp, diag, np.linspace(-1.0, 1.5, n)


CASES = [
    ("gns", "dense"),
    ("gns", "hessp"),
    ("gns", "hutchinson"),
    ("trust-region", "dense"),
    ("trust-region", "hessp"),
    ("trust-region", "diagonal"),
    ("gns", "mfac"),
    ("trust-region", "mfac"),
    ("gns", "diag-fisher"),
]


@pytest.mark.parametrize("method, curvature", CASES)
def test_minimize_in_the_callers_namespace(nx, method, curvature):
    make, xp = nx
    results = {}
    from array_api_compat import array_namespace

    for label, (mk, space) in {"numpy": (np.asarray, np), "other": (make, xp)}.items():
        fun, jac, hess, hessp, diag, x0 = _problem(space if label == "other" else array_namespace(np.zeros(1)))
        kwargs = {"jac": jac}
        options = {"gtol": 1e-10}
        if curvature == "dense":
            kwargs["hess"] = hess
        elif curvature == "hessp":
            kwargs["hessp"] = hessp
        elif curvature == "hutchinson":
            kwargs["hessp"] = hessp
            options.update(curvature="hutchinson", curvature_options={"seed": 3, "n_probes": 4})
        elif curvature == "diagonal":
            kwargs["hess"] = DiagonalHessian(diag)
        else:
            options.update(curvature=curvature, gtol=1e-6)
        res = so.minimize(fun, mk(x0), method=method, options=options, **kwargs)
        assert res.success, res.message
        results[label] = res
    other = results["other"]
    assert type(other.x) is type(make([0.0])) and type(other.jac) is type(make([0.0]))
    # The same path: gns sizes gamma from step lengths, whose last bit depends on the library's reductions, so
    # the iterates agree to round-off amplified over the run, not bitwise.
    assert_allclose(to_numpy(other.x), results["numpy"].x, rtol=1e-8, atol=1e-12)
    assert other.nit == results["numpy"].nit


def test_gauss_newton_in_the_callers_namespace(nx):
    from secondorder.curvature import GaussNewton

    make, xp = nx
    rng = np.random.default_rng(2)
    J = rng.standard_normal((9, 5))
    w = rng.random(9) + 0.5
    v = rng.standard_normal(5)
    G = J.T @ (w[:, None] * J) + 0.1 * np.eye(5)
    Ja, wa = make(J), make(w)
    dense = GaussNewton(jac=lambda x: Ja, weights=lambda x: wa, damp=0.1)
    free = GaussNewton(jvp=lambda x, u: Ja @ u, vjp=lambda x, u: Ja.T @ u, weights=lambda x: wa, damp=0.1)
    for model in (dense, free):
        model.update(make(np.zeros(5)), make(v))
        out = model.matvec(make(v))
        assert type(out) is type(Ja)
        assert_allclose(to_numpy(out), G @ v, rtol=1e-12)
    out = dense.solve(make(v))
    assert type(out) is type(Ja)
    assert_allclose(to_numpy(out), np.linalg.solve(G, v), rtol=1e-10)


def test_models_solve_in_the_callers_namespace(nx):
    make, xp = nx
    rng = np.random.default_rng(1)
    M = rng.standard_normal((6, 6))
    H = M @ M.T + 6 * np.eye(6)
    v = rng.standard_normal(6)
    x = make(np.zeros(6))
    for model in (
        DenseHessian(make(H), factorization="cholesky"),
        DenseHessian(make(H), factorization="eigh"),
        OperatorHessian(lambda x, p: make(H) @ p, rtol=1e-12),
        DiagonalHessian(make(np.diag(H))),
        HutchinsonDiagonal(lambda x, p: make(H) @ p, n_probes=3, seed=0),
    ):
        model.update(x, make(v))
        out = model.solve(make(v), shift=0.5)
        assert type(out) is type(x)
        if isinstance(model, (DenseHessian, OperatorHessian)):
            expected = np.linalg.solve(H + 0.5 * np.eye(6), v)
            assert_allclose(to_numpy(out), expected, rtol=1e-8)
        step, _ = model.trust_step(make(v), 0.1)
        assert type(step) is type(x)
        assert float(np.linalg.norm(to_numpy(step))) <= 0.1 * (1 + 1e-8)


def test_mfac_static_in_the_callers_namespace(nx):
    from secondorder.curvature import MFACStatic

    make, xp = nx
    rng = np.random.default_rng(4)
    G = rng.standard_normal((6, 10))
    v = rng.standard_normal(10)
    ref = MFACStatic(G, damp=1e-2)
    model = MFACStatic(make(G), damp=1e-2)
    kind = type(make([0.0]))
    for name, args in (("ihvp", (v,)), ("solve", (v,)), ("inverse_diagonal", ()), ("obs_scores", (v,))):
        out = getattr(model, name)(*[make(a) for a in args])
        assert type(out) is kind, name
        assert_allclose(to_numpy(out), getattr(ref, name)(*args), rtol=1e-12, atol=1e-14)
    cols = model.inverse_columns(np.array([1, 3]))
    assert type(cols) is kind
    assert_allclose(to_numpy(cols), ref.inverse_columns(np.array([1, 3])), rtol=1e-12)


def test_mfac_window_natively_in_the_callers_namespace(nx, monkeypatch):
    """The sliding window (past its size, so the factor drops rows) and the
    static model's pruning compute in the caller's library, equal to NumPy."""
    from secondorder.curvature import MFAC, MFACStatic

    make, xp = nx
    rng = np.random.default_rng(5)
    grads = rng.standard_normal((7, 12))
    v = rng.standard_normal(12)
    ref, model = MFAC(window=4, damp=1e-1), MFAC(window=4, damp=1e-1)
    kind = type(make([0.0]))
    trust = model.trust_step  # its secular equation is a kernel on the host (a vector of k + 1 numbers)

    def refuse(a):
        raise AssertionError("a copy to NumPy")

    monkeypatch.setattr("secondorder._array_api.to_numpy", refuse)
    for g in grads[:-1]:
        ref.add(g), model.add(make(g))
    assert_allclose(to_numpy_(model.update_and_ihvp(make(grads[-1]))), ref.update_and_ihvp(grads[-1]), rtol=1e-10)
    for name, args in (("solve", (v,)), ("solve", (v, 0.3)), ("matvec", (v,)), ("diagonal", ())):
        out = getattr(model, name)(*[make(a) if isinstance(a, np.ndarray) else a for a in args])
        assert type(out) is kind, name
        assert_allclose(to_numpy_(out), getattr(ref, name)(*args), rtol=1e-10, atol=1e-13)
    static, ref_static = MFACStatic(make(grads), damp=1e-2), MFACStatic(grads, damp=1e-2)
    for joint in (True, False):
        w_new, Q, scores = static.prune(make(v), 3, joint=joint)
        ref_w, ref_Q, _ = ref_static.prune(v, 3, joint=joint)
        assert type(w_new) is kind
        assert_allclose(to_numpy_(w_new), ref_w, rtol=1e-10, atol=1e-13)
        assert (to_numpy_(w_new)[ref_Q] == 0.0).all()
    monkeypatch.undo()
    step, hits = trust(make(v), 0.5)
    assert type(step) is kind
    assert_allclose(to_numpy(step), ref.trust_step(v, 0.5)[0], rtol=1e-9, atol=1e-12)
    assert hits == ref.trust_step(v, 0.5)[1]


def to_numpy_(a):
    """A host copy made by the test itself (not through the library)."""
    return np.from_dlpack(a) if not isinstance(a, np.ndarray) else a


def test_fused_logistic_kernel_in_the_callers_namespace(nx):
    # the generic kernel (the table of every library without numba's) against the numba one
    from secondorder._backend import kernels

    make, xp = nx
    rng = np.random.default_rng(5)
    X, coef = rng.standard_normal((57, 4)), rng.standard_normal(4)
    y, sw = (rng.random(57) < 0.5).astype(float), rng.random(57)
    r, h = np.empty(57), np.empty(57)
    loss, g, G = kernels(np, "cpu").logistic_grad_gram(X, y, sw, coef, 0.2, r, h)
    r_x, h_x = make(np.zeros(57)), make(np.zeros(57))
    got = kernels(name="fallback").logistic_grad_gram(make(X), make(y), make(sw), make(coef), 0.2, r_x, h_x)
    assert got[0] == pytest.approx(loss, rel=1e-12)
    for a, e in zip((got[1], got[2], r_x, h_x), (g, G, r, h)):
        assert_allclose(to_numpy(a), e, rtol=1e-12, atol=1e-14)


def test_auto_newton_phase_keeps_its_matrix_in_the_callers_namespace(nx, monkeypatch):
    # solver="auto" on correlated features beyond 32 parameters: L-BFGS, then Newton on a dense matrix kept
    # across points, with the caller's arrays throughout, to the NumPy fit's coefficients
    from secondorder.linear_model import LogisticRegression, _auto

    make, xp = nx
    rng = np.random.default_rng(0)
    n, d = 3000, 60
    X = rng.standard_normal((n, d)) @ (np.eye(d) + 3.0 * rng.standard_normal((d, d)) / np.sqrt(d))
    X[:, 1] = X[:, 0] + 1e-3 * rng.standard_normal(n)
    y = (rng.random(n) < 1 / (1 + np.exp(-X @ rng.standard_normal(d) / np.sqrt(d)))).astype(int)
    ref = LogisticRegression(C=10.0, tol=1e-9).fit(X, y)
    points = []
    update = _auto._LazyDense.update

    def spy(self, x, g, **kwargs):
        points.append(type(x))
        return update(self, x, g, **kwargs)

    monkeypatch.setattr(_auto._LazyDense, "update", spy)
    est = LogisticRegression(C=10.0, tol=1e-9).fit(make(X), y)
    assert est.solver_ == "lbfgs+trust-region" and points
    assert all(t is type(make([0.0])) for t in points)
    assert_allclose(to_numpy(est.coef_), ref.coef_, rtol=1e-6, atol=1e-8)

"""The bare L-BFGS of ``solver="auto"``: its two-loop kernel against the
BFGS update written out densely, its line search against the strong Wolfe
conditions, and its iterates against scipy's L-BFGS-B."""

import numpy as np
import pytest
import scipy.optimize
from numpy.testing import assert_allclose

from secondorder._backend import kernels
from secondorder.linear_model import LogisticLoss
from secondorder.linear_model._lbfgs import _ARMIJO, _CURVATURE, _line_search, lbfgs
from secondorder.optimize._common import Resolution


def _pairs(p, count, memory, seed):
    """``count`` curvature pairs of a random SPD matrix in a ring buffer of
    ``memory`` rows, the newest at a position that wraps around."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((p, p))
    H = A @ A.T + p * np.eye(p)
    S, Y, rho = np.zeros((memory, p)), np.zeros((memory, p)), np.zeros(memory)
    newest = -1
    order = []
    for _ in range(count + 3):  # three more than the ring holds where count == memory: the oldest are overwritten
        s = rng.standard_normal(p)
        newest = (newest + 1) % memory
        S[newest], Y[newest], rho[newest] = s, H @ s, 1.0 / (s @ H @ s)
        order.append(newest)
    return S, Y, rho, newest, order[-count:] if count else []


def _dense_direction(S, Y, rho, order, g):
    """-H g with H from gamma I updated by each pair, oldest first."""
    p = g.shape[0]
    if not order:
        return -g
    j = order[-1]
    H = (S[j] @ Y[j]) / (Y[j] @ Y[j]) * np.eye(p)
    for j in order:
        V = np.eye(p) - rho[j] * np.outer(Y[j], S[j])
        H = V.T @ H @ V + rho[j] * np.outer(S[j], S[j])
    return -H @ g


@pytest.mark.parametrize("table", ["cpu", "fallback"])
@pytest.mark.parametrize("count", [0, 1, 4, 6])
def test_two_loop_equals_the_dense_bfgs_update(table, count):
    memory, p = 6, 9
    S, Y, rho, newest, order = _pairs(p, count, memory, seed=count)
    g = np.random.default_rng(1).standard_normal(p)
    d = kernels(np, table).lbfgs_direction(S, Y, rho, newest, count, g)
    assert_allclose(d, _dense_direction(S, Y, rho, order, g), rtol=1e-10, atol=1e-12)
    assert g.dtype == np.float64 and np.isfinite(d).all()


def test_two_loop_in_float32():
    S, Y, rho, newest, order = _pairs(5, 3, 4, seed=2)
    g = np.random.default_rng(3).standard_normal(5).astype(np.float32)
    d = kernels(np, "cpu").lbfgs_direction(S, Y, rho, newest, 3, g)
    assert d.dtype == np.float64
    assert_allclose(d, _dense_direction(S, Y, rho, order, g.astype(np.float64)), rtol=1e-10)


def _logistic(seed=0, n=600, d=12, spread=1e2, correlated=0.0):
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((n, d)) + correlated * rng.standard_normal((n, 1))) * np.logspace(0, np.log10(spread), d)
    y = (X @ (rng.standard_normal(d) / np.logspace(0, np.log10(spread), d)) + rng.standard_normal(n) > 0)
    return LogisticLoss(X, y.astype(float), alpha=1e-4)


def _counting(loss, log=None):
    def fun(w):
        value, g = loss.value_and_grad(w)
        if log is not None:
            log.append((w.copy(), value, g))
        return value, g, float(np.linalg.norm(g))

    return fun


@pytest.mark.parametrize("seed, correlated", [(0, 0.0), (1, 0.9), (2, 3.0)])
def test_reaches_the_minimiser_of_scipy(seed, correlated):
    loss = _logistic(seed, correlated=correlated)
    w0 = np.zeros(loss.n_params)
    res = lbfgs(_counting(loss), w0, 1e-9, 2000)
    assert res.success and res.status == 0
    assert np.linalg.norm(loss.grad(res.x)) <= 1e-9
    ref = scipy.optimize.minimize(loss.value_and_grad, w0, jac=True, method="L-BFGS-B",
                                  options={"gtol": 1e-12, "ftol": 0.0, "maxiter": 5000})
    assert_allclose(res.x, ref.x, rtol=1e-5, atol=1e-6 * np.abs(ref.x).max())
    assert res.fun <= ref.fun + 1e-12


def test_accepted_steps_satisfy_the_strong_wolfe_conditions():
    loss = _logistic(3, spread=1.0, correlated=0.9)
    log = []
    accepted = []
    res = lbfgs(_counting(loss, log), np.zeros(loss.n_params), 1e-8, 500,
                callback=lambda x, gnorm: accepted.append(x.copy()))
    assert res.success and len(accepted) == res.nit
    points = {entry[0].tobytes(): entry for entry in log}
    previous = log[0]
    checked = 0
    for x in accepted:
        _, f_new, g_new = points[x.tobytes()]
        w, f, g = previous
        s = x - w
        slope = g @ s
        assert slope < 0
        resolved = abs(f - f_new) > 16 * np.finfo(float).eps * abs(f) and -slope > 1000 * np.finfo(float).eps * abs(f)
        if resolved:
            assert f_new <= f + _ARMIJO * slope
            assert abs(g_new @ s) <= _CURVATURE * -slope + 1e-15
            checked += 1
        previous = points[x.tobytes()]
    assert checked >= 10


def test_first_step_has_unit_length_and_reaches_the_line_minimum_on_a_quadratic():
    # f = x^T A x / 2 - b^T x: the first trial is -g / ||g||; the interpolated cubic then lands on the
    # minimum along -g within the strong Wolfe conditions.
    rng = np.random.default_rng(5)
    A = np.diag(np.logspace(0, 3, 8))
    b = rng.standard_normal(8)
    log = []

    def fun(x):
        g = A @ x - b
        log.append(x.copy())
        return 0.5 * x @ A @ x - b @ x, g, float(np.linalg.norm(g))

    res = lbfgs(fun, np.zeros(8), 1e-10, 500)
    assert res.success
    assert_allclose(np.linalg.norm(log[1]), 1.0)
    assert_allclose(res.x, np.linalg.solve(A, b), rtol=1e-8)


def test_stops_at_max_iter_and_on_a_direction_without_decrease():
    loss = _logistic(4)
    res = lbfgs(_counting(loss), np.zeros(loss.n_params), 1e-12, 3)
    assert res.status == 1 and not res.success and res.nit == 3

    start = np.zeros(loss.n_params)

    def overflowing(x):  # f = +inf at every point but the start: no trial decreases it
        value, g, gnorm = _counting(loss)(x)
        return (value if not x.any() else np.inf), g, gnorm

    res = lbfgs(overflowing, start, 1e-12, 10)
    assert res.status == 2 and not res.success and res.nit == 0


def test_a_callback_that_raises_stops_the_run():
    loss = _logistic(5)

    class Enough(Exception):
        pass

    seen = []

    def callback(x, gnorm):
        seen.append(gnorm)
        if len(seen) == 2:
            raise Enough

    with pytest.raises(Enough):
        lbfgs(_counting(loss), np.zeros(loss.n_params), 1e-12, 100, callback=callback)
    assert len(seen) == 2


def test_infinite_values_shrink_the_step():
    # f = +inf beyond x = 2 (as the losses report an overflow): a first trial there is bisected back inside.
    trials = []

    def fun(x):
        trials.append(x.copy())
        if x.max() > 2.0:
            return np.inf, np.zeros_like(x), np.inf
        g = x - 1.5
        return 0.5 * float(g @ g), g, float(np.linalg.norm(g))

    x = np.zeros(2)
    f, g, _ = fun(x)
    d = -g
    step = _line_search(fun, x, f, g, d, float(g @ d), 10.0, Resolution(np.float64, np))
    assert trials[1].max() > 2.0 and step.x.max() <= 2.0
    assert step.f <= f + _ARMIJO * step.t * float(g @ d)


def test_a_nan_is_never_convergence():
    def fun(x):
        return np.nan, np.full_like(x, np.nan), np.nan

    res = lbfgs(fun, np.zeros(3), 1e-8, 10)
    assert not res.success and res.status == 2


def _compiled_and_python_runs(loss, tol, max_iter, budget=np.inf, window=10):
    """The compiled run and :func:`lbfgs` with the monitor of solver="auto",
    both from zero in the variables scaled by the Hessian's diagonal."""
    from secondorder.linear_model import _auto
    from secondorder.linear_model._lbfgs import lbfgs_compiled

    w0 = loss.initial_params().astype(np.float64)
    root = np.sqrt(loss.hessian_diagonal(w0))
    precision = np.float32 if loss.dtype == np.float32 else np.float64
    passes = loss.n_passes
    compiled = loss._compiled_lbfgs(root)
    assert compiled is not None
    u, nit, status = lbfgs_compiled(loss, compiled, w0, root, tol, max_iter, precision, window, budget)
    compiled_passes = loss.n_passes - passes
    cached = loss._cache[0]

    def fun(v):
        value, g, _ = loss._point(v / root)
        return value, g / root, np.linalg.norm(g)

    monitor = _auto._Monitor(loss, tol, budget, window)
    start = loss.n_passes
    try:
        res = lbfgs(fun, np.zeros_like(root), tol, max_iter, callback=monitor, dtype=precision)
        reference = (res.x, res.nit, res.status)
    except _auto._Slow:
        reference = (monitor.x, len(monitor.history), 3)
    return (u, nit, status, compiled_passes, cached), reference + (loss.n_passes - start,)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("classes", [2, 4])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("sparse", [False, True])
def test_compiled_run_takes_the_python_runs_iterates(dtype, classes, fit_intercept, sparse):
    import scipy.sparse as sp

    from secondorder.linear_model import SoftmaxLoss

    rng = np.random.default_rng(classes)
    X = (rng.standard_normal((400, 12)) * np.logspace(0, 2, 12)).astype(dtype)  # unscaled: a longer run
    if sparse:
        X[rng.random(X.shape) < 0.6] = 0.0
        X = sp.csr_matrix(X)
    y = rng.integers(0, classes, 400)
    sw = rng.random(400) + 0.5
    make = LogisticLoss if classes == 2 else SoftmaxLoss
    kwargs = {} if classes == 2 else {"n_classes": classes}
    loss = make(X, y, alpha=1e-3, fit_intercept=fit_intercept, sample_weight=sw, **kwargs)
    (u, nit, status, passes, cached), (u_ref, nit_ref, status_ref, passes_ref) = _compiled_and_python_runs(
        loss, 1e-8 if dtype == np.float64 else 1e-4, 500)
    assert (nit, status, passes) == (nit_ref, status_ref, passes_ref)
    assert nit >= 3
    assert_allclose(u, u_ref, rtol=1e-12, atol=1e-14)
    # the last iterate is the loss's cached point, with its value, gradient and state
    fresh = make(X, y, alpha=1e-3, fit_intercept=fit_intercept, sample_weight=sw, **kwargs)
    value, grad, state = fresh._point(cached[0])
    assert cached[1] == pytest.approx(value, rel=1e-14)
    assert_allclose(cached[2], grad, rtol=1e-12, atol=1e-16)
    for a, b in zip(np.atleast_2d(cached[3]) if classes > 2 else cached[3], np.atleast_2d(state) if classes > 2 else state):
        assert_allclose(a, b, rtol=1e-14)


def test_compiled_run_hands_over_where_the_python_run_does():
    # a correlated problem with weak regularisation: the rate predicts more passes than a small budget
    rng = np.random.default_rng(7)
    X = rng.standard_normal((600, 20)) @ (np.eye(20) + rng.standard_normal((20, 20)))
    y = (X @ rng.standard_normal(20) + rng.standard_normal(600) > 0).astype(int)
    loss = LogisticLoss(X, y, alpha=1e-7)
    (u, nit, status, passes, _), (u_ref, nit_ref, status_ref, passes_ref) = _compiled_and_python_runs(
        loss, 1e-10, 500, budget=20.0)
    assert status == status_ref == 3
    assert (nit, passes) == (nit_ref, passes_ref)
    assert_allclose(u, u_ref, rtol=1e-12)


@pytest.mark.parametrize("classes", [2, 3])
def test_fits_that_run_compiled_name_nan_in_X(classes):
    from secondorder.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 40))
    y = rng.integers(0, classes, 300)
    from secondorder.linear_model import SoftmaxLoss

    loss = LogisticLoss(X, y) if classes == 2 else SoftmaxLoss(X, y)
    assert loss._compiled_lbfgs(np.ones(loss.n_params)) is not None
    clf = LogisticRegression().fit(X, y)
    assert clf.solver_ == "lbfgs"
    X[17, 3] = np.nan
    with pytest.raises(ValueError, match="`X` must be finite but holds 1 NaN"):
        LogisticRegression().fit(X, y)


@pytest.mark.parametrize("classes", [2, 3])
def test_compiled_run_on_threaded_passes(classes):
    # beyond 400,000 entries a pass runs on numba's threads, inside the compiled run too
    from secondorder.linear_model import SoftmaxLoss

    rng = np.random.default_rng(11)
    X = rng.standard_normal((5000, 90))
    y = rng.integers(0, classes, 5000)
    loss = LogisticLoss(X, y, alpha=1e-3) if classes == 2 else SoftmaxLoss(X, y, alpha=1e-3)
    assert loss._compiled_lbfgs(np.ones(loss.n_params))[1][-1] > 1 or loss._blocks(loss.n_outputs) == 1
    (u, nit, status, passes, _), (u_ref, nit_ref, status_ref, passes_ref) = _compiled_and_python_runs(loss, 1e-8, 300)
    assert (nit, status, passes) == (nit_ref, status_ref, passes_ref)
    assert_allclose(u, u_ref, rtol=1e-12, atol=1e-14)

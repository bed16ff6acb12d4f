"""L-BFGS on the fused GLM passes, compiled whole (numba).

The same iteration as :func:`secondorder.linear_model._lbfgs.lbfgs`, step
for step (the tests hold the two to the same iterates), for the binary and
multinomial losses on an ``X`` (dense, or CSR) on the numba kernels: the
loop, the strong Wolfe line search and the passes over ``X`` in one call.
On small data a pass takes 15-130 µs and the Python around each iteration
(the loss's cache and checks, the line search's bookkeeping) 30-40 µs
more: binary 1000 x 100, 22 iterations, took 1.9 ms a fit instead of 3.9.

The variables are scaled, ``w = u / root`` (``solver="auto"``'s scaling by
the Hessian's diagonal at the start); the gradient norm judged against
``tol`` is the original objective's.  ``data`` is a tuple
``(X, y, sw, root, alpha, inv_total, fit_intercept, K, nb)`` (``nb``: the
pass's blocks of rows, 1 on the calling thread), with ``X`` a
tuple ``(data, indices, indptr, n_features)`` of unsigned index arrays
where it is CSR, and ``state`` the per-sample arrays a pass fills: ``[r; h]`` (shape ``(2, n)``) for the binary
loss, ``P`` (``(n, K)``) for the multinomial one.

The driver compiles with strict IEEE arithmetic (``fastmath=False``): it
tests values for inf, which LLVM's fast-math folding can break.  Numba's
on-disk cache does not follow calls into other files: after an edit of
``glm.py`` or ``lbfgs.py``, touch this file so that its functions compile
again.
"""

import math
import types

import numpy as np

from ..._backend import jit
from .glm import _logistic_grad_csr, _logistic_grad_dense, _softmax_grad_csr, _softmax_grad_dense
from .lbfgs import lbfgs_direction

__all__ = ["interpolate", "lbfgs_logistic", "lbfgs_logistic_csr", "lbfgs_softmax", "lbfgs_softmax_csr",
           "predicts_slow"]

# Each pass's two compilations (see glm._Pass): on the calling thread, and over numba's threads.
_logistic_serial, _logistic_threaded = _logistic_grad_dense.serial, _logistic_grad_dense.threaded
_logistic_csr_serial, _logistic_csr_threaded = _logistic_grad_csr.serial, _logistic_grad_csr.threaded
_softmax_serial, _softmax_threaded = _softmax_grad_dense.serial, _softmax_grad_dense.threaded
_softmax_csr_serial, _softmax_csr_threaded = _softmax_grad_csr.serial, _softmax_grad_csr.threaded

# The statuses this run adds to lbfgs's (0-2), as secondorder.linear_model._lbfgs names them (SLOW, _NONFINITE).
_STATUS_SLOW = 3
_STATUS_NONFINITE = 4
# The pass of each compiled copy of _run (see variant).
_point = None


@jit(error_model="numpy", fastmath=False)
def interpolate(lo_t, lo_f, lo_slope, hi_t, hi_f, hi_slope):
    """The minimiser of the cubic through both ends' values and slopes
    (Nocedal and Wright, eq. 3.59), or of the quadratic through ``lo``'s
    value and slope and ``hi``'s value where the cubic has none (``hi``'s
    value infinite, say), kept within the middle 80% of the bracket."""
    h = hi_t - lo_t
    t = math.nan
    if math.isfinite(hi_f):
        d1 = lo_slope + hi_slope - 3.0 * (lo_f - hi_f) / (lo_t - hi_t)
        disc = d1 * d1 - lo_slope * hi_slope
        if disc >= 0.0:
            d2 = math.copysign(math.sqrt(disc), h)
            t = hi_t - h * (hi_slope + d2 - d1) / (hi_slope - lo_slope + 2.0 * d2)
    if not math.isfinite(t):
        curve = hi_f - lo_f - lo_slope * h
        if curve > 0.0 and math.isfinite(curve):
            t = lo_t - lo_slope * h * h / (2.0 * curve)
        else:
            t = lo_t + 0.5 * h
    a = lo_t + 0.1 * h
    b = hi_t - 0.1 * h
    if a > b:
        a, b = b, a
    return min(b, max(a, t))


@jit(error_model="numpy", fastmath=False)
def _finish(value, gcoef, gb, u, root, alpha, inv_total, m, fit_intercept, g_u):
    """Value and gradient from a pass's sums (``gcoef`` over the ``m``
    coefficients, ``gb`` over the intercepts), in the scaled variables into
    ``g_u``; returns ``(f, ||grad f||)``, ``f`` infinite where the loss
    overflowed (a step to reject)."""
    penalty = 0.0
    gn2 = 0.0
    for j in range(m):
        c = u[j] / root[j]
        penalty += c * c
        gj = gcoef[j] * inv_total + alpha * c
        gn2 += gj * gj
        g_u[j] = gj / root[j]
    if fit_intercept:
        for k in range(gb.shape[0]):
            gk = gb[k] * inv_total
            gn2 += gk * gk
            g_u[m + k] = gk / root[m + k]
    f = value * inv_total + 0.5 * alpha * penalty
    if not math.isfinite(f):
        f = math.inf
    return f, math.sqrt(gn2)


@jit(error_model="numpy")
def _split(u, root, K, d, fit_intercept, dtype):
    """``(coef, b)`` of the scaled variables ``u``: ``coef`` of shape
    ``(K, d)`` in ``X``'s ``dtype`` (the kernels take the parameters in it),
    ``b`` the ``K`` intercepts (zeros without)."""
    coef = np.empty((K, d), dtype=dtype)
    b = np.zeros(K)
    for k in range(K):
        for j in range(d):
            coef[k, j] = u[k * d + j] / root[k * d + j]
        if fit_intercept:
            b[k] = u[K * d + k] / root[K * d + k]
    return coef, b


@jit(error_model="numpy")
def _row_sum(r):
    gb = np.zeros(1)
    for i in range(r.shape[0]):
        gb[0] += r[i]
    return gb


@jit(error_model="numpy")
def _logistic_point(data, u, g_u, state):
    X, y, sw, root, alpha, inv_total, fit_intercept, _, nb = data
    d = X.shape[1]
    coef, b = _split(u, root, 1, d, fit_intercept, X.dtype)
    r, h = state[0], state[1]
    if nb == 1:
        value, g = _logistic_serial(X, y, sw, coef[0], b[0], r, h, np.zeros((1, 0, 0)), np.zeros((1, 0)), 1)
    else:
        value, g = _logistic_threaded(X, y, sw, coef[0], b[0], r, h, np.zeros((nb, 0, 0)), np.zeros((nb, 0)), nb)
    return _finish(value, g, _row_sum(r), u, root, alpha, inv_total, d, fit_intercept, g_u)


@jit(error_model="numpy")
def _logistic_csr_point(data, u, g_u, state):
    (values, indices, indptr, d), y, sw, root, alpha, inv_total, fit_intercept, _, nb = data
    coef, b = _split(u, root, 1, d, fit_intercept, values.dtype)
    r, h = state[0], state[1]
    if nb == 1:
        value, g = _logistic_csr_serial(values, indices, indptr, d, y, sw, coef[0], b[0], r, h, np.zeros((1, 0)), 1)
    else:
        value, g = _logistic_csr_threaded(values, indices, indptr, d, y, sw, coef[0], b[0], r, h, np.zeros((nb, 0)),
                                          nb)
    return _finish(value, g, _row_sum(r), u, root, alpha, inv_total, d, fit_intercept, g_u)


@jit(error_model="numpy")
def _softmax_point(data, u, g_u, state):
    X, y, sw, root, alpha, inv_total, fit_intercept, K, nb = data
    d = X.shape[1]
    coef, b = _split(u, root, K, d, fit_intercept, X.dtype)
    if nb == 1:
        value, g, gb = _softmax_serial(X, y, sw, coef, b, state, 1)
    else:
        value, g, gb = _softmax_threaded(X, y, sw, coef, b, state, nb)
    return _finish(value, g.ravel(), gb, u, root, alpha, inv_total, K * d, fit_intercept, g_u)


@jit(error_model="numpy")
def _softmax_csr_point(data, u, g_u, state):
    (values, indices, indptr, d), y, sw, root, alpha, inv_total, fit_intercept, K, nb = data
    coef, b = _split(u, root, K, d, fit_intercept, values.dtype)
    coef_t = np.ascontiguousarray(coef.T)  # feature-major, as the CSR pass takes it
    if nb == 1:
        value, g_t, gb = _softmax_csr_serial(values, indices, indptr, y, sw, coef_t, b, state, 1)
    else:
        value, g_t, gb = _softmax_csr_threaded(values, indices, indptr, y, sw, coef_t, b, state, nb)
    return _finish(value, g_t.T.copy().ravel(), gb, u, root, alpha, inv_total, K * d, fit_intercept, g_u)


def _run(data, x, f, g, gnorm, state, tol, max_iter, memory, eps, constants, window, budget):
    # constants: the line search's (c1, c2, trials, extrapolation) and the resolution's (noise, tiny) in ulps
    armijo, curvature, trials, extrapolate, noise_ulps, tiny_ulps = constants
    p = x.shape[0]
    S = np.empty((memory, p))
    Y = np.empty((memory, p))
    rho = np.empty(memory)
    newest, count = -1, 0
    history = np.empty(max(max_iter, 1))
    # the trial's arrays, and the low end's (a trial that decreased f without the curvature condition)
    x_try, g_try, state_try = np.empty(p), np.empty(p), np.empty_like(state)
    x_lo, g_lo, state_lo = np.empty(p), np.empty(p), np.empty_like(state)
    nit, nfev, status = 0, 0, 0
    while not gnorm <= tol:  # a NaN norm is no convergence
        if nit >= max_iter:
            status = 1
            break
        d = lbfgs_direction(S, Y, rho, newest, count, g)
        slope = 0.0
        for k in range(p):
            slope += g[k] * d[k]
        if not slope < 0.0:  # rounding in the pairs: start the memory afresh
            count = 0
            slope = 0.0
            for k in range(p):
                d[k] = -g[k]
                slope -= g[k] * g[k]
        t = 1.0 if count else min(1.0, 1.0 / math.sqrt(-slope))
        # the strong Wolfe line search of _lbfgs._line_search: lo starts at the current point (t = 0)
        lo_t, lo_f, lo_slope, lo_gnorm, lo_start = 0.0, f, slope, gnorm, True
        hi_t, hi_f, hi_slope, have_hi = 0.0, 0.0, 0.0, False
        accepted = False
        for _ in range(trials):
            for k in range(p):
                x_try[k] = x[k] + t * d[k]
            f_try, gnorm_try = _point(data, x_try, g_try, state_try)
            nfev += 1
            if not math.isfinite(gnorm_try):
                status = _STATUS_NONFINITE
                break
            slope_try = 0.0
            for k in range(p):
                slope_try += g_try[k] * d[k]
            noise = noise_ulps * eps * max(abs(f), abs(f_try) if math.isfinite(f_try) else 0.0)
            if abs(f - f_try) > noise and not -t * slope <= tiny_ulps * eps * abs(f):
                decreases = f_try <= f + armijo * t * slope and (lo_start or f_try <= lo_f)
            else:  # f cannot judge the step; the gradients can (trapezoidal rule)
                estimate = 0.0
                for k in range(p):
                    estimate -= 0.5 * (g[k] + g_try[k]) * (t * d[k])
                decreases = estimate > 0.0
            if not decreases:
                hi_t, hi_f, hi_slope, have_hi = t, f_try, slope_try, True
            elif abs(slope_try) <= -curvature * slope:
                accepted = True
                break
            else:
                if slope_try * ((hi_t if have_hi else math.inf) - t) >= 0.0:
                    hi_t, hi_f, hi_slope, have_hi = lo_t, lo_f, lo_slope, True
                lo_t, lo_f, lo_slope, lo_gnorm, lo_start = t, f_try, slope_try, gnorm_try, False
                x_lo, x_try = x_try, x_lo
                g_lo, g_try = g_try, g_lo
                state_lo, state_try = state_try, state_lo
            t = interpolate(lo_t, lo_f, lo_slope, hi_t, hi_f, hi_slope) if have_hi else extrapolate * t
        if status == _STATUS_NONFINITE:
            break
        if not accepted:
            if lo_start:
                status = 2
                break
            x_try, x_lo = x_lo, x_try
            g_try, g_lo = g_lo, g_try
            state_try, state_lo = state_lo, state_try
            f_try, gnorm_try = lo_f, lo_gnorm
        sy = 0.0
        yy = 0.0
        for k in range(p):
            sk = x_try[k] - x[k]
            yk = g_try[k] - g[k]
            sy += sk * yk
            yy += yk * yk
        if sy > 2.220446049250313e-16 * yy:
            newest = (newest + 1) % memory
            for k in range(p):
                S[newest, k] = x_try[k] - x[k]
                Y[newest, k] = g_try[k] - g[k]
            rho[newest] = 1.0 / sy
            count = min(count + 1, memory)
        x, x_try = x_try, x
        g, g_try = g_try, g
        state, state_try = state_try, state
        f, gnorm = f_try, gnorm_try
        history[nit] = gnorm
        nit += 1
        if predicts_slow(history, nit, window, tol, nfev / nit, budget):
            status = _STATUS_SLOW
            break
    return x, f, g, gnorm, state, nit, nfev, status, history[:nit].copy()


@jit(fastmath=False)
def predicts_slow(history, k, window, tol, passes_per_iteration, budget):
    """Whether the rate of the last ``window`` gradient norms (of ``k``)
    predicts more passes to ``tol`` than ``budget`` (``solver="auto"``'s
    hand-over from L-BFGS to Newton)."""
    if k <= window:
        return False
    gnorm, before = history[k - 1], history[k - 1 - window]
    rate = (gnorm / before) ** (1.0 / window) if before > 0.0 else 1.0
    remaining = math.log(tol / gnorm) / math.log(rate) if rate < 1.0 else math.inf
    return remaining * passes_per_iteration > budget


def variant(func, name, **bindings):
    """A copy of the plain function ``func`` named ``name``, with
    ``bindings`` in place of its globals of those names, compiled with
    strict IEEE arithmetic (its own entry in numba's on-disk cache): one
    loop, compiled once per pass or product it makes."""
    copy = types.FunctionType(func.__code__, dict(func.__globals__, **bindings), name)
    copy.__qualname__ = name
    return jit(copy, error_model="numpy", fastmath=False)


lbfgs_logistic = variant(_run, "lbfgs_logistic", _point=_logistic_point)
lbfgs_logistic_csr = variant(_run, "lbfgs_logistic_csr", _point=_logistic_csr_point)
lbfgs_softmax = variant(_run, "lbfgs_softmax", _point=_softmax_point)
lbfgs_softmax_csr = variant(_run, "lbfgs_softmax_csr", _point=_softmax_csr_point)

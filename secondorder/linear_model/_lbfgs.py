r"""L-BFGS with a strong Wolfe line search, bare: ``solver="auto"``'s
quasi-Newton phase, on the fused loss in variables scaled to unit
curvature.

At :math:`x_k`, with :math:`f_k` and :math:`g_k` from one pass over ``X``:

1. stop when the norm the caller judges (the original objective's gradient
   norm) is at most ``tol``;
2. :math:`d_k = -H_k g_k` by the two-loop recursion over the latest
   ``memory`` pairs (:func:`~secondorder._kernels.fallback.lbfgs.lbfgs_direction`,
   one compiled call), :math:`H_k` updated from :math:`\gamma I`,
   :math:`\gamma = s^T y / y^T y` of the newest pair;
3. a step :math:`t` with :math:`f(x_k + t d_k) \le f_k + c_1 t\, g_k^T d_k`
   and :math:`|g(x_k + t d_k)^T d_k| \le c_2 |g_k^T d_k|` (strong Wolfe,
   :math:`c_1 = 10^{-4}`, :math:`c_2 = 0.9`): from :math:`t = 1` (a step of
   unit length while there is no pair, as L-BFGS-B), extrapolating while
   the slope stays steep, then narrowing the bracket by cubic
   interpolation.  Where :math:`f` no longer resolves the decrease (near
   the solution at tight tolerances), the decrease estimated from the
   gradients at both ends judges the step instead;
4. keep the pair :math:`s_k = t d_k`, :math:`y_k = g_{k+1} - g_k` when
   :math:`s_k^T y_k > 0` (always, on a strictly convex loss).

An iteration costs one pass over ``X`` (the first trial is accepted almost
always) and one call for the direction.  scipy's L-BFGS-B takes the same
iterations on these problems, with about 100 µs of Python and bookkeeping
around each: on small data, more than the pass itself.

References
----------
.. [1] J. Nocedal and S. J. Wright, Numerical Optimization, 2nd ed.,
   Springer, 2006, Algorithms 3.1 and 7.4-7.5.
.. [2] D. C. Liu and J. Nocedal, "On the limited memory BFGS method for
   large scale optimization", Mathematical Programming 45, 1989.
"""

import math

import numpy as np
from scipy.optimize import OptimizeResult

from .._array_api import norm, to_numpy
from .._backend import kernels
from ..optimize._common import STATUS, Resolution, gradient_decrease

__all__ = ["lbfgs", "lbfgs_compiled"]

# The status of a run stopped because its rate predicts more passes than the budget (lbfgs_compiled).
SLOW = 3

# The strong Wolfe conditions' constants (scipy's L-BFGS-B uses the same curvature constant, and 1e-3 for the
# decrease), the trials a line search may take, and how far an extrapolation goes.
_ARMIJO = 1e-4
_CURVATURE = 0.9
_MAX_TRIALS = 30
_EXTRAPOLATE = 4.0
# The status of a compiled run that met a gradient that is not finite.
_NONFINITE = 4


class _Trial:
    """A point on the search line: step ``t``, value, gradient, its norm,
    and the slope ``g^T d`` there."""

    __slots__ = ("t", "f", "g", "gnorm", "slope", "x")

    def __init__(self, t, x, f, g, gnorm, slope):
        self.t, self.x, self.f, self.g, self.gnorm, self.slope = t, x, f, g, gnorm, slope


def _interpolate(lo, hi):
    """The next trial step between the bracket's ends ``lo`` and ``hi``
    (:func:`~secondorder._kernels.cpu.glm_lbfgs.interpolate`: cubic
    interpolation, kept within the middle 80% of the bracket)."""
    from .._kernels.cpu.glm_lbfgs import interpolate

    return interpolate(lo.t, lo.f, lo.slope, hi.t, hi.f, hi.slope)


def _line_search(fun, x, f, g, d, slope, t, resolution):
    """A step along ``d`` that satisfies the strong Wolfe conditions
    (Nocedal and Wright, Algorithms 3.5 and 3.6): from the step ``t``,
    extrapolate while the slope stays steep, then narrow the bracket by
    interpolation.  Where ``f`` cannot resolve the decrease, the decrease
    estimated from the gradients stands in for it.  Returns the accepted
    :class:`_Trial`, or None."""
    start = _Trial(0.0, x, f, g, None, slope)
    lo, hi = start, None
    for _ in range(_MAX_TRIALS):
        s = t * d
        x_new = x + s
        f_new, g_new, gnorm_new = fun(x_new)
        trial = _Trial(t, x_new, f_new, g_new, gnorm_new, float(g_new @ d))
        if resolution.resolves(f, f_new, -t * slope):
            decreases = f_new <= f + _ARMIJO * t * slope and (lo is start or f_new <= lo.f)
        else:  # f cannot judge the step; the gradients can
            decreases = gradient_decrease(g, g_new, s) > 0.0
        if not decreases:
            hi = trial
        elif abs(trial.slope) <= -_CURVATURE * slope:
            return trial
        else:
            if trial.slope * ((hi.t if hi is not None else math.inf) - t) >= 0.0:
                hi = lo  # the slope points away from hi: the minimum lies between this trial and the last low one
            lo = trial
        t = _interpolate(lo, hi) if hi is not None else _EXTRAPOLATE * t
    return lo if lo is not start else None


def lbfgs(fun, x, tol, max_iter, callback=None, memory=10, dtype=np.float64):
    """Minimise ``fun`` from ``x`` (a NumPy float64 vector).

    ``fun(x)`` returns ``(f, g, gnorm)``: the value, the gradient in ``x``'s
    variables, and the norm the stopping test compares with ``tol``.
    ``callback(x, gnorm)``, after each iteration, may raise to stop the run
    (the exception propagates; the caller keeps what it needs).  ``dtype``
    is the precision ``f`` is computed in (its rounding noise).  Returns an
    ``OptimizeResult`` with ``x``, ``fun``, ``jac``, ``gnorm``, ``nit``,
    ``status`` (0 converged, 1 ``max_iter``, 2 no decrease measurable) and
    ``success``."""
    direction = kernels(np).lbfgs_direction
    resolution = Resolution(dtype, np)
    p = x.shape[0]
    S, Y, rho = np.empty((memory, p)), np.empty((memory, p)), np.empty(memory)
    newest, count = -1, 0
    f, g, gnorm = fun(x)
    nit, status = 0, 0
    while not gnorm <= tol:  # a NaN norm is no convergence
        if nit >= max_iter:
            status = 1
            break
        d = direction(S, Y, rho, newest, count, g)
        slope = float(g @ d)
        if not slope < 0.0:  # rounding in the pairs: start the memory afresh
            count = 0
            d = -g
            slope = -float(g @ g)
        # without pairs, a first step of unit length (L-BFGS-B's): the variables' scale bounds the curvature
        # only along each axis, and the steepest direction of correlated features curves far more
        t = 1.0 if count else min(1.0, 1.0 / math.sqrt(-slope))
        step = _line_search(fun, x, f, g, d, slope, t, resolution)
        if step is None:
            status = 2
            break
        s, y = step.x - x, step.g - g
        sy = float(s @ y)
        if sy > np.finfo(float).eps * float(y @ y):
            newest = (newest + 1) % memory
            S[newest], Y[newest], rho[newest] = s, y, 1.0 / sy
            count = min(count + 1, memory)
        x, f, g, gnorm = step.x, step.f, step.g, step.gnorm
        nit += 1
        if callback is not None:
            callback(x, gnorm)
    message = STATUS[status] if status != 2 else "The line search found no decrease."
    return OptimizeResult(x=x, fun=f, jac=g, gnorm=gnorm, nit=nit, status=status, success=status == 0,
                          message=message)


def lbfgs_compiled(loss, compiled, w0, root, tol, max_iter, dtype, window, budget, memory=10):
    """:func:`lbfgs` in the variables ``u = root * w`` from ``w0``, run
    whole by a compiled routine that makes the loss's passes itself
    (``compiled``, the loss's ``_compiled_lbfgs``; see
    :mod:`secondorder._kernels.cpu.glm_lbfgs`: the same iterates as
    :func:`lbfgs`).  ``w0`` was just evaluated: its gradient's pass is the
    run's first.  It stops, as the hand-over rule of
    :mod:`secondorder.linear_model._auto` would, where the rate of the last
    ``window`` iterations predicts more passes than ``budget``.  The last
    iterate is the loss's cached point afterwards.  Returns ``(u, nit,
    status)``, status as :func:`lbfgs`'s, or :data:`SLOW`."""
    routine, data, pack, unpack = compiled
    value, grad, state = loss._point(w0)
    state = pack(state)  # a copy: the run writes over it
    grad = to_numpy(grad)
    constants = (_ARMIJO, _CURVATURE, _MAX_TRIALS, _EXTRAPOLATE, Resolution.NOISE, Resolution.TINY_DECREASE)
    u, f, g, gnorm, state, nit, nfev, status, _ = routine(
        data, np.zeros(root.shape[0]), value, grad / root, norm(np, grad), state, tol, max_iter, memory,
        float(np.finfo(dtype).eps), constants, window, budget,
    )
    loss.n_passes += nfev
    if status == _NONFINITE:
        loss._nonfinite_gradient()
    loss._remember(u / root, f, g * root, unpack(state))
    return u, nit, status

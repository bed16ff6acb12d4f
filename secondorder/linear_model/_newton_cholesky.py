r"""Newton's method with a Cholesky solve and a backtracking line search:
``solver="auto"``'s method for binary losses whose gradient's pass also
sums the Hessian cheaply (at most 24 parameters on dense ``X``, ``n p^2``
up to about 4 million: rule 0 of :mod:`._auto`).

At :math:`w_k`, with :math:`f_k`, :math:`g_k` and :math:`H_k` from one
pass over ``X``:

1. stop when :math:`\|g_k\| \le` ``tol``;
2. :math:`s_k = -H_k^{-1} g_k` by a Cholesky factorisation of the
   :math:`p \times p` matrix;
3. halve :math:`t` from 1 until :math:`f(w_k + t s_k) \le f_k + c\, t\,
   g_k^T s_k` (Armijo, :math:`c = 10^{-4}`); each trial's pass gives its
   Hessian too, so the accepted trial is the next iterate at no extra cost.
   Where :math:`f` no longer resolves the decrease (its difference below
   the rounding noise, near the solution at tight tolerances), a trial that
   lowers :math:`\|g\|` is accepted instead.

A Newton iteration then costs one pass, as an L-BFGS iteration does, and the
method needs a handful of them whatever the conditioning.  On small data the
iteration's cost is its fixed overhead, so the loop is kept bare: no
eigendecomposition, no trust radius.  Where the bare method cannot go on
(:math:`H_k` not positive definite, a line search that finds no decrease),
it stops and says so, and the caller hands over to the trust region.

References
----------
.. [1] J. Nocedal and S. J. Wright, Numerical Optimization, 2nd ed.,
   Springer, 2006, Algorithms 3.1 and 3.2.
.. [2] scikit-learn's ``LogisticRegression(solver="newton-cholesky")``, the
   same iteration with the Hessian from a pass of its own.
"""


import numpy as np
from scipy.optimize import OptimizeResult

from .._array_api import cho_solve, cholesky, norm
from ..optimize._common import STATUS, Resolution

__all__ = ["newton_cholesky"]

# Armijo's sufficient-decrease constant and the halvings a line search may take.
_ARMIJO = 1e-4
_MAX_HALVINGS = 30


def newton_cholesky(loss, w, tol, max_iter, kind="exact"):
    """Minimise ``loss`` from ``w`` (a NumPy float64 vector) to a gradient
    norm of ``tol``; an ``OptimizeResult`` with ``x``, ``fun``, ``jac``,
    ``nit``, ``success`` and ``message``.  ``success`` is False when the
    method stopped early (``max_iter``, a Hessian that is not positive
    definite, a failed line search): the caller goes on from ``x``.

    The loss must be a NumPy binary loss whose gradient's pass sums the
    curvature matrix of ``kind`` (``loss._fuse_gram()`` once asked for)."""
    prefetch, loss._prefetch = loss._prefetch, kind  # every pass sums the matrix too
    # the kernels take the parameters in X's precision: f's rounding noise is float32's on float32 data
    resolution = Resolution(loss.dtype, np)
    f, g, _ = loss._point(w)
    gnorm = norm(np, g)
    nit = 0
    message = None
    while gnorm > tol:
        if nit >= max_iter:
            message = STATUS[1]
            break
        try:
            factor = cholesky(np, loss._dense(w, kind, None), 0.0)
        except np.linalg.LinAlgError:
            message = "The Hessian is not positive definite at this point."
            break
        s = -cho_solve(np, factor, g)
        slope = float(g @ s)
        if not slope < 0.0:  # rounding: no descent left along s
            message = "The Newton step is not a descent direction."
            break
        t = 1.0
        for _ in range(_MAX_HALVINGS):
            w_new = w + t * s
            f_new, g_new, _ = loss._point(w_new)
            gnorm_new = norm(np, g_new)
            if f_new <= f + _ARMIJO * t * slope:
                break
            if abs(f - f_new) <= resolution.noise(f, f_new) and gnorm_new < gnorm:
                break  # f cannot judge the step; the gradient can
            t *= 0.5
        else:
            message = "The line search found no decrease."
            break
        nit += 1
        w, f, g, gnorm = w_new, f_new, g_new, gnorm_new
    loss._prefetch = prefetch
    return OptimizeResult(x=w, fun=f, jac=g, nit=nit, success=message is None, message=message or STATUS[0])

r"""Trust-region method over any curvature model (``method="trust-region"``).

At an accepted point with gradient :math:`g` and model :math:`H`, the step
solves (exactly for structured models, by Steihaug-CG for operators)

.. math::

    \min_s \; g^T s + \tfrac12 s^T H s \quad \text{subject to} \quad \|s\| \le \Delta,

and is accepted when the ratio :math:`\rho` of actual to predicted decrease
exceeds :math:`\eta`.  The radius shrinks by 4 when :math:`\rho < 1/4` and
doubles (up to :math:`\Delta_{\max}`) when :math:`\rho > 3/4` on the boundary:
scipy's constants, so results line up with its ``trust-*`` methods.
"""

import math

from .._array_api import copy, norm
from .._validation import check_nonnegative, check_positive
from ..curvature._base import NonFiniteCurvatureError
from ._common import (
    IterationTable,
    Resolution,
    check_unknown_options,
    gradient_decrease,
    make_result,
    precision_loss,
    resolve_common,
    start,
)

__all__ = []

# Consecutive rejected steps whose decrease is below the rounding noise of f
# (and whose gradient-based estimate fails too) before giving up.
_MAX_STALLED = 5


def _trust_step(model, g, radius):
    """``(step, hits_boundary)`` from a model's ``trust_step``;
    ``hits_boundary`` is None when the model returns the step alone."""
    out = model.trust_step(g, radius)
    if isinstance(out, tuple) and len(out) == 2:
        return out[0], bool(out[1])
    return out, None


def _minimize_trust_region(
    obj,
    x0,
    model,
    callback,
    *,
    initial_trust_radius=1.0,
    max_trust_radius=1000.0,
    eta=0.15,
    gtol=None,
    maxiter=None,
    disp=False,
    **unknown_options,
):
    r"""Minimise with a trust-region method over a curvature model.

    Options
    -------
    curvature, curvature_options
        The curvature model; see :func:`secondorder.minimize`.
    initial_trust_radius : float
        :math:`\Delta_0` (default 1).
    max_trust_radius : float
        :math:`\Delta_{\max}` (default 1000).
    eta : float
        Acceptance threshold on :math:`\rho`, in [0, 1/4) (default 0.15).
    gtol : float
        Stop when :math:`\|g\|_2 \le` ``gtol`` (default 1e-5 in float64,
        1e-3 in float32).
    maxiter : int
        Maximum number of iterations (accepted or not; default ``200 n``).
    disp : bool
        Print an iteration table and a summary.

    Notes
    -----
    Unlike scipy's trust-region methods:

    * the model is updated (and the Hessian evaluated) only at accepted
      points, never at a rejected trial point (scipy/scipy#12503);
    * a zero gradient at ``x0`` returns at once (scipy/scipy#8686);
    * every inner loop is capped (Steihaug-CG, the secular equation);
    * a trial point where ``fun`` is NaN or inf is a rejection;
    * when :math:`f(x) - f(x+s)` is below the rounding noise of :math:`f`
      (or the predicted decrease below :math:`1000 \epsilon |f|`), the actual
      decrease is estimated from the gradients,
      :math:`-\tfrac12 (g + \nabla f(x+s))^T s` (exact on quadratics), and a
      step that lowers the gradient norm is accepted, so tight tolerances
      remain reachable; after five rejected steps in a row in that regime
      the run stops with status 2;
    * the radius that rounding makes meaningless
      (:math:`\Delta < \epsilon \max(1, \|x\|)`) ends the run with status 2.

    References
    ----------
    .. [1] A. R. Conn, N. I. M. Gould and P. L. Toint, Trust-Region Methods,
       SIAM, 2000.
    .. [2] J. Nocedal and S. J. Wright, Numerical Optimization, 2nd ed.,
       Springer, 2006, Algorithm 4.1.
    """
    check_unknown_options(unknown_options)
    if model is None:
        raise ValueError(
            "method 'trust-region' needs curvature: pass `hess` or `hessp`, or "
            "options={'curvature': 'diag-fisher' | 'mfac' | <model>}."
        )
    radius = check_positive(initial_trust_radius, "initial_trust_radius")
    max_radius = check_positive(max_trust_radius, "max_trust_radius")
    if radius > max_radius:
        raise ValueError("`initial_trust_radius` must not exceed `max_trust_radius`.")
    eta = check_nonnegative(eta, "eta")
    if eta >= 0.25:
        raise ValueError(f"`eta` must be in [0, 0.25); got {eta!r}.")
    gtol, maxiter = resolve_common(x0, gtol, maxiter)
    xp = obj.xp
    resolution = Resolution(x0.dtype, xp)

    x = x0
    f, g, gnorm = start(obj, x)
    table = IterationTable(disp, ("iter", "f(x)", "||g||", "radius", "rho", "nfev"))
    table.row(0, f, gnorm, radius, 0.0, obj.nfev)

    nit = 0
    stalled = 0
    status = 1
    message = None
    fresh = True  # the model still has to see the current point
    while True:
        if gnorm <= gtol:
            status = 0
            break
        if nit >= maxiter:
            status = 1
            break
        if radius < resolution.eps * max(1.0, norm(xp, x)):
            status = 2
            message = (
                "Desired error not necessarily achieved due to precision loss: the trust radius "
                f"fell to {radius:.3g}, below what this dtype resolves."
            )
            break
        try:
            if fresh:
                model.update(x, g, gtol=gtol)
                fresh = False
            p, hits_boundary = _trust_step(model, g, radius)
            p = xp.asarray(p, dtype=x.dtype)
            Hp = model.matvec(p)
        except NonFiniteCurvatureError as exc:
            status = 3
            message = f"{exc} Check the curvature model at this point."
            break
        nit += 1
        pnorm = norm(xp, p)
        if hits_boundary is None:  # a model that returns the step alone
            hits_boundary = pnorm >= 0.99 * radius
        # 1. rho, the actual decrease over the model's
        predicted = -(float(g @ p) + 0.5 * float(p @ Hp))
        x_new = x + p
        f_new = obj.fun(x_new) if predicted > 0.0 else math.inf
        g_new = None
        if not math.isfinite(f_new) or predicted <= 0.0:
            rho = -math.inf
        elif not resolution.resolves(f, f_new, predicted):
            # f no longer resolves the decrease: estimate it from the gradients.
            g_new = obj.grad(x_new)
            if bool(xp.all(xp.isfinite(g_new))):
                rho = gradient_decrease(g, g_new, p) / predicted
                if rho <= eta and norm(xp, g_new) < gnorm:
                    rho = 0.5  # a smaller gradient is progress too; keep the radius
            else:
                rho = -math.inf
            stalled = 0 if rho > eta else stalled + 1
        else:
            rho = (f - f_new) / predicted
            stalled = 0
        # 2. the radius
        if rho < 0.25:
            radius *= 0.25
        elif rho > 0.75 and hits_boundary:
            radius = min(2.0 * radius, max_radius)
        # 3. the step, taken when rho > eta
        if rho > eta:
            if g_new is None:
                g_new = obj.grad(x_new)
            if not bool(xp.all(xp.isfinite(g_new))):
                radius = 0.25 * min(radius, pnorm)
            else:
                x, f, g = x_new, f_new, g_new
                gnorm = norm(xp, g)
                fresh = True
        elif stalled >= _MAX_STALLED:
            status = 2
            message = precision_loss(gnorm, gtol)
            break
        table.row(nit, f, gnorm, radius, rho if math.isfinite(rho) else -1.0, obj.nfev)
        if callback(x=copy(xp, x), fun=f, jac=copy(xp, g), nit=nit, trust_radius=radius):
            status = 99
            break

    res = make_result(obj, model, x, f, g, nit, status, message, trust_radius=radius)
    table.summary(res)
    return res

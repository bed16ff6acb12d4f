r"""Regularised Newton with gradient-normalised smoothness (``method="gns"``).

At an accepted point :math:`x` with gradient :math:`g` and curvature model
:math:`H` (exact Hessian or any approximation), a trial step is

.. math::

    s = -(H + \lambda I)^{-1} g, \qquad \lambda = \|g\| / \gamma,

and it is accepted when

.. math::

    f(x) - f(x + s) \ge \frac{\|\nabla f(x + s)\|^2}{8 \lambda}.

For :math:`H \succeq 0`, :math:`\|s\| \le \|g\|/\lambda = \gamma`: ``gamma``
is the radius of the ball the step stays in, and the adaptive search tracks
the largest radius on which the model predicts the gradient well (the
*gradient-normalised smoothness* of Semenov, Jaggi and Doikov).  In the
paper's method ``gamma`` doubles after an accepted step and halves after a
rejected one; the default variant takes the Newton step where it lies inside
that radius, and also accepts, and sizes ``gamma`` by, the ratio of actual
to predicted decrease, as trust-region methods do (see ``variant``).
"""

import math

from .._array_api import copy, norm
from .._validation import check_int, check_positive
from ..curvature._base import NonFiniteCurvatureError, NotPositiveDefiniteError
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

# A decrease this many times the test's bound lets gamma grow by 4, not 2.
_WIDE_MARGIN = 8.0
# Growth of gamma stops here so that lam = ||g|| / gamma never underflows to 0.
_GAMMA_MAX = 1e150
# Trials at one point whose value is within rounding noise of f(x) and whose
# gradient-based decrease fails the test: the iterate has reached what the
# dtype resolves.
_MAX_STALLED = 3
# Accepted steps in that regime that do not improve the best gradient norm.
_MAX_NOISE_STEPS = 20


def _iterative(model):
    """Whether ``model`` solves by an iterative method (each solve costs many
    products), looking through a wrapper's ``model``."""
    inner = getattr(model, "model", model)
    return bool(getattr(inner, "iterative", False) or getattr(model, "iterative", False))


def _passes(decrease, gn2, lam):
    r"""The GNS test :math:`\text{decrease} \ge \|g_+\|^2 / (8\lambda)`; with
    :math:`\lambda = 0` (a Newton step) its bound is infinite."""
    return lam > 0.0 and decrease >= gn2 / (8.0 * lam)


def _interior_newton(model, g, gamma, xp):
    """The Newton step ``-H^{-1} g`` where ``H`` is positive definite and the
    step lies inside the radius ``gamma``; None otherwise.  There the
    regularisation would only damp a step that the ball already admits, as
    a trust region whose constraint is inactive."""
    try:
        s = -model.solve(g, shift=0.0)
    except NotPositiveDefiniteError:
        return None
    length = norm(xp, s)
    return s if math.isfinite(length) and length <= gamma else None


# The starting gamma is this multiple of the Newton step's length at x0.
_FIRST_GAMMA_FACTOR = 16.0


def _first_gamma(model, g, gnorm, fallback, xp):
    """The starting radius from the Newton step at x0: a multiple of its
    length (gamma bounds the step length for H >= 0), so that the first
    trial is close to Newton's step; ``fallback`` where H is not positive
    definite there, or where a solve is iterative (a CG solve to full
    accuracy would cost more than the trials it saves)."""
    if _iterative(model):
        return fallback
    try:
        s = model.solve(g, shift=0.0)
    except NotPositiveDefiniteError:
        return fallback
    length = norm(xp, s)
    if not (math.isfinite(length) and length > 0.0):
        return fallback
    return _FIRST_GAMMA_FACTOR * length


# The adaptive variant's ratio test, as in trust-region methods: a trial
# whose decrease is at least this fraction of the model's is accepted.
_ETA = 0.1


def _model_ratio(f, f_new, predicted, lam, snorm):
    r"""Actual over predicted decrease.  With :math:`(H + \lambda I) s = -g`
    the model's decrease is :math:`-g^T s - \tfrac12 s^T H s = \tfrac12
    (-g^T s + \lambda \|s\|^2)`: no product with :math:`H` is needed."""
    model_decrease = 0.5 * (predicted + lam * snorm * snorm)
    return (f - f_new) / model_decrease if model_decrease > 0 else 1.0


def _shrink(variant, gamma, length):
    """``gamma`` after a rejected trial of step length ``length``: halved by
    the reference rule; the adaptive rule halves the smaller of ``gamma``
    and the length, as trust-region methods shrink their radius from the
    step taken, since a radius beyond the step constrains nothing."""
    if variant == "reference" or not length > 0.0:
        return 0.5 * gamma
    return 0.5 * min(gamma, length)


def _next_gamma(variant, gamma, margin, rho, boundary):
    """``gamma`` after an accepted step.  The reference rule doubles it.  The
    adaptive rule reads the ratio ``rho`` of actual to predicted decrease,
    as trust-region methods do: halved below 1/4 (the model misjudged the
    step); above 3/4, doubled when the regularisation bounded the step
    (``boundary``: its length at least 0.8 ``gamma``) or the step also
    passed the GNS test (``margin >= 1``), quadrupled when it beat that test
    eightfold at the boundary; kept otherwise.  Growing ``gamma`` after a
    step that neither bound nor passed saves nothing and invites a
    rejection at the next point."""
    if variant == "reference":
        return 2.0 * gamma
    if rho < 0.25:
        return 0.5 * gamma
    if rho > 0.75 and boundary:
        return (4.0 if margin >= _WIDE_MARGIN else 2.0) * gamma
    if rho > 0.75 and margin >= 1.0:
        # an interior step that passed the GNS test too: the model predicts
        # the gradient well on this ball, and a smaller lam brings the next
        # step closer to Newton's
        return 2.0 * gamma
    return gamma


def _minimize_gns(
    obj,
    x0,
    model,
    callback,
    *,
    gamma0=None,
    gamma_min=1e-12,
    max_trials=40,
    variant="adaptive",
    gtol=None,
    maxiter=None,
    disp=False,
    **unknown_options,
):
    r"""Minimise with regularised Newton steps and gradient-normalised smoothness.

    Options
    -------
    gamma0 : float, optional
        Initial radius :math:`\gamma_0`.  By default 16 times the length of
        the Newton step at ``x0`` (one solve with the model, reused by the
        first trial where the model factors its matrix), or 1 where that
        step does not exist (:math:`H` not positive definite) or needs an
        iterative solve, and with ``variant="reference"``.  Its scale
        matters mostly for the first iterations: the search adapts it.
    gamma_min : float
        Smallest radius tried at one point (default 1e-12); below it the
        search gives up with status 2.
    max_trials : int
        Trials (rejected steps) allowed at one point before status 2
        (default 40).
    variant : {"adaptive", "reference"}
        ``"reference"``: the paper's method, a step accepted by its test
        only and :math:`\gamma` doubled after every accepted step.
        ``"adaptive"`` (default) adds what trust-region methods do.  Where
        the model factors its matrix (not an iterative solve), :math:`H` is
        positive definite and the Newton step lies inside the radius
        (:math:`\|H^{-1} g\| \le \gamma`), the first trial at a point is
        that step, :math:`\lambda = 0`.  A rejected trial of length
        :math:`\|s\| < \gamma` sets :math:`\gamma = \|s\|/2`.  And it
        reads the ratio :math:`\rho` of actual to predicted decrease (the model's
        decrease :math:`\tfrac12(-g^T s + \lambda \|s\|^2)` costs no
        product with :math:`H`): a trial is also accepted when
        :math:`\rho \ge 0.1`, and after an accepted step :math:`\gamma` is
        halved when :math:`\rho < 1/4`; when :math:`\rho > 3/4` it is
        doubled if the step's length reached :math:`0.8\gamma` or the step
        also passed the GNS test (quadrupled when it reached that length
        and beat the test eightfold); it is kept otherwise.
        Growing :math:`\gamma` after every step, as the reference does,
        costs a rejected trial (an evaluation) at about every other point.
        Both halve :math:`\gamma` after a rejection; the GNS test's
        guarantees hold for the reference, and the adaptive variant keeps
        trust-region methods' global convergence.
    gtol : float
        Stop when :math:`\|g\|_2 \le` ``gtol`` (default 1e-5 in float64,
        1e-3 in float32).  ``minimize``'s ``tol`` sets it.
    maxiter : int
        Maximum number of accepted steps (default ``200 * n``, as scipy).
    disp : bool
        Print an iteration table and a summary.

    Notes
    -----
    Details that the reference algorithm leaves open, and how they are
    settled here:

    * The curvature model is updated once per accepted point, and the
      Hessian is evaluated lazily by the model, so a rejected trial point
      never costs a Hessian evaluation.
    * The model solves the shifted systems: a dense model reuses one
      factorisation across trials where that is cheaper than a Cholesky per
      trial; an operator model runs CG warm-started across trials.
    * An indefinite :math:`H` (non-convex problems, inexact models) can make
      :math:`H + \lambda I` indefinite; that trial is rejected without any
      function evaluation, and halving :math:`\gamma` doubles :math:`\lambda`
      until the shifted matrix is positive definite.
    * A trial point where ``fun`` or ``jac`` returns NaN or inf is rejected.
    * A trial that does not increase :math:`f` and whose gradient norm is
      at most ``gtol`` is accepted and ends the run: the decrease test
      guards the iterations that follow, and there are none.  This lets an
      iterative model stop its last solve near ``gtol`` (the driver passes
      ``gtol`` to ``model.update``) instead of far below it.
    * A trial whose value exceeds :math:`f(x)` is rejected before its
      gradient is computed (when ``fun`` and ``jac`` are separate).
    * When :math:`f(x) - f(x+s)` is below the rounding noise of :math:`f`
      (:math:`16 \epsilon |f|`), or the predicted decrease :math:`-g^T s` is
      below :math:`1000 \epsilon |f|` (when the terms of ``fun`` cancel, its
      rounding error exceeds a few ulps of its value), the difference of
      values cannot decide; the
      step is then accepted when it lowers the gradient norm, or when the
      decrease estimated from the gradients,
      :math:`-\tfrac12 (\nabla f(x) + \nabla f(x+s))^T s` (the trapezoidal
      rule, exact on quadratics), passes the test.  Both stay informative
      long after :math:`f` has stopped resolving, so tight gradient
      tolerances are reachable, in float32 too.  The method stops with
      status 2 when three trials at one point, or twenty accepted steps in a
      row, make no measurable progress.
    * When ``max_trials`` trials fail at one point the method stops with
      status 2 at the last accepted point (it never takes a rejected step).

    The result carries ``gamma`` (final radius) and ``nfact`` (number of
    matrix factorisations) besides scipy's fields.

    References
    ----------
    .. [1] A. Semenov, M. Jaggi and N. Doikov, "Gradient-Normalized
       Smoothness for Optimization with Approximate Hessians",
       arXiv:2506.13710, 2025.
    .. [2] N. Doikov, K. Mishchenko and Y. Nesterov, "Super-Universal
       Regularized Newton Method", SIAM J. Optim. 34(1), 2024.
    """
    check_unknown_options(unknown_options)
    if model is None:
        raise ValueError(
            "method 'gns' needs curvature: pass `hess` (a callable returning the Hessian "
            "or an approximation, or a curvature model) or `hessp`."
        )
    estimate_gamma = gamma0 is None and variant == "adaptive"
    gamma = 1.0 if gamma0 is None else check_positive(gamma0, "gamma0")
    gamma_min = check_positive(gamma_min, "gamma_min")
    if variant not in ("adaptive", "reference"):
        raise ValueError(f"`variant` must be 'adaptive' or 'reference'; got {variant!r}.")
    if gamma_min > gamma:
        raise ValueError(f"`gamma_min` ({gamma_min:g}) must not exceed `gamma0` ({gamma:g}): no trial could be made.")
    max_trials = check_int(max_trials, "max_trials", minimum=1)
    gtol, maxiter = resolve_common(x0, gtol, maxiter)
    xp = obj.xp
    resolution = Resolution(x0.dtype, xp)

    x = x0
    f, g, gnorm = start(obj, x)
    table = IterationTable(disp, ("iter", "f(x)", "||g||", "gamma", "trials", "nfev"))
    table.row(0, f, gnorm, gamma, 0, obj.nfev)

    nit = 0
    status = 1
    best_gnorm = gnorm
    noise_steps = 0  # accepted steps in the rounding-noise regime without a better gradient
    while True:
        if gnorm <= gtol:
            status = 0
            break
        if nit >= maxiter:
            status = 1
            break
        model.update(x, g, gtol=gtol)
        if estimate_gamma:
            gamma = _first_gamma(model, g, gnorm, gamma, xp)
            estimate_gamma = False
        accepted = False
        margin = 1.0
        rho = 1.0
        snorm = 0.0
        trials = 0
        stalled = 0
        try:
            newton = variant == "adaptive" and not _iterative(model)
            while trials < max_trials and gamma >= gamma_min:
                trials += 1
                s = _interior_newton(model, g, gamma, xp) if newton else None
                newton = False
                if s is not None:
                    lam = 0.0
                else:
                    lam = gnorm / gamma
                    try:
                        s = -model.solve(g, shift=lam)
                    except NotPositiveDefiniteError:
                        gamma *= 0.5
                        continue
                s = xp.asarray(s, dtype=x.dtype)
                length = norm(xp, s)
                x_new = x + s
                if not bool(xp.all(xp.isfinite(x_new))):
                    gamma = _shrink(variant, gamma, length)
                    continue
                if obj.cheap_value:
                    f_new = obj.fun(x_new)
                    g_new = None
                else:
                    f_new, g_new = obj.fun_and_grad(x_new)
                # 1. The value: an increase beyond rounding rejects the trial before its gradient is computed.
                predicted = -float(g @ s)
                if not math.isfinite(f_new) or (
                    f_new > f + resolution.noise(f, f_new) and not resolution.tiny(predicted, f)
                ):
                    gamma = _shrink(variant, gamma, length)
                    continue
                if g_new is None:
                    g_new = obj.grad(x_new)
                if not bool(xp.all(xp.isfinite(g_new))):
                    gamma = _shrink(variant, gamma, length)
                    continue
                gn2 = float(g_new @ g_new)
                in_noise = not resolution.resolves(f, f_new, predicted)
                # 2. A trial at the tolerance ends the run.
                if gn2 <= gtol * gtol:
                    # The trial ends the run: the decrease test only protects
                    # later iterations, and f passed the no-increase test above.
                    # An inexact solve (CG stopped near gtol) would fail it
                    # for small lam although the point is what was asked for.
                    accepted = True
                    break
                # 3. The acceptance test, f(x) - f(x + s) >= ||g(x + s)||^2 / (8 lam); the adaptive
                #    variant also accepts a step whose decrease is a fair share of the model's.
                if not in_noise:
                    snorm = length
                    rho = _model_ratio(f, f_new, predicted, lam, snorm)
                    if _passes(f - f_new, gn2, lam) or (variant == "adaptive" and rho >= _ETA):
                        accepted = True
                        margin = (f - f_new) * 8.0 * lam / gn2 if gn2 > 0 else math.inf
                        break
                elif gn2 < gnorm * gnorm or _passes(gradient_decrease(g, g_new, s), gn2, lam):
                    # f no longer resolves the decrease: accept on a smaller
                    # gradient or on the decrease estimated from the gradients
                    # (trapezoidal rule, exact on quadratics).
                    accepted = True
                    rho, snorm = 1.0, 0.0  # no ratio to read: gamma is kept
                    break
                else:
                    # Stop instead of spending max_trials on rounding noise.
                    stalled += 1
                    if stalled >= _MAX_STALLED:
                        break
                gamma = _shrink(variant, gamma, length)
        except NonFiniteCurvatureError as exc:
            status = 3
            message = f"{exc} Check `hess`/`hessp` at this point."
            break
        if not accepted:
            status = 2
            break
        x, f, g = x_new, f_new, g_new
        gnorm = math.sqrt(gn2)
        nit += 1
        if in_noise and gnorm >= best_gnorm:
            noise_steps += 1
            if noise_steps > _MAX_NOISE_STEPS:
                status = 2
                stalled = _MAX_STALLED
                break
        else:
            noise_steps = 0
        best_gnorm = min(best_gnorm, gnorm)
        gamma = min(_next_gamma(variant, gamma, margin, rho, snorm >= 0.8 * gamma), _GAMMA_MAX)
        table.row(nit, f, gnorm, gamma, trials, obj.nfev)
        if callback(x=copy(xp, x), fun=f, jac=copy(xp, g), nit=nit, gamma=gamma):
            status = 99
            break

    if status == 2 and stalled >= _MAX_STALLED:
        message = precision_loss(gnorm, gtol, " Loosen gtol or work in float64.")
    elif status == 2:
        message = (
            f"Desired error not necessarily achieved due to precision loss: {trials} trial steps "
            f"in a row were rejected (max_trials={max_trials}, gamma_min={gamma_min:g}). "
            "The gradient may be inaccurate, or gtol may be below what this dtype can reach."
        )
    elif status != 3:
        message = None
    res = make_result(obj, model, x, f, g, nit, status, message, gamma=gamma)
    table.summary(res)
    return res

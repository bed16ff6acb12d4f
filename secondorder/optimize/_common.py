"""Pieces every deterministic method shares: options, status, result, display."""

import math
import warnings

import numpy as np
from scipy.optimize import OptimizeResult, OptimizeWarning

from .._array_api import norm
from .._backend import get_namespace
from .._validation import check_int, check_positive

__all__ = [
    "STATUS",
    "check_unknown_options",
    "default_gtol",
    "resolve_common",
    "make_result",
    "IterationTable",
    "start",
    "Resolution",
    "gradient_decrease",
    "precision_loss",
]

STATUS = {
    0: "Optimization terminated successfully.",
    1: "Maximum number of iterations has been exceeded.",
    2: "Desired error not necessarily achieved due to precision loss.",
    3: "The curvature model returned NaN or inf at the current point.",
    99: "`callback` raised `StopIteration`.",
}


def check_unknown_options(unknown):
    if unknown:
        names = ", ".join(sorted(map(str, unknown)))
        # stacklevel 4: check -> _minimize_<method> -> minimize -> user code.
        warnings.warn(f"Unknown solver options: {names}", OptimizeWarning, stacklevel=4)


def default_gtol(dtype, xp=np):
    """Gradient-norm tolerance a dtype can reach on well-scaled problems."""
    return 1e-3 if dtype == xp.float32 else 1e-5


def resolve_common(x0, gtol, maxiter):
    gtol = default_gtol(x0.dtype, get_namespace(x0)) if gtol is None else check_positive(gtol, "gtol")
    maxiter = 200 * x0.shape[0] if maxiter is None else check_int(maxiter, "maxiter", minimum=0)
    return gtol, maxiter


def start(obj, x0):
    """``(f, g, ||g||)`` at ``x0``; an error naming the fix when either is
    not finite there (no method can take a step from such a point)."""
    f, g = obj.fun_and_grad(x0)
    if not math.isfinite(f):
        raise ValueError(f"`fun` returned {f} at x0; start from a point where the objective is finite.")
    xp = obj.xp
    if not bool(xp.all(xp.isfinite(g))):
        raise ValueError("`jac` returned NaN or inf at x0; start from a point where the gradient is finite.")
    return f, g, norm(xp, g)


class Resolution:
    r"""Whether the difference of two values of ``f`` can judge a step.

    Below :math:`16 \epsilon \max(|f|, |f_{new}|)` (:meth:`noise`) a
    difference of values is rounding; and a first-order predicted decrease
    below :math:`1000 \epsilon |f|` is below what evaluating ``f``
    resolves when its terms cancel (a few hundred ulps).  Such steps are
    judged by the gradients instead (:func:`gradient_decrease`)."""

    # A difference of values below this many ulps of the larger is rounding.
    NOISE = 16.0
    # A predicted decrease below this many ulps of |f| is judged by the gradient.
    TINY_DECREASE = 1000.0

    def __init__(self, dtype, xp):
        self.eps = float(xp.finfo(dtype).eps)

    def noise(self, f, f_new):
        return self.NOISE * self.eps * max(abs(f), abs(f_new) if math.isfinite(f_new) else 0.0)

    def tiny(self, predicted, f):
        """Whether a predicted decrease is below what ``f`` resolves."""
        return predicted <= self.TINY_DECREASE * self.eps * abs(f)

    def resolves(self, f, f_new, predicted):
        """Whether ``f - f_new`` can judge a step predicted to decrease ``f`` by ``predicted``."""
        return abs(f - f_new) > self.noise(f, f_new) and not self.tiny(predicted, f)


def gradient_decrease(g, g_new, s):
    r"""The decrease of ``f`` along ``s`` estimated from the gradients at its
    ends, :math:`-\tfrac12 (g + g_{new})^T s` (the trapezoidal rule, exact on
    quadratics): informative long after the values stop resolving it."""
    return -0.5 * float((g + g_new) @ s)


def precision_loss(gnorm, gtol, advice=""):
    """The message of a run stopped because no decrease can be measured."""
    return (
        "Desired error not necessarily achieved due to precision loss: no decrease can be "
        f"measured at this precision (||g|| = {gnorm:.3g} > gtol = {gtol:g}).{advice}"
    )


def make_result(obj, model, x, f, g, nit, status, message=None, **extra):
    """An OptimizeResult with scipy's fields plus method-specific ones."""
    res = OptimizeResult(
        x=x,
        fun=f,
        jac=g,
        nit=nit,
        nfev=obj.nfev,
        njev=obj.njev,
        nhev=int(getattr(model, "nhev", 0)),
        status=status,
        success=status == 0,
        message=message or STATUS[status],
        nfact=int(getattr(model, "nfact", 0)),
        ncg=int(getattr(model, "ncg", 0)),
    )
    res.update(extra)
    return res


class IterationTable:
    """The compact table printed with ``disp=True``."""

    def __init__(self, enabled, columns):
        self.enabled = bool(enabled)
        self.columns = columns
        if self.enabled:
            print("  ".join(f"{name:>12}" for name in columns))

    def row(self, *values):
        if self.enabled:
            cells = []
            for v in values:
                cells.append(f"{v:>12d}" if isinstance(v, (int, np.integer)) else f"{v:>12.5e}")
            print("  ".join(cells))

    def summary(self, res):
        if self.enabled:
            print(res.message)
            print(f"         Current function value: {res.fun:.6e}")
            print(f"         Iterations: {res.nit}")
            print(f"         Function evaluations: {res.nfev}")
            print(f"         Gradient evaluations: {res.njev}")
            print(f"         Hessian evaluations: {res.nhev}")

"""Pieces every deterministic method shares: options, status, result, display."""

import warnings

import numpy as np
from scipy.optimize import OptimizeResult, OptimizeWarning

from .._backend import get_namespace
from .._validation import check_int, check_positive

__all__ = [
    "STATUS",
    "check_unknown_options",
    "default_gtol",
    "resolve_common",
    "make_result",
    "IterationTable",
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

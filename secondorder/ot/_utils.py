"""Input checks and bookkeeping shared by the OT solvers (POT's conventions)."""

import math
import warnings

from .._backend import get_namespace, kernels
from .._validation import check_finite, check_int, check_positive

__all__ = ["OTProblem", "prepare", "warn_not_converged", "marginal_error", "Solution", "plan_result", "cost_result"]


class OTProblem:
    """Validated inputs: marginals without their zero-mass entries, the cost
    restricted to the support, and what is needed to restore full shapes."""

    def __init__(self, a, b, M, reg, rows, cols, shape, dtype, xp):
        self.a = a
        self.b = b
        self.M = M
        self.reg = reg
        self.rows = rows  # support of a in the full problem (None: all)
        self.cols = cols
        self.shape = shape
        self.dtype = dtype
        self.xp = xp
        self.log_a = xp.log(a)
        self.log_b = xp.log(b)

    def full_plan(self, P):
        """The plan on the full (n, m) grid, zero rows/columns restored."""
        if self.rows is None and self.cols is None:
            return P.astype(self.dtype, copy=False)
        out = self.xp.zeros(self.shape, dtype=self.dtype)
        rows = self.rows if self.rows is not None else self.xp.arange(self.shape[0])
        cols = self.cols if self.cols is not None else self.xp.arange(self.shape[1])
        out[self.xp.ix_(rows, cols)] = P
        return out

    def full_potentials(self, f, g):
        """``f, g`` on the full grid; zero-mass entries get ``-inf`` (a zero
        scaling: no mass leaves or arrives there)."""
        xp = self.xp

        def expand(v, idx, size):
            if idx is None:
                return v
            out = xp.full(size, -xp.inf)
            out[idx] = v
            return out

        return expand(f, self.rows, self.shape[0]), expand(g, self.cols, self.shape[1])


def _marginal(w, name, size, xp):
    if w is None or (hasattr(w, "__len__") and len(w) == 0):
        return xp.full(size, 1.0 / size)
    w = xp.asarray(w, dtype=xp.float64)
    if w.ndim != 1:
        raise ValueError(
            f"`{name}` must be a 1-D histogram; got shape {w.shape}. "
            "Several target histograms at once are not supported: call once per histogram."
        )
    if w.shape[0] != size:
        raise ValueError(
            f"Dimension mismatch: `{name}` has {w.shape[0]} entries but M has {size} "
            f"{'rows' if name == 'a' else 'columns'}; check the dimensions of M with a and b."
        )
    check_finite(w, name, xp=xp)
    if bool(xp.any(w < 0)):
        raise ValueError(f"`{name}` must be non-negative (a histogram); it has {int(xp.sum(w < 0))} negative entries.")
    if not float(w.sum()) > 0:
        raise ValueError(f"`{name}` has zero total mass; a histogram needs positive mass.")
    return w


def prepare(a, b, M, reg, numItermax, stopThr):
    """Check POT-style inputs and remove zero-mass entries.

    Empty ``a``/``b`` mean uniform; ``M`` may be rectangular.  The working
    precision is float64 throughout; the plan is returned in ``M``'s dtype
    (float32 stays float32).
    """
    xp = get_namespace(a if a is not None and len(a) else None, b if b is not None and len(b) else None, M)
    M = xp.asarray(M)
    if M.ndim != 2 or M.shape[0] == 0 or M.shape[1] == 0:
        raise ValueError(f"`M` must be a non-empty 2-D cost matrix (n, m); got shape {M.shape}.")
    if not xp.issubdtype(M.dtype, xp.floating):
        M = M.astype(xp.float64)
    check_finite(M, "M", xp=xp)
    dtype = M.dtype if M.dtype in (xp.float32, xp.float64) else xp.float64
    reg = check_positive(reg, "reg")
    check_int(numItermax, "numItermax", minimum=0)
    check_positive(stopThr, "stopThr")
    n, m = M.shape
    a = _marginal(a, "a", n, xp)
    b = _marginal(b, "b", m, xp)
    sa, sb = float(a.sum()), float(b.sum())
    if abs(sa - sb) > 1e-6 * max(sa, sb):
        raise ValueError(
            f"`a` and `b` must have the same total mass; got {sa:.10g} and {sb:.10g}. "
            "Normalise them (a / a.sum(), b / b.sum()) or use unbalanced OT."
        )
    rows = cols = None
    if bool(xp.any(a == 0)):
        rows = xp.nonzero(a > 0)[0]
        a = a[rows]
    if bool(xp.any(b == 0)):
        cols = xp.nonzero(b > 0)[0]
        b = b[cols]
    if rows is not None or cols is not None:
        M = M[xp.ix_(rows if rows is not None else xp.arange(n), cols if cols is not None else xp.arange(m))]
    M = xp.ascontiguousarray(M)
    return OTProblem(a, b, M, reg, rows, cols, (n, m), dtype, xp)


def warn_not_converged(name, err, stopThr, numItermax):
    warnings.warn(
        f"{name} did not converge: the marginal error is {err:.3g} > stopThr={stopThr:g} after "
        f"numItermax={numItermax} iterations. Increase `numItermax`, or the regularisation `reg`.",
        UserWarning,
        stacklevel=4,
    )


def marginal_error(problem, r, c):
    """L1 marginal error ``||P 1 - a||_1 + ||P^T 1 - b||_1``."""
    xp = problem.xp
    return float(xp.abs(r - problem.a).sum() + xp.abs(c - problem.b).sum())


class Solution:
    """What an OT solver returns to the front doors: potentials on the
    support, the error history, passes over n x n arrays and extra log keys."""

    def __init__(self, f, g, errs, passes, extra=None):
        self.f = f
        self.g = g
        self.errs = errs
        self.passes = passes
        self.extra = extra or {}

    @property
    def err(self):
        return self.errs[-1] if self.errs else math.inf


def _log_dict(problem, sol, passes):
    F, G = problem.full_potentials(sol.f, sol.g)
    out = {
        "niter": len(sol.errs),
        "err": list(sol.errs),
        "f": F,
        "g": G,
        "log_u": F / problem.reg,
        "log_v": G / problem.reg,
        "n_passes": passes,
    }
    out.update(sol.extra)
    return out


def _check(sol, numItermax, stopThr, warn, name):
    if warn and not sol.err < stopThr:
        warn_not_converged(name, sol.err, stopThr, numItermax)


def plan_result(problem, sol, numItermax, stopThr, log, warn, name):
    """The plan (one more pass, into a new array), or ``(plan, log)``."""
    xp = problem.xp
    _check(sol, numItermax, stopThr, warn, name)
    P = kernels(xp).scaled_kernel(problem.M, sol.f, sol.g, problem.reg, xp.empty(problem.M.shape))
    plan = problem.full_plan(P)
    return (plan, _log_dict(problem, sol, sol.passes + 1)) if log else plan


def cost_result(problem, sol, numItermax, stopThr, log, warn, name):
    """The linear cost <P, M>, accumulated in one pass without storing P."""
    _check(sol, numItermax, stopThr, warn, name)
    cost = kernels(problem.xp).transport_cost(problem.M, sol.f, sol.g, problem.reg)
    return (cost, _log_dict(problem, sol, sol.passes + 1)) if log else cost

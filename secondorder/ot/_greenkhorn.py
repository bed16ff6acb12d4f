r"""Greenkhorn: greedy coordinate Sinkhorn, in the log domain."""

import math

import numpy as np

from .._array_api import from_host, immutable_on_host, to_numpy
from ._sinkhorn_log import _no_options, initial_potentials
from ._utils import Solution, run_solver

__all__ = ["greenkhorn"]


def _lse(z):
    top = z.max()
    return top + math.log(np.exp(z - top).sum()) if np.isfinite(top) else top


def solve_greenkhorn(problem, numItermax, stopThr, verbose=False, warmstart=None, print_period=1000, **unknown):
    r"""Greenkhorn on a prepared problem: at each iteration the row or the
    column whose marginal is furthest from its target (largest absolute
    violation, as POT chooses) gets its exact potential,

    .. math::

        f_i = \varepsilon \log a_i - \varepsilon \operatorname{LSE}_j
        \frac{g_j - M_{ij}}{\varepsilon},

    and the plan's marginals are updated in O(n + m).  The plan is kept
    (one n x m array), its row changed in place; the L1 marginal error is
    tracked exactly.  NumPy on the host (a sequential method: one short
    vector operation per iteration)."""
    _no_options(unknown, "greenkhorn")
    xp = problem.xp
    M = to_numpy(problem.M).astype(np.float64, copy=False)
    a, b, reg = to_numpy(problem.a), to_numpy(problem.b), problem.reg
    f, g = (to_numpy(v).astype(np.float64, copy=True) for v in initial_potentials(problem, warmstart))
    P = np.exp(np.clip((f[:, None] + g[None, :] - M) / reg, -500.0, 700.0))
    r, c = P.sum(axis=1), P.sum(axis=0)
    log_a, log_b = np.log(a), np.log(b)
    errs = []
    for it in range(numItermax + 1):
        # the violations choose the next coordinate, and their sums are the error of the last update
        dr, dc = np.abs(r - a), np.abs(c - b)
        if it > 0:
            err = float(dr.sum() + dc.sum())
            if not math.isfinite(err):
                raise FloatingPointError("greenkhorn: non-finite marginal error; please report this input.")
            errs.append(err)
            if verbose and ((it - 1) % print_period == 0 or err < stopThr):
                print(f"{it:>5}|{err:>12.6e}")
            if err < stopThr or it == numItermax:
                break
        i, j = int(dr.argmax()), int(dc.argmax())
        if dr[i] >= dc[j]:
            f[i] = reg * (log_a[i] - _lse((g - M[i]) / reg))
            row = np.exp(np.clip((f[i] + g - M[i]) / reg, -500.0, 700.0))
            c += row - P[i]
            P[i] = row
            r[i] = row.sum()
        else:
            g[j] = reg * (log_b[j] - _lse((f - M[:, j]) / reg))
            col = np.exp(np.clip((f + g[j] - M[:, j]) / reg, -500.0, 700.0))
            r += col - P[:, j]
            P[:, j] = col
            c[j] = col.sum()
    if xp is not np:
        f, g = from_host(xp, f, problem.M), from_host(xp, g, problem.M)
    return Solution(f, g, errs, 1)  # one pass over M: the plan's construction


@immutable_on_host
def greenkhorn(a, b, M, reg, numItermax=10000, stopThr=1e-9, verbose=False, log=False, warn=True, warmstart=None,
               print_period=1000, **kwargs):
    r"""Entropic OT by Greenkhorn (Altschuler, Weed and Rigollet, 2017).

    POT's ``greenkhorn`` (``ot.bregman.greenkhorn``), with its arguments:
    greedy coordinate ascent on the dual, one row or column potential per
    iteration (the one whose marginal is furthest from its target), exact in
    the log domain, so it is stable at any ``reg``.  An iteration costs
    O(n + m); it needs about n + m iterations for what one Sinkhorn
    iteration does, so it is the method of interest only where single
    marginals are far off (a warm start after a small change of ``a`` or
    ``b``).  Returns what :func:`~secondorder.ot.sinkhorn_log` returns.

    References
    ----------
    .. [1] J. Altschuler, J. Weed and P. Rigollet, "Near-linear time
       approximation algorithms for optimal transport via Sinkhorn
       iteration", NeurIPS 2017.
    """
    options = dict(kwargs, print_period=print_period)
    return run_solver(solve_greenkhorn, "greenkhorn", a, b, M, reg, numItermax, stopThr, verbose, log, warn, warmstart,
                      **options)

r"""Log-domain Sinkhorn."""

import math

from .._array_api import immutable_on_host
from .._validation import check_int
from ._utils import Solution, run_solver

__all__ = ["sinkhorn_log"]


@immutable_on_host
def sinkhorn_log(a, b, M, reg, numItermax=1000, stopThr=1e-9, verbose=False, log=False, warn=True, warmstart=None, **kwargs):
    r"""Entropic OT by Sinkhorn iterations on the dual potentials, in the log domain.

    Solves :math:`\min_{P \ge 0,\, P 1 = a,\, P^T 1 = b} \langle P, M\rangle +
    \varepsilon \sum_{ij} P_{ij} \log P_{ij}` with :math:`\varepsilon` = ``reg``
    by alternating exact maximisation of the dual in the potentials
    :math:`f` (rows) and :math:`g` (columns):

    .. math::

        f_i = \varepsilon \log a_i - \varepsilon \operatorname{LSE}_j
        \frac{g_j - M_{ij}}{\varepsilon}, \qquad
        g_j = \varepsilon \log b_j - \varepsilon \operatorname{LSE}_i
        \frac{f_i - M_{ij}}{\varepsilon},

    with :math:`P_{ij} = \exp((f_i + g_j - M_{ij})/\varepsilon)`.  Each
    half-step is one fused pass over ``M`` (a max, then a sum of exps in a
    vectorised exp, parallel over rows; the column pass keeps one accumulator
    per block of rows, so ``M`` is never transposed).  Stable for any
    ``reg``: nothing underflows to zero, and exponents are clamped away from
    the denormal range.

    The row-marginal error of iteration k is read off the log-sum-exps of
    iteration k+1, so checking convergence every iteration costs nothing.

    Parameters
    ----------
    a, b : array_like, shape (n,), (m,)
        Source and target histograms (empty: uniform).  Zero-mass entries are
        removed for the solve and restored as zero rows/columns of the plan.
    M : array_like, shape (n, m)
        Cost matrix (float64 or float32; the plan has its dtype).
    reg : float
        Entropic regularisation :math:`\varepsilon > 0` (POT's ``reg``).
    numItermax : int
        Maximum number of iterations.
    stopThr : float
        Stop when the L1 marginal error falls below it.
    verbose : bool
        Print the error every 10 iterations.
    log : bool
        Also return a dict: ``niter``, ``err`` (L1 marginal error after each
        iteration), ``f``, ``g`` (potentials, cost units), ``log_u``,
        ``log_v`` (POT's ``f/reg``, ``g/reg``), ``n_passes`` (passes over the
        n x n cost matrix).
    warn : bool
        Warn when ``stopThr`` is not reached.
    warmstart : tuple of arrays, optional
        ``(log_u, log_v)`` to start from, as POT takes it.

    Returns
    -------
    P : ndarray, shape (n, m)
    log : dict, only with ``log=True``

    References
    ----------
    .. [1] M. Cuturi, "Sinkhorn distances: lightspeed computation of optimal
       transport", NeurIPS 2013.
    .. [2] B. Schmitzer, "Stabilized sparse scaling algorithms for entropy
       regularized transport problems", SIAM J. Sci. Comput. 41(3), 2019.
    """
    return run_solver(solve_log, "sinkhorn_log", a, b, M, reg, numItermax, stopThr, verbose, log, warn, warmstart, **kwargs)


def initial_potentials(problem, warmstart):
    xp = problem.xp
    n, m = problem.dims
    if warmstart is None:
        return xp.zeros(n, dtype=xp.float64), xp.zeros(m, dtype=xp.float64)
    log_u, log_v = (xp.asarray(w, dtype=xp.float64) for w in warmstart)
    if problem.rows is not None:
        log_u = xp.take(log_u, problem.rows)
    if problem.cols is not None:
        log_v = xp.take(log_v, problem.cols)
    if log_u.shape != (n,) or log_v.shape != (m,):
        raise ValueError("`warmstart` must be (log_u, log_v) with the lengths of a and b.")
    if not (bool(xp.all(xp.isfinite(log_u))) and bool(xp.all(xp.isfinite(log_v)))):
        raise ValueError("`warmstart` holds NaN or inf on the support of a and b.")
    return problem.reg * log_u, problem.reg * log_v


def sweeps(problem, f, g, count):
    """``count`` log-domain Sinkhorn sweeps from ``(f, g)`` (used by SNS when
    a Newton step fails).  Returns the new potentials."""
    xp = problem.xp
    reg = problem.reg
    n, m = problem.dims
    lse_r = xp.empty(n, dtype=xp.float64)
    lse_c = xp.empty(m, dtype=xp.float64)
    for _ in range(count):
        f = reg * (problem.log_a - problem.lse_rows(g, lse_r))
        g = reg * (problem.log_b - problem.lse_cols(f, lse_c))
    return f, g


def solve_log(problem, numItermax, stopThr, verbose=False, warmstart=None, print_period=10, potentials=None, stop=None,
              omega=1.0, **unknown):
    r"""Log-domain Sinkhorn on a prepared problem; returns a Solution.
    ``stop(errs)``, when given, ends the iterations when it returns True.
    ``omega`` over-relaxes the updates, :math:`f \leftarrow (1 - \omega) f
    + \omega f^{\mathrm{Sinkhorn}}`, as
    :func:`~secondorder.ot._scaling.scaling_iterations` does."""
    _no_options(unknown, "sinkhorn_log")
    print_period = check_int(print_period, "print_period", minimum=1)
    xp = problem.xp
    reg = problem.reg
    # ``potentials``: (f, g) on the support, from a previous solve (epsilon scaling's stages)
    f, g = initial_potentials(problem, warmstart) if potentials is None else potentials
    n, m = problem.dims
    lse_r = xp.empty(n, dtype=xp.float64)
    lse_c = xp.empty(m, dtype=xp.float64)
    errs = []
    passes = 0
    relaxed = omega != 1.0
    col_err = 0.0
    if verbose:
        print(f"{'It.':>5}|{'Err':>12}\n" + "-" * 19)
    for it in range(numItermax + 1):
        lse_r = problem.lse_rows(g, lse_r)
        passes += 1
        if it > 0:
            # Columns are exact after a plain g-update (else off by col_err); the rows' marginals at
            # (f, g) follow from this pass: P 1 = exp(f/reg + LSE).
            err = float(xp.sum(xp.abs(xp.exp(f / reg + lse_r) - problem.a))) + col_err
            errs.append(err)
            if verbose and ((it - 1) % print_period == 0 or err < stopThr):
                print(f"{it:>5}|{err:>12.6e}")
            if not math.isfinite(err):
                raise FloatingPointError("sinkhorn_log: non-finite marginal error; please report this input.")
            if err < stopThr or it == numItermax or (stop is not None and stop(errs)):
                break
            if relaxed and len(errs) > STALL and not errs[-1] < errs[-1 - STALL]:
                relaxed = False  # over-relaxation does not pay here: plain Sinkhorn, which always converges
                col_err = 0.0
        f_new = reg * (problem.log_a - lse_r)
        f = (1.0 - omega) * f + omega * f_new if relaxed else f_new
        lse_c = problem.lse_cols(f, lse_c)
        passes += 1
        g_new = reg * (problem.log_b - lse_c)
        if relaxed:
            g = (1.0 - omega) * g + omega * g_new
            col_err = float(xp.sum(xp.abs(xp.exp(g / reg + lse_c) - problem.b)))
        else:
            g = g_new
    return Solution(f, g, errs, passes)


# Over-relaxed iterations whose error has not decreased over this many go on plain.
STALL = 20


solve_log.takes_grid = True


def _no_options(unknown, name):
    if unknown:
        raise TypeError(f"{name} got unexpected keyword arguments: {', '.join(sorted(unknown))}.")

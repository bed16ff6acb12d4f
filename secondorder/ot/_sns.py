r"""Sinkhorn-Newton-Sparse (SNS)."""

import math

from .._array_api import SparseRows, copy, immutable_on_host, norm
from .._backend import kernels
from .._validation import check_int, check_positive
from ._scaling import scaling_iterations
from ._sinkhorn_log import initial_potentials, sweeps
from ._utils import Solution, marginal_error, run_solver

__all__ = ["sinkhorn_newton_sparse"]

# Cap on the candidates per row kept by the pass over M (a heap of this size).
_MAX_CANDIDATES = 256
# Sinkhorn goes on past the warm-up while its observed linear rate predicts
# that it reaches stopThr within this many iterations in all: a scaling
# iteration costs a few hundredths of a Newton step (a pass with exps, tens
# of CG products), so Newton only pays off beyond that.  Where Newton pays
# (small reg, concentrated plans) Sinkhorn slows down as it goes: a rate
# above _SLOW_RATE (over a thousand iterations a decade), or one that grew by
# more than _SLOWING over the last window, hands over at once.  Where the
# plan is spread (clouds far apart) Sinkhorn keeps a steady fast rate and
# finishes on its own, faster than any Newton step could.
_SINKHORN_BUDGET = 1000
_SLOW_RATE = 0.98
_SLOWING = 0.01
_RATE_WINDOW = 10


@immutable_on_host
def sinkhorn_newton_sparse(
    a,
    b,
    M,
    reg,
    numItermax=1000,
    stopThr=1e-9,
    verbose=False,
    log=False,
    warn=True,
    warmstart=None,
    n_sinkhorn=20,
    sparsity=None,
    cg_maxiter=1000,
    max_linesearch=8,
    fallback_sweeps=10,
    adaptive=True,
    print_period=10,
):
    r"""Entropic OT by Sinkhorn-Newton-Sparse (Tang et al., ICLR 2024).

    The dual of entropic OT, in potentials :math:`z = (f, g)`,

    .. math::

        D(f, g) = a^T f + b^T g - \varepsilon \sum_{ij} P_{ij}, \qquad
        P_{ij} = \exp((f_i + g_j - M_{ij})/\varepsilon),

    is concave with gradient :math:`(a - P1, b - P^T1)` (the marginal
    errors) and Hessian :math:`-\frac1\varepsilon A`,
    :math:`A = \begin{pmatrix} \operatorname{diag}(P1) & P \\ P^T &
    \operatorname{diag}(P^T 1) \end{pmatrix}`.  Sinkhorn is block-coordinate
    ascent on :math:`D`; SNS warms up with Sinkhorn and then takes Newton
    steps :math:`\Delta = \varepsilon A_s^{-1} \nabla D` with a sparsified
    :math:`A_s`: its diagonal blocks exact, ``P`` replaced by its largest
    entries.  At least ``sparsity * n * m`` entries are kept (every row's and
    every column's largest among them), and more while the mass left out
    exceeds ``0.01 * err`` (the L1 marginal error): the Hessian error then
    shrinks with the gradient, and Newton keeps its fast local rate.  Near
    the solution ``P`` concentrates on a sparse optimal face, so O(n)
    entries suffice.

    Details:

    * the warm-up runs the scaling iterations with absorption (two BLAS
      matrix-vector products an iteration, no exp); with ``adaptive=True``
      they go on while their observed linear rate predicts that Sinkhorn
      reaches ``stopThr`` within 250 iterations in all (large ``reg``), and
      Newton takes over as soon as the prediction exceeds that;
    * one fused pass over ``M`` per Newton trial computes ``P``'s row and
      column sums, the dual value and the sparsity pattern for the next
      step, so an accepted full step costs one pass over the n x n data;
    * the gauge (``D`` is invariant under :math:`f + t, g - t`) is fixed by
      holding the last column potential: the reduced system is positive
      definite and is solved by conjugate gradients with the Jacobi
      preconditioner :math:`(P1, P^T1)`, to a relative residual
      :math:`\min(0.1, \mathrm{err})` (inexact Newton);
    * the line search halves the step until the L1 marginal error decreases
      or the dual satisfies the Armijo condition.  Accepting on the marginal
      error keeps Newton making progress when changes of :math:`D` fall
      below its float64 resolution (near an error of 1e-10);
    * when no step is accepted, ``fallback_sweeps`` log-domain Sinkhorn
      sweeps are taken and Newton resumes;
    * when the plan is too spread for the sparsity pattern (the mass
      outside each row's 256 largest entries exceeds the tolerance, as
      where point clouds lie apart and costs vary little relative to
      ``reg``) and two steps in a row have not halved the error, the step
      uses the exact Hessian, ``P`` itself in one n x m buffer: the sparse
      one would leave Newton at a linear rate.

    Parameters
    ----------
    a, b, M, reg, numItermax, stopThr, verbose, log, warn, warmstart
        As in :func:`~secondorder.ot.sinkhorn`; ``numItermax`` counts
        Sinkhorn and Newton iterations together.
    n_sinkhorn : int
        Sinkhorn warm-up iterations (default 20, as in the paper).
    sparsity : float, optional
        Budget of the sparsified ``P`` as a fraction of its entries
        (default ``4 / m``: four entries per row).
    cg_maxiter : int
        Cap on conjugate-gradient iterations per Newton step.
    max_linesearch : int
        Step halvings tried before falling back to Sinkhorn sweeps.
    fallback_sweeps : int
        Sinkhorn sweeps taken when a Newton step fails.
    adaptive : bool
        Let Sinkhorn finish the solve when it is predicted to be cheaper.
    print_period : int
        With ``verbose``, the period of the Sinkhorn warm-up's lines (every
        Newton step is printed).

    Returns
    -------
    P : ndarray, shape (n, m)
    log : dict, with ``log=True``: the keys of
        :func:`~secondorder.ot.sinkhorn` plus ``n_sinkhorn`` and ``n_newton``
        (iterations of each kind), ``cg_iters`` (total inner CG iterations),
        ``nnz`` (entries kept in the last sparsified ``P``),
        ``n_dense`` (Newton steps with the exact Hessian) and
        ``n_passes_newton`` (passes over ``M`` in the Newton stage).

    References
    ----------
    .. [1] X. Tang, M. Shavlovsky, H. Rahmanian, E. Tardini, K. K.
       Thekumparampil, T. Xiao and L. Ying, "Accelerating Sinkhorn algorithm
       with sparse Newton iterations", ICLR 2024.
    .. [2] C. Brauer, C. Clason, D. Lorenz and B. Wirth, "A Sinkhorn-Newton
       method for entropic optimal transport", arXiv:1710.06635, 2017.
    """
    options = dict(n_sinkhorn=n_sinkhorn, sparsity=sparsity, cg_maxiter=cg_maxiter, max_linesearch=max_linesearch,
                   fallback_sweeps=fallback_sweeps, adaptive=adaptive, print_period=print_period)
    return run_solver(solve_sns, "sinkhorn_newton_sparse", a, b, M, reg, numItermax, stopThr, verbose, log, warn,
                      warmstart, **options)


class _DenseRows:
    """The whole of ``P`` as the Hessian's off-diagonal block (the products
    of :class:`SparseRows`, by BLAS)."""

    def __init__(self, P):
        self.P = P
        self.nnz = P.shape[0] * P.shape[1]

    def matvec(self, x):
        return self.P @ x

    def rmatvec(self, x):
        return self.P.T @ x


class _Point:
    """The dual at one point: P's marginals, error, value and sparse pattern."""

    def __init__(self, problem, f, g, k):
        xp = problem.xp
        r, c, topv, topi, colv, coli = kernels(xp).sns_eval(problem.M, f, g, problem.reg, k)
        self.f, self.g = f, g
        self.r, self.c = r, c
        self.pattern = (topv, topi, colv, coli)
        self.err = marginal_error(problem, r, c)
        total = float(xp.sum(r))
        self.value = float(problem.a @ f + problem.b @ g) - problem.reg * total
        self.finite = math.isfinite(self.err) and math.isfinite(self.value)


def _sparse_P(xp, n, m, point, min_keep, tol):
    """The kept entries of ``P`` (a :class:`SparseRows`), and the mass dropped.

    Entries are kept from the largest down (a global threshold, so rows that
    spread their mass keep more entries) until the mass left out is at most
    ``tol``, and never fewer than ``min_keep``; every row's and every
    column's largest entry is kept too.  Only each row's candidates (its
    largest entries, found in the pass over ``M``) can be kept; the mass
    outside them is reported so the caller can widen the candidates.
    """
    topv, topi, colv, coli = point.pattern
    total = float(xp.sum(point.r))
    outside = max(total - float(xp.sum(topv)), 0.0)
    cand = xp.flip(xp.sort(xp.reshape(topv, (-1,))))
    # mass dropped when keeping the first j candidates: total - cumsum[j-1]
    kept_mass = xp.cumulative_sum(cand)
    need = int(xp.searchsorted(-(total - kept_mass), xp.asarray(-tol, dtype=kept_mass.dtype)))  # first j: total - kept <= tol
    count = min(cand.shape[0], max(min_keep, need + 1))
    threshold = float(cand[count - 1])
    keep = topv >= threshold
    keep[:, 0] = True
    rows = xp.nonzero(keep)[0]
    cols = topi[keep]
    vals = topv[keep]
    # the columns whose largest entry is not among the kept ones get it added
    columns = xp.arange(m, dtype=topi.dtype)
    already = xp.any((xp.take(topi, coli, axis=0) == columns[:, None]) & xp.take(keep, coli, axis=0), axis=1)
    extra = xp.nonzero(xp.logical_not(already))[0]
    rows = xp.concat([rows, xp.astype(xp.take(coli, extra), rows.dtype)])
    cols = xp.concat([cols, xp.astype(extra, cols.dtype)])
    vals = xp.concat([vals, xp.take(colv, extra)])
    dropped = total - float(xp.sum(vals))
    return SparseRows(xp, vals, rows, cols, (n, m)), dropped, outside


def _rate(errs, window, end):
    """The linear rate per iteration over ``errs[end - window : end]``."""
    if end - 1 - window < 0 or not errs[end - 1] > 0.0 or not errs[end - 1 - window] > 0.0:
        return None
    return (errs[end - 1] / errs[end - 1 - window]) ** (1.0 / window)


def _sinkhorn_iterations_left(errs, stopThr, window=10):
    """Sinkhorn iterations still needed to reach ``stopThr`` at the linear
    rate seen over the last ``window`` iterations; None when unknown."""
    rate = _rate(errs, window, len(errs))
    if rate is None or not stopThr > 0.0:
        return None
    if errs[-1] < stopThr:
        return 0
    if not rate < _SLOW_RATE:
        return None
    return math.log(stopThr / errs[-1]) / math.log(rate)


def _newton_direction(point, Ps, rhs, rtol, maxiter, xp):
    """Solve A_s x = rhs by Jacobi-preconditioned CG with the last column
    potential held fixed (gauge).  Returns (x, iterations)."""
    n = point.r.shape[0]
    diag = xp.concat([point.r, point.c])
    inv_diag = 1.0 / diag
    inv_diag[-1] = 0.0

    def matvec(x):
        xf, xg = x[:n], x[n:]
        y = xp.concat([point.r * xf + Ps.matvec(xg), Ps.rmatvec(xf) + point.c * xg])
        y[-1] = 0.0
        return y

    b = copy(xp, rhs)
    b[-1] = 0.0
    x = xp.zeros_like(b)
    r = copy(xp, b)
    z = inv_diag * r
    p = copy(xp, z)
    rz = float(r @ z)
    tol = rtol * norm(xp, b)
    it = 0
    for it in range(1, maxiter + 1):
        Ap = matvec(p)
        pAp = float(p @ Ap)
        if not pAp > 0.0:
            break
        alpha = rz / pAp
        x += alpha * p
        r -= alpha * Ap
        if norm(xp, r) <= tol:
            break
        z = inv_diag * r
        rz_new = float(r @ z)
        p = z + (rz_new / rz) * p
        rz = rz_new
    return x, it


def solve_sns(
    problem,
    numItermax,
    stopThr,
    verbose=False,
    warmstart=None,
    n_sinkhorn=20,
    sparsity=None,
    cg_maxiter=1000,
    max_linesearch=8,
    fallback_sweeps=10,
    drop_ratio=0.01,
    adaptive=True,
    print_period=10,
    **unknown,
):
    if unknown:
        raise TypeError(f"sinkhorn_newton_sparse got unexpected keyword arguments: {', '.join(sorted(unknown))}.")
    xp = problem.xp
    n, m = problem.M.shape
    n_sinkhorn = check_int(n_sinkhorn, "n_sinkhorn", minimum=0)
    cg_maxiter = check_int(cg_maxiter, "cg_maxiter", minimum=1)
    max_linesearch = check_int(max_linesearch, "max_linesearch", minimum=0)
    fallback_sweeps = check_int(fallback_sweeps, "fallback_sweeps", minimum=1)
    sparsity = 4.0 / m if sparsity is None else check_positive(sparsity, "sparsity")
    min_keep = int(max(n, math.ceil(sparsity * n * m)))
    # Candidates per row for the global selection: four times the average
    # share to start with, doubled while the mass outside them is too large.
    k = int(min(m, max(2, 4 * math.ceil(min_keep / n))))
    reg = problem.reg

    f, g = initial_potentials(problem, warmstart)

    def hand_over(errs):
        t = len(errs)
        if t < n_sinkhorn:
            return False
        if not adaptive:
            return True
        if (t - n_sinkhorn) % _RATE_WINDOW:
            return False
        more = _sinkhorn_iterations_left(errs, stopThr, _RATE_WINDOW)
        now, before = _rate(errs, _RATE_WINDOW, t), _rate(errs, _RATE_WINDOW, t - _RATE_WINDOW)
        slowing = now is not None and before is not None and now > before + _SLOWING
        return more is None or slowing or t + more > _SINKHORN_BUDGET

    limit = min(max(n_sinkhorn, _SINKHORN_BUDGET if adaptive else 0), numItermax)
    warm = scaling_iterations(problem, f, g, limit, stopThr, verbose, stop=hand_over, print_period=print_period)
    errs = list(warm.errs)
    passes = warm.passes
    if verbose:
        print(f"{'It.':>5}|{'Err':>12}|{'step':>8}|{'CG':>6}   (Newton)")
    point = _Point(problem, warm.f, warm.g, k)
    passes_newton = 1
    n_newton = cg_total = n_dense = slow = 0
    dense = None
    n_sweeps = len(errs)
    nnz = 0
    while point.err >= stopThr and n_sweeps + n_newton < numItermax:
        # Safe sparsification: the dropped mass is tied to the gradient, so
        # the Hessian error vanishes as Newton converges.
        tol = drop_ratio * point.err
        Ps, dropped, outside = _sparse_P(xp, n, m, point, min_keep, tol)
        if outside > tol and k >= min(m, _MAX_CANDIDATES) and slow >= 2:
            # The plan is too spread for the candidates to hold all but tol of its mass, and the sparse
            # Hessian has left Newton at a linear rate (it would take hundreds of steps where clouds lie
            # apart).  The exact Hessian then, from P itself: one more pass and one n x n buffer, kept for
            # the next steps.
            if dense is None:
                dense = xp.empty((n, m), dtype=xp.float64)
            dense = kernels(xp).scaled_kernel(problem.M, point.f, point.g, reg, dense)
            Ps = _DenseRows(dense)
            passes_newton += 1
            n_dense += 1
        nnz = Ps.nnz
        if outside > tol and k < m:
            k = min(m, 2 * k, _MAX_CANDIDATES)
        grad = xp.concat([problem.a - point.r, problem.b - point.c])
        delta, cg_it = _newton_direction(point, Ps, reg * grad, max(1e-12, min(0.1, point.err)), cg_maxiter, xp)
        cg_total += cg_it
        slope = float(grad @ delta)
        step = 1.0
        accepted = None
        for _ in range(max_linesearch + 1):
            trial = _Point(problem, point.f + step * delta[:n], point.g + step * delta[n:], k)
            passes_newton += 1
            if trial.finite and (trial.err < point.err or trial.value >= point.value + 1e-4 * step * slope):
                accepted = trial
                break
            step *= 0.5
        if accepted is not None:
            # steps that do not halve the error, in a row
            slow = slow + 1 if accepted.err > 0.5 * point.err else 0
            point = accepted
            n_newton += 1
            errs.append(point.err)
            if verbose:
                print(f"{len(errs):>5}|{point.err:>12.6e}|{step:>8.3g}|{cg_it:>6}")
            continue
        # Newton made no progress here: a few Sinkhorn sweeps, then resume.
        f, g = sweeps(problem, point.f, point.g, fallback_sweeps)
        passes += 2 * fallback_sweeps
        point = _Point(problem, f, g, k)
        passes_newton += 1
        n_sweeps += fallback_sweeps
        errs.append(point.err)
        if verbose:
            print(f"{len(errs):>5}|{point.err:>12.6e}|{'sinkhorn':>8}|{'':>6}")
    extra = {
        "niter": n_sweeps + n_newton,
        "n_sinkhorn": n_sweeps,
        "n_newton": n_newton,
        "cg_iters": cg_total,
        "nnz": int(nnz),
        "n_dense": n_dense,
        "n_passes_newton": passes_newton,
    }
    return Solution(point.f, point.g, errs, passes + passes_newton, extra)


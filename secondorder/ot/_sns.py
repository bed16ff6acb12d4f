r"""Sinkhorn-Newton-Sparse (SNS)."""

import contextlib
import math

import numpy as np

from .._array_api import SparseRows, astype, cho_solve, cholesky, copy, from_host, immutable_on_host, norm
from .._backend import kernels, one_blas_thread
from .._validation import check_int, check_positive
from ._scaling import scaling_iterations
from ._sinkhorn_log import initial_potentials, solve_log, sweeps
from ._utils import Solution, marginal_error, run_solver

__all__ = ["sinkhorn_newton_sparse"]

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
_RATE_WINDOW = 5
# Before n_sinkhorn, at _EARLY iterations: where the rate of the last iteration is above the one before by more
# than _EARLY_RISE and predicts more than _EARLY_LEFT iterations still, Sinkhorn is still slowing down (the plan is
# concentrated: its rate goes on up towards 1) and Newton takes over at once.  Uniform clouds at reg = 1e-3,
# n = 10,000: rates 0.75, 0.83, 0.87, 0.89 (rising 0.023), and the 10 iterations to n_sinkhorn lowered the
# error from 4e-2 to 2.2e-2 only, for the same 4 Newton steps after.  Where the rate levels off (0.90, 0.90:
# clouds at reg = 1e-2, n = 1000, and 0.950, 0.956 at reg = 3e-3, n = 500; rising 0.004-0.006) Sinkhorn finishes
# over-relaxed in 57-117 iterations, faster than Newton; where it falls (clouds far apart: 0.99, 0.98, 0.97) or
# predicts few iterations left (large reg) it goes on as before too (uniform clouds at reg = 1e-2, n = 5000,
# rise 0.012 and level off at 0.89: Sinkhorn finishes in 53 iterations, where Newton took 18 steps, twice as
# long; at reg = 1e-3 they rise 0.023).  Only on a cost of _EARLY_ENTRIES or more:
# on a smaller one, where the kernel stays in the caches, ten Sinkhorn iterations cost less than a Newton step,
# and the early hand-over took one more of those (clouds, n = 1000-2000: 5 + 7 steps against 15 + 6, 5-10%
# slower; n = 3000: 0.15 s against 0.18 s).
_EARLY = 5
_EARLY_RISE = 0.015
_EARLY_LEFT = 100
_EARLY_ENTRIES = 8_000_000
# Largest over-relaxation of the Sinkhorn iterations that finish a solve (2 is the limit of convergence).
_MAX_OMEGA = 1.9
# Where _POOR_STEPS Newton steps in a row each leave more than _POOR_CONTRACTION of the error, Sinkhorn finishes
# over-relaxed instead (once a solve; Newton again after it if the relaxed rate disappoints).  Gaussian clouds at
# reg = 1e-2, n = 5000: Newton took 41 steps at about 0.7 each (2.2 s), where plain Sinkhorn's rate was 0.73.
_POOR_CONTRACTION = 0.5
_POOR_STEPS = 3
# Where those iterations converge, over two windows or more from their largest error, at a rate that
# predicts more than _RELAXED_LEFT iterations still, Newton takes over (uniform clouds, n = 1000, one draw of
# four: omega = 1.69, for which over-relaxation aims at a rate of 0.69, and the relaxed rate 0.88 then 0.9,
# 328 iterations; clouds far apart take 40-50 at 0.53-0.62, and clouds at reg = 1e-2 about 40 at 0.62-0.66).
_RELAXED_LEFT = 100
# Size of M (entries) from which the warm-up runs BLAS on its threads: below
# it one thread is as fast (n = 3000 the same; n = 1000 1.8x faster overall,
# the Newton stage no longer competing with spinning BLAS threads), above it
# the threads pay (n = 10,000: 1.5x faster warm-up).
_THREADED_WARMUP = 16_000_000
# The same for the iterations with which Sinkhorn finishes a solve (in M's dtype: twice the bytes per entry of
# the warm-up's float32 kernel): clouds far apart, five solves each, median on one BLAS thread against two:
# n = 1000 0.028-0.035 s against 0.074-0.085 s, n = 2000 0.163-0.167 against 0.186-0.191, n = 3000 0.48-0.53
# against 0.43-0.45.
_THREADED_FINISH = 6_000_000
# Where the warm-up ends with an L1 marginal error above _FAR, SNS first
# solves at _COARSEN times reg to _STAGE_TOL (recursively, at most
# _MAX_DEPTH times) and starts from its potentials.
_FAR = 0.2
_COARSEN = 4.0
_STAGE_TOL = 1e-2
_MAX_DEPTH = 8
# Largest room for the kept entries of a row that doubling reaches (a larger first room, m / 8, stays).
_MAX_DOUBLED = 1024
# Groups of columns in the coarse level of the Newton system's preconditioner: about _GROUPS_PER_ROOT * sqrt(m)
# (clouds, n = 3000 and 10,000: 5x fewer CG iterations than the diagonal alone).
_GROUPS_PER_ROOT = 1.25
_MIN_GROUPS = 8
# Newton's trial points are evaluated on the plan's entries at least _CANDIDATE times their row's largest where
# Newton starts (_Candidates), with room for a _CANDIDATE_SHARE-th of the row (its arrays and the kept entries'
# then fit in the warm-up's float32 kernel, 4 bytes an entry); a row with more raises its threshold tenfold, and
# more than _CANDIDATE_RAISES raises anywhere mean the whole plan instead.
# Where the candidates converge and the whole plan has not, at most _MAX_CHECKS rounds of new candidates.
_CANDIDATE = 1e-16
_CANDIDATE_SHARE = 5
_CANDIDATE_RAISES = 3
_MAX_CHECKS = 3
# An evaluation on the candidates stands where the mass they may leave out is at most _TRUST times its error.
_TRUST = 0.1


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
    n_sinkhorn=10,
    threshold=1e-5,
    max_per_row=4096,
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
    steps :math:`\Delta = \varepsilon \tilde A^{-1} \nabla D`, where
    :math:`\tilde A` is :math:`A` with ``P`` replaced by a sparse matrix plus
    a rank-one term, :math:`\tilde P = P_s + u w^T`: :math:`P_s` keeps each
    row's entries above ``threshold`` times its largest, :math:`u` is the
    mass each row drops and :math:`w` spreads it over the columns in
    proportion to the mass each column drops.  :math:`\tilde P` has ``P``'s
    row and column sums, so :math:`\tilde A` keeps :math:`A`'s exact
    diagonal and its null vector :math:`(1, -1)`:

    * where the dropped entries are a plan's local tails (point clouds,
      images) the kept ones carry the smooth modes that make Sinkhorn slow,
      and the rank-one term adds little;
    * where they are spread over the whole row (random costs, plans close
      to a permutation), they couple everything with everything, as a
      rank-one term does; without it the sparse graph falls apart into
      weakly connected pieces and Newton stalls.

    Details:

    * the warm-up runs the scaling iterations with absorption (two BLAS
      matrix-vector products an iteration, no exp); with ``adaptive=True``
      they go on past ``n_sinkhorn`` while their observed linear rate
      predicts that Sinkhorn reaches ``stopThr`` within 1000 iterations in
      all (large ``reg``, spread plans), and Newton takes over as soon as
      the prediction exceeds that (after five iterations already, on costs
      of 8 million entries or more, where the rate still rises there and
      predicts more than 100 to go).  The first iterations run on a
      float32 kernel (they stop far above its resolution); where Sinkhorn
      finishes the solve, it does so over-relaxed, with the :math:`\omega
      = 2 / (1 + \sqrt{1 - \rho})` of successive over-relaxation for the
      rate :math:`\rho` it has shown [4]_ (clouds far apart: 60 iterations
      instead of 250), and Newton takes over where plain Sinkhorn was
      slowing down before it and the relaxed rate predicts more than 100
      iterations still (not after a solve at a larger reg: mass that
      travels far); the other way round, where
      three Newton steps in a row each leave more than half of the error
      (a spread plan, whose sparsified Hessian drops too much), Sinkhorn
      finishes over-relaxed, once a solve;
    * one fused pass over ``M`` computes ``P``'s row and column sums, the
      dual value and the kept entries for the next step (selected from the
      row while it is in cache).  Where the Newton stage starts, that pass
      also keeps each row's candidates, its entries above 1e-16 times its
      largest (a fifth of the row at most); Newton's trial points are then
      evaluated on them alone, by scaling (two products an entry, no exp),
      while a bound on the mass they leave out (each row's threshold grown
      by the potentials' change) stays below a tenth of the error.  Where
      the bound certifies the final error no further pass over ``M`` is
      made; else new candidates are collected (uniform clouds at n = 10,000:
      one pass over ``M`` in the Newton stage instead of five);
    * the gauge (``D`` is invariant under :math:`f + t, g - t`) is fixed by
      holding the last column potential; the system is solved through its
      Schur complement on the column potentials,
      :math:`D_c - \tilde P^T D_r^{-1} \tilde P`, by conjugate gradients
      to a relative residual :math:`\min(0.1, \mathrm{err})` (inexact
      Newton), preconditioned by its diagonal plus a coarse level: about
      :math:`1.25 \sqrt m` groups of columns, each the Laguerre cell of a
      random row (the columns whose reduced cost :math:`M_{sj} - f_s` is
      smallest at that row), and the Schur complement restricted to them,
      inverted once per step.  The diagonal alone leaves CG the smooth
      modes, the mass that must shift across the whole support, at one
      neighbourhood of the plan per iteration; the groups carry them
      (uniform clouds: 37-45 CG iterations in all instead of 214-218) [5]_;
    * the line search halves the step until the L1 marginal error decreases
      or the dual satisfies the Armijo condition.  Accepting on the marginal
      error keeps Newton making progress when changes of :math:`D` fall
      below its float64 resolution (near an error of 1e-10);
    * when the warm-up hands over with an L1 marginal error still above
      0.2 (mass that must travel far relative to :math:`\sqrt{\varepsilon}`,
      as between images of different shapes), Newton would take tens of
      damped steps: SNS first solves the problem at ``4 * reg`` to an error
      of 1e-2, the same way (so recursively, while needed), and starts
      from its potentials, a few Sinkhorn iterations and then Newton
      (epsilon scaling, taken only where it pays);
    * when no step is accepted, ``fallback_sweeps`` log-domain Sinkhorn
      sweeps are taken and Newton resumes.

    Parameters
    ----------
    a, b, M, reg, numItermax, stopThr, verbose, log, warn, warmstart
        As in :func:`~secondorder.ot.sinkhorn`; ``numItermax`` counts
        Sinkhorn and Newton iterations together.
    n_sinkhorn : int
        Sinkhorn warm-up iterations at least (default 10; the paper has 20),
        except where, with ``adaptive=True`` and a cost of 8 million entries
        or more, Sinkhorn is still slowing down at its fifth and predicts
        more than 100 to go: Newton then takes over after those five.
    threshold : float
        Entries of ``P`` kept in the Hessian: those at least ``threshold``
        times their row's largest (default 1e-5).
    max_per_row : int
        At most this many entries kept per row (default 4096): a row with
        more above ``threshold`` raises its own threshold tenfold until
        they fit.  The room starts at ``m / 8`` within that, and doubles
        (up to 1024) while more than 1% of the rows need more.
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
        ``nnz`` (entries kept in the last sparsified ``P``) and
        ``n_passes_newton`` (passes over ``M`` in the Newton stage).

    References
    ----------
    .. [1] X. Tang, M. Shavlovsky, H. Rahmanian, E. Tardini, K. K.
       Thekumparampil, T. Xiao and L. Ying, "Accelerating Sinkhorn algorithm
       with sparse Newton iterations", ICLR 2024.
    .. [2] C. Brauer, C. Clason, D. Lorenz and B. Wirth, "A Sinkhorn-Newton
       method for entropic optimal transport", arXiv:1710.06635, 2017.
    .. [3] C. Wang and Y. Qiu, "The sparse-plus-low-rank quasi-Newton method
       for entropic-regularized optimal transport", ICML 2025.
    .. [4] A. Thibault, L. Chizat, C. Dossal and N. Papadakis, "Overrelaxed
       Sinkhorn-Knopp algorithm for regularized optimal transport",
       Algorithms 14(5), 2021.
    .. [5] Y. Saad, "Iterative methods for sparse linear systems", 2nd ed.,
       SIAM, 2003 (additive two-level preconditioners in its chapter on
       domain decomposition).
    """
    options = dict(n_sinkhorn=n_sinkhorn, threshold=threshold, max_per_row=max_per_row, cg_maxiter=cg_maxiter,
                   max_linesearch=max_linesearch, fallback_sweeps=fallback_sweeps, adaptive=adaptive,
                   print_period=print_period)
    return run_solver(solve_sns, "sinkhorn_newton_sparse", a, b, M, reg, numItermax, stopThr, verbose, log, warn,
                      warmstart, **options)


class _Point:
    """The dual at one point: P's marginals, error, value and large entries."""

    def __init__(self, problem, f, g, threshold, cap, out=None):
        xp = problem.xp
        r, c, count, raised, idx, vals = problem.sns_eval(f, g, threshold, cap, out=out)
        self.f, self.g = f, g
        self.r, self.c = r, c
        self.pattern = (count, idx, vals)
        self.raised = raised
        # A trial far out overflows P's sums: it is rejected as not finite, with no warning of NumPy's.
        with np.errstate(over="ignore", invalid="ignore"):
            self.err = marginal_error(problem, r, c)
            total = float(xp.sum(r))
            self.value = float(problem.a @ f + problem.b @ g) - problem.reg * total
        self.finite = math.isfinite(self.err) and math.isfinite(self.value)
        # a bound on the mass the evaluation leaves out (err is within 2 * left_out): 0 on the whole plan
        self.left_out = problem.left_out(f, g)


class _Arena:
    """Arrays laid one after another in the bytes of a C-contiguous NumPy
    array no longer needed (the warm-up's kernel, or the plan's array before
    the plan is written): no new pages for them (on this machine new pages
    cost up to a millisecond per MB once the process has grown).  ``take``
    gives None where nothing is given or the array does not fit."""

    def __init__(self, memory):
        self.raw = None if memory is None else memory.reshape(-1).view(np.uint8)
        self.used = 0
        self._kept = None

    def take(self, shape, dtype):
        if self.raw is None:
            return None
        start = -(-self.used // 8) * 8
        stop = start + math.prod(shape) * np.dtype(dtype).itemsize
        if stop > self.raw.shape[0]:
            return None
        self.used = stop
        return self.raw[start:stop].view(dtype).reshape(shape)

    def pair(self, n, width):
        """int32 and float64 arrays of shape (n, width), or None."""
        idx = self.take((n, width), np.int32)
        vals = None if idx is None else self.take((n, width), np.float64)
        return None if vals is None else (idx, vals)

    def kept(self, n, width):
        """The arrays of :meth:`pair` for an evaluation's kept entries: the
        same ones at every call with the same width (an evaluation's are read
        once, by the Hessian built before the next evaluation, whether it was
        made on the candidates or on the whole plan), or None."""
        if self._kept is None or self._kept[0].shape != (n, width):
            self._kept = self.pair(n, width)
        return self._kept


class _Candidates:
    r"""The entries of the plan that can carry mass near the solution, for
    the evaluations of Newton's trial points.

    One pass over the cost at potentials :math:`(f_0, g_0)` keeps each
    row's entries at least ``_CANDIDATE`` (1e-16) times its largest (at
    most ``room`` of them: a row with more raises its threshold tenfold, as
    :func:`sns_eval` does); the plan at :math:`(f, g)` is then, on them,
    :math:`P^0_{ij} e^{(f_i - f_{0,i})/\varepsilon} e^{(g_j -
    g_{0,j})/\varepsilon}`: a pass over the candidates with two
    multiplications per entry instead of a pass over the cost with an exp
    per entry (uniform clouds: a sixth of the entries).  An entry left out
    was below its row's threshold :math:`t_i` and has grown by the same
    factors since, so :meth:`left_out` bounds the mass outside; the solver
    trusts an evaluation while that bound is small against its error, and
    collects new candidates where it is not.

    The same pass gives the whole plan's marginal error at
    :math:`(f_0, g_0)` (``err``).  ``complete``: no row raised its
    threshold more than ``_CANDIDATE_RAISES`` times.
    """

    def __init__(self, problem, f, g, room, previous=None, arena=None):
        xp = problem.xp
        self.xp, self.a, self.b, self.reg = xp, problem.a, problem.b, problem.reg
        self.f0, self.g0, self.m = f, g, problem.dims[1]
        # The candidates' arrays in those of the candidates these replace, or in the arena where they fit.
        self.arena = arena if previous is None else previous.arena
        out = previous.entries[1:] if previous is not None else arena.pair(problem.dims[0], room) if arena else None
        r, c, count, raised, idx, vals = problem.sns_eval(f, g, _CANDIDATE, room, out=out)
        with np.errstate(over="ignore", invalid="ignore"):
            self.err = marginal_error(problem, r, c)
        self.complete = math.isfinite(self.err) and int(xp.max(raised)) <= _CANDIDATE_RAISES
        self.entries = (count, idx, vals)
        # Each row's entries left out are below its threshold: _CANDIDATE 10^raised times its largest entry.
        self.slack = _CANDIDATE * 10.0 ** xp.astype(raised, xp.float64) * kernels(xp).row_max(count, vals)
        self._room = None if previous is None else previous._room

    def left_out(self, f, g):
        """A bound on the plan's mass outside the candidates at ``(f, g)``:
        an entry left out at :math:`(i, j)`, below the row's threshold
        :math:`t_i` at the candidates' potentials, is now below :math:`t_i
        e^{(f_i - f_{0,i})/\varepsilon} e^{(g_j - g_{0,j})/\varepsilon}`;
        summed over every (i, j)."""
        xp = self.xp
        with np.errstate(over="ignore", invalid="ignore"):
            ef = xp.exp((f - self.f0) / self.reg)
            return float(self.slack @ ef) * float(xp.sum(xp.exp((g - self.g0) / self.reg)))

    def sns_eval(self, f, g, threshold, cap, out=None):
        """:meth:`OTProblem.sns_eval` on the candidates.  The kept entries go
        into the same arrays at every call (NumPy; the arena's :meth:`_Arena.kept`
        where they fit), not new ones: each evaluation's are read once, by the Hessian
        built before the next evaluation (their pages, new at every call,
        cost as much as the evaluation itself at n = 10,000)."""
        xp = self.xp
        with np.errstate(over="ignore"):  # a trial far out: inf sums, rejected as not finite
            ef = xp.exp((f - self.f0) / self.reg)
            eg = xp.exp((g - self.g0) / self.reg)
        if out is None and xp is np:
            n = ef.shape[0]
            out = self.arena.kept(n, cap) if self.arena else None
            if out is None:
                if self._room is None or self._room[0].shape[1] != cap:
                    self._room = (np.empty((n, cap), dtype=np.int32), np.empty((n, cap)))
                out = self._room
        return kernels(xp).sns_eval_sparse(*self.entries, ef, eg, threshold, cap, self.m, out=out)


class _Hessian:
    r"""The sparsified Hessian's off-diagonal block :math:`\tilde P = P_s +
    u w^T`: the kept entries :math:`P_s`, and the mass dropped from each
    row (``u``) and column spread over the columns in proportion to theirs
    (``w``, summing to 1), so that :math:`\tilde P` has ``P``'s marginals.

    :meth:`schur` is the product with :math:`\tilde P^T D_r^{-1} \tilde P`,
    expanded so that a product costs one pass over :math:`P_s`:
    :math:`G v + (w \cdot v) q + (q \cdot v) w + (w \cdot v)(u \cdot D_r^{-1}
    u) w`, with :math:`G = P_s^T D_r^{-1} P_s` and :math:`q = P_s^T D_r^{-1}
    u`."""

    def __init__(self, xp, point, n, m, held=None):
        # ``held``: a dict in which the CSR arrays are kept from one Hessian to the next (NumPy)
        out = _held_csr(held, int(point.pattern[0].sum())) if held is not None and xp is np else None
        data, indices, indptr = kernels(xp).kept_csr(*point.pattern, out=out)
        # 32-bit row pointers where they fit, like the column indices: no copy of either when CSR is built
        index = indices.dtype if int(indptr[-1]) < 2**31 else indptr.dtype
        self.csr = (data, astype(xp, indices, index), astype(xp, indptr, index))
        self.S = SparseRows(xp, self.csr[0], None, self.csr[1], (n, m), indptr=self.csr[2])
        self.nnz = self.S.nnz
        u = xp.clip(point.r - self.S.matvec(xp.ones(m, dtype=point.r.dtype)), min=0.0)
        w = xp.clip(point.c - self.S.rmatvec(xp.ones(n, dtype=point.c.dtype)), min=0.0)
        total = float(xp.sum(w))
        self.u = u
        self.w = w / total if total > 0.0 else w
        self.inv_r = 1.0 / point.r
        self.q = self.S.rmatvec(u * self.inv_r)
        self.uu = float(xp.sum(u * u * self.inv_r))

    def matvec(self, x):
        return self.S.matvec(x) + self.u * float(self.w @ x)

    def rmatvec(self, y):
        return self.S.rmatvec(y) + self.w * float(self.u @ y)

    def schur(self, v):
        alpha = float(self.w @ v)
        return self.S.gram(v, self.inv_r) + alpha * self.q + (float(self.q @ v) + alpha * self.uu) * self.w

    def schur_diagonal(self):
        """The diagonal of :math:`\tilde P^T D_r^{-1} \tilde P`."""
        return self.S.squared_rmatvec(self.inv_r) + 2.0 * self.w * self.q + self.w * self.w * self.uu


def _held_csr(held, nnz):
    """float32 and int32 arrays of ``nnz`` entries for a Hessian's CSR data
    and indices, in the arrays ``held["csr"]`` of the Hessian before while
    they have room (its pages written already: new ones for each Newton
    step cost up to 0.05 s each at n = 10,000).  The arrays handed out are
    at least half of the ones held: SciPy's CSR matrix copies a view that
    is less (``_prune_array``).

    The kept entries in float32: each CG product reads 8 bytes an entry
    instead of 12 (n = 10,000: the products 25% faster).  Newton's system
    is solved inexactly (to a relative residual of 1e-5 at the least for
    ``stopThr = 1e-9``), far above float32's 1e-7; the gradient, the errors
    and the sums inside the products stay float64, so the solution is the
    same (counts of Newton steps and CG iterations unchanged on the
    benchmark's problems)."""
    room = held.get("csr")
    if room is None or not room[0].shape[0] // 2 <= nnz <= room[0].shape[0]:
        held["csr"] = room = None  # released before the new ones are made
        size = nnz + nnz // 4  # room for the next Hessian's kept entries to grow
        held["csr"] = room = (np.empty(size, dtype=np.float32), np.empty(size, dtype=np.int32))
    return room[0][:nnz], room[1][:nnz]


class _Coarse:
    r"""The coarse level of the Schur complement's preconditioner.

    The Schur complement :math:`S = D_c - \tilde P^T D_r^{-1} \tilde P`
    couples the columns that share rows of the plan: at small ``reg`` a
    graph Laplacian over neighbourhoods of a few ``sqrt(reg)``, whose smooth
    modes (the mass that must shift across the whole support, the modes
    that make Sinkhorn slow) the diagonal preconditioner leaves to CG, one
    neighbourhood per iteration.  A coarse space of column groups carries
    them: with :math:`R` the groups' indicator (:math:`R v` sums ``v`` over
    each group), the preconditioner is additive,
    :math:`z = D^{-1} r + R^T (R S R^T)^{-1} R r`, with :math:`R S R^T`
    (``k x k``) inverted once per Newton step.

    The groups are Laguerre cells: ``k`` rows picked at random are the
    seeds, and column ``j`` joins the seed ``s`` with the smallest
    :math:`M_{sj} - f_s`, the row that the plan, at its current
    potentials, would favour for it among the seeds.  This needs ``k`` rows
    of the cost and no coordinates, so it serves any cost; where the cost
    has no geometry (random costs) the groups are random and the level
    changes little.  The gauge's column (the last, held fixed) is in no
    group.

    Computed on the kept entries, with :math:`Q = P_s R^T` (each row's sums
    per group; the kernel ``group_gram`` makes :math:`Q^T D_r^{-1} Q` in one
    pass, row by row), :math:`R S R^T = \operatorname{diag}(R c) - Q^T D_r^{-1} Q -
    (Rq)(Rw)^T - (Rw)(Rq)^T - (u^T D_r^{-1} u)(Rw)(Rw)^T` for the rank-one
    term (:class:`_Hessian`).
    """

    def __init__(self, xp, point, H, groups, k):
        self.xp, self.groups, self.k = xp, groups, k
        # each column's group, the one outside any group in an extra one (k) that is dropped
        self.places = xp.where(groups < 0, k, groups)
        table = kernels(xp)
        data, indices, indptr = H.csr
        Rc, Rw, Rq = (self.restrict(v) for v in (point.c, H.w, H.q))
        Sc = -table.group_gram(data, indices, indptr, groups, k, H.inv_r)
        Sc = Sc - Rq[:, None] * Rw[None, :] - Rw[:, None] * Rq[None, :] - H.uu * (Rw[:, None] * Rw[None, :])
        # an empty group (no column joined its seed) gets a 1 on the diagonal: nothing reaches it
        diag = xp.where(Rc > 0.0, Rc, 1.0)
        Sc = Sc + diag[:, None] * xp.eye(k, dtype=Sc.dtype)
        # its inverse, formed once: a k x k product per CG iteration costs less than two triangular solves
        self.inverse = cho_solve(xp, cholesky(xp, Sc, 0.0), xp.eye(k, dtype=Sc.dtype))

    def restrict(self, v):
        """:math:`R v`: the sums of ``v`` over each group."""
        xp = self.xp
        if xp is np:  # once per CG iteration: NumPy's serial count, no parallel launch
            return np.bincount(self.places, weights=v, minlength=self.k + 1)[: self.k]
        m = v.shape[0]
        bounds = xp.asarray([0, m], dtype=xp.int64)
        return kernels(xp).group_sums(v, xp.arange(m, dtype=xp.int64), bounds, self.groups, self.k)[0, :]

    def __call__(self, r):
        """:math:`R^T (R S R^T)^{-1} R r`."""
        xp = self.xp
        y = self.inverse @ self.restrict(r)
        return xp.take(xp.concat([y, xp.zeros(1, dtype=y.dtype)]), self.places)


def _seeds(problem, k):
    """``k`` distinct rows of the cost, picked at random (the same for a
    given size), and those rows of the cost, (k, m)."""
    xp = problem.xp
    n = problem.dims[0]
    rows = np.sort(np.random.default_rng(0).choice(n, size=k, replace=False))
    rows = from_host(xp, rows, problem.a)
    return rows, problem.cost_rows(rows)


def _groups(xp, seeds, f, m):
    """Each column's Laguerre cell among the seed rows (see :class:`_Coarse`);
    the gauge's column, the last, in none (-1)."""
    rows, C = seeds
    groups = xp.argmin(C - xp.take(f, rows)[:, None], axis=0)
    return xp.where(xp.arange(m) == m - 1, -1, groups)


def _finite(xp, sol):
    """Whether a Sinkhorn run's potentials and errors are all finite."""
    return all(math.isfinite(e) for e in sol.errs) and math.isfinite(float(xp.sum(sol.f) + xp.sum(sol.g)))


def _rate(errs, window, end):
    """The linear rate per iteration over ``errs[end - window : end]``."""
    if end - 1 - window < 0 or not errs[end - 1] > 0.0 or not errs[end - 1 - window] > 0.0:
        return None
    return (errs[end - 1] / errs[end - 1 - window]) ** (1.0 / window)


def _omega(rate):
    """Successive over-relaxation's weight for a linear rate ``rate``
    (below 1), at most _MAX_OMEGA."""
    return min(_MAX_OMEGA, 2.0 / (1.0 + math.sqrt(1.0 - rate)))


def _relaxed_stop(stopThr):
    """The stop rule of an over-relaxed finish: True (Newton takes over)
    where, two windows or more after the largest error, the rate since
    predicts more than _RELAXED_LEFT iterations still (the relaxed errors
    first rise, and may stall a few iterations)."""

    def stop(errs):
        t = len(errs)
        if t % _RATE_WINDOW or not stopThr > 0.0:
            return False
        peak = max(range(t), key=errs.__getitem__)
        span = t - 1 - peak
        if span < 2 * _RATE_WINDOW or not errs[peak] > 0.0 or not errs[-1] > stopThr:
            return False
        now = (errs[-1] / errs[peak]) ** (1.0 / span)
        return not now < 1.0 or math.log(stopThr / errs[-1]) / math.log(now) > _RELAXED_LEFT

    return stop


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


def _newton_direction(point, H, rhs, rtol, maxiter, xp, coarse=None):
    r"""Solve :math:`\begin{pmatrix} D_r & \tilde P \\ \tilde P^T & D_c
    \end{pmatrix} \Delta = \rho` (``rhs``) with the last column potential
    held fixed (gauge), through the Schur complement on the column block,
    :math:`S = D_c - \tilde P^T D_r^{-1} \tilde P`, by conjugate gradients
    preconditioned with :math:`S`'s diagonal and ``coarse`` (a
    :class:`_Coarse`, or None); then :math:`\Delta_f = D_r^{-1}
    (\rho_f - \tilde P \Delta_g)`.  Returns (Delta, iterations)."""
    n = point.r.shape[0]
    r, c = point.r, point.c
    rho_f, rho_g = rhs[:n], rhs[n:]

    def schur(v):
        y = c * v - H.schur(v)
        y[-1] = 0.0
        return y

    diag = xp.maximum(c - H.schur_diagonal(), 1e-6 * c)
    inv_diag = 1.0 / diag
    inv_diag[-1] = 0.0
    b = rho_g - H.rmatvec(rho_f / r)
    b[-1] = 0.0

    def precondition(res):
        return inv_diag * res if coarse is None else inv_diag * res + coarse(res)

    x = xp.zeros_like(b)
    res = copy(xp, b)
    z = precondition(res)
    p = copy(xp, z)
    rz = float(res @ z)
    tol = rtol * norm(xp, b)
    it = 0
    for it in range(1, maxiter + 1):
        Ap = schur(p)
        pAp = float(p @ Ap)
        if not pAp > 0.0:
            break
        alpha = rz / pAp
        x += alpha * p
        res -= alpha * Ap
        if norm(xp, res) <= tol:
            break
        z = precondition(res)
        rz_new = float(res @ z)
        p = z + (rz_new / rz) * p
        rz = rz_new
    return xp.concat([(rho_f - H.matvec(x)) / r, x]), it


def solve_sns(
    problem,
    numItermax,
    stopThr,
    verbose=False,
    warmstart=None,
    n_sinkhorn=10,
    threshold=1e-5,
    max_per_row=4096,
    cg_maxiter=1000,
    max_linesearch=8,
    fallback_sweeps=10,
    adaptive=True,
    print_period=10,
    potentials=None,
    depth=0,
    scratch=None,
    **unknown,
):
    # ``potentials``: (f, g) to start from, from a solve at a larger reg; ``depth``: how many such solves this
    # one is nested in; ``scratch``: the warm-up's kernel array, shared with them (see below).
    if unknown:
        raise TypeError(f"sinkhorn_newton_sparse got unexpected keyword arguments: {', '.join(sorted(unknown))}.")
    xp = problem.xp
    n, m = problem.dims
    n_sinkhorn = check_int(n_sinkhorn, "n_sinkhorn", minimum=0)
    cg_maxiter = check_int(cg_maxiter, "cg_maxiter", minimum=1)
    max_linesearch = check_int(max_linesearch, "max_linesearch", minimum=0)
    fallback_sweeps = check_int(fallback_sweeps, "fallback_sweeps", minimum=1)
    threshold = check_positive(threshold, "threshold")
    if not threshold < 1.0:
        raise ValueError(f"threshold must be below 1 (a fraction of each row's largest entry); got {threshold!r}.")
    max_per_row = min(m, check_int(max_per_row, "max_per_row", minimum=1))
    # Room for the kept entries of each row: an eighth of the row to start with (a row of a plan at small reg
    # spreads over a fixed share of the points: the kept entries grow with m), at most max_per_row, doubled up
    # to _MAX_DOUBLED while more than 1% of the rows need more (each raised row's first steps are poor ones; a
    # spread plan's rows need the whole row, and more room there costs memory and time for little).
    cap = min(max_per_row, max(64, m // 8))
    cap_limit = min(max_per_row, max(cap, _MAX_DOUBLED))
    reg = problem.reg

    f, g = initial_potentials(problem, warmstart) if potentials is None else potentials

    def hand_over(errs):
        t = len(errs)
        if adaptive and t == _EARLY < n_sinkhorn and stopThr > 0.0 and n * m >= _EARLY_ENTRIES:
            now, before = _rate(errs, 1, t), _rate(errs, 1, t - 1)
            if now is not None and before is not None and now > before + _EARLY_RISE and now < 1.0:
                left = math.log(stopThr / errs[-1]) / math.log(now) if errs[-1] > stopThr else 0.0
                return left > _EARLY_LEFT
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

    # The warm-up's first iterations run on a float32 kernel whatever M's dtype: they only bring the error to
    # where Newton takes over (1e-2 to 1e-4), far above float32's resolution, at half the memory traffic of each
    # product (n = 10,000: 0.5 s less) and half the size of the one n x m array SNS adds.  Newton, whose sums
    # are float64, takes the error below it.  Where Sinkhorn goes on to finish the solve itself, it does so on
    # a kernel in M's dtype.
    kernel_dtype = xp.float32 if problem.dtype == xp.float32 else xp.float64
    # One n x m array holds the warm-up's float32 kernel and, after the warm-up, the candidates' arrays
    # (_Candidates): no new pages for them (on this machine new pages cost up to a millisecond per MB once the
    # process has grown).  Where the plan is returned, that array lies in the plan's bytes (scratch_like): SNS
    # then adds no n x m array, but for the kernel of a relaxed finish after Newton (relaxed_finish).  Where
    # Sinkhorn goes on in M's dtype, it is replaced by one of that dtype (released first: never two such
    # arrays at once).
    if scratch is None and xp is np and problem.dense:
        scratch = problem.scratch_like(np.float32)

    # What an over-relaxed finish needs to know: the plain warm-up's last rate (None: unknown), the iterations the
    # warm-up gave a relaxed finish (0: none), and whether the Newton stage had Sinkhorn finish (once a solve).
    finish = {"rate": None, "relaxed": 0, "finished": False}

    def warm_up(f, g, budget, near=True):
        """Sinkhorn from (f, g) until it hands over (or converges): a Solution.
        ``near``: False after a solve at a larger reg (mass that travels far),
        where a relaxed finish goes on to its end."""
        limit = min(max(n_sinkhorn, _SINKHORN_BUDGET if adaptive else 0), budget)
        # The warm-up's matrix-vector products gain from BLAS threads on large matrices only; on smaller ones
        # the threads spin on after the last product and slow down the numba passes of the Newton stage.  Where
        # Sinkhorn goes on past its first checks, it is finishing the solve itself: the rest runs on BLAS threads
        # from _THREADED_FINISH entries (between products of a small matrix they wait for work, and their wake-up
        # costs more than they save).
        first = min(limit, n_sinkhorn + 2 * _RATE_WINDOW)
        handed = []

        def stop(errs):
            if hand_over(errs):
                handed.append(True)
            return bool(handed)

        def iterations(f, g, count, stop=None, dtype=kernel_dtype, omega=1.0, kernel=None):
            # (a loop, not a recursive call: a closure that calls itself is a reference cycle, which would keep
            # the scratch array alive until the garbage collector runs)
            nonlocal scratch
            while problem.dense:
                if kernel is None and scratch is not None and dtype in (scratch.dtype, problem.dtype):
                    if scratch.dtype != dtype:
                        scratch = None
                        scratch = problem.scratch_like(dtype)
                    kernel = scratch
                with np.errstate(all="ignore"):
                    sol = scaling_iterations(problem, f, g, count, stopThr, verbose, stop=stop,
                                             print_period=print_period, dtype=dtype, omega=omega, kernel=kernel)
                if _finite(xp, sol):
                    return sol
                # A row or column of the kernel underflowed to zero (reg tiny against M's range), and the scalings
                # overflowed.  Again from (f, g): on a float64 kernel, whose entries stay normal numbers down to
                # exp(-500), where M is float64 (the kernel then has M's size); else in the log domain.
                handed.clear()
                if dtype == xp.float64 or kernel_dtype != xp.float64:
                    break
                dtype, kernel = xp.float64, None
            # Log-domain sweeps: a grid cost (no kernel matrix for BLAS; each sweep O(n^1.5)), or a kernel that
            # underflows (no kernel at all: any reg).
            return solve_log(problem, count, stopThr, verbose, print_period=print_period, potentials=(f, g),
                             stop=stop, omega=omega)

        with one_blas_thread() if xp is np and n * m < _THREADED_WARMUP else contextlib.nullcontext():
            warm = iterations(f, g, first, stop, dtype=xp.float32)
        if len(warm.errs) >= 2:  # the plain iterations' last rate, for a relaxed finish after Newton
            window = min(_RATE_WINDOW, len(warm.errs) - 1)
            finish["rate"] = _rate(warm.errs, window, len(warm.errs))
        if handed or len(warm.errs) < first or warm.errs[-1] < stopThr or limit <= first:
            return warm
        # Sinkhorn finishes the solve: over-relaxed by the rate it has shown (successive over-relaxation's
        # omega), for at most the iterations plain Sinkhorn was predicted to need; Newton takes over from there
        # if that was not enough.
        errs = list(warm.errs)
        rate = _rate(errs, _RATE_WINDOW, len(errs))
        more = _sinkhorn_iterations_left(errs, stopThr, _RATE_WINDOW)
        with one_blas_thread() if xp is np and n * m < _THREADED_FINISH else contextlib.nullcontext():
            if rate is not None and more is not None and rate < 1.0:
                finish["relaxed"] = min(limit - first, math.ceil(more) + _RATE_WINDOW)
                # Newton may take over from a slow relaxed finish where plain Sinkhorn was slowing down (a
                # concentrated plan, Newton's ground); where it was speeding up (a spread plan: clouds far
                # apart), or where the mass travels far (a solve at a larger reg came first, or this is one),
                # the finish goes on to its end, as Newton from its middle can take tens of damped steps.
                before = _rate(errs, _RATE_WINDOW, len(errs) - _RATE_WINDOW)
                slowing = near and depth == 0 and before is not None and rate > before
                rest = iterations(warm.f, warm.g, finish["relaxed"], omega=_omega(rate),
                                  stop=_relaxed_stop(stopThr) if slowing else None)
            else:
                rest = iterations(warm.f, warm.g, limit - first, stop=lambda more: stop(errs + more))
        return Solution(rest.f, rest.g, errs + rest.errs, warm.passes + rest.passes)

    warm = warm_up(f, g, numItermax)
    errs, passes, n_sweeps, n_newton = list(warm.errs), warm.passes, len(warm.errs), 0
    if adaptive and errs and errs[-1] > max(stopThr, _FAR) and len(errs) < numItermax and depth < _MAX_DEPTH:
        # Far from the solution: the mass must travel far relative to sqrt(reg) (images of different shapes)
        # and Newton would take tens of damped steps.  Solve at a larger reg first, from here, to a loose
        # tolerance, and come back from its potentials (in cost units they carry over): epsilon scaling, only
        # where it pays.
        sol = solve_sns(problem.at_reg(_COARSEN * reg), numItermax - len(errs), max(stopThr, _STAGE_TOL), verbose,
                        None, n_sinkhorn, threshold, max_per_row, cg_maxiter, max_linesearch, fallback_sweeps,
                        adaptive, print_period, potentials=(warm.f, warm.g), depth=depth + 1, scratch=scratch)
        warm = warm_up(sol.f, sol.g, max(numItermax - len(errs) - len(sol.errs), 1), near=False)
        errs += sol.errs + list(warm.errs)
        passes += sol.passes + warm.passes
        n_sweeps += sol.extra["n_sinkhorn"] + len(warm.errs)
        n_newton += sol.extra["n_newton"]
        coarse = sol.extra
    else:
        coarse = {"cg_iters": 0, "n_passes_newton": 0}
    if verbose:
        print(f"{'It.':>5}|{'Err':>12}|{'step':>8}|{'CG':>6}   (Newton)")
    # Where the plan is concentrated, Newton's trial points are evaluated on the entries that can carry mass
    # (_Candidates), and the whole plan is checked where they converge.
    room = min(m, max(m // _CANDIDATE_SHARE, 256))
    evaluator = candidates = problem
    passes_newton = 0

    def evaluate(f, g):
        """The dual at ``(f, g)``: on the candidates while the mass they may
        leave out is small against the error, else on new candidates
        collected there (a pass over M), or on the whole plan."""
        nonlocal evaluator, candidates, passes_newton
        if evaluator is not problem:
            at = _Point(evaluator, f, g, threshold, cap)
            if not at.finite or at.left_out <= _TRUST * max(at.err, stopThr):
                return at
            candidates = _Candidates(problem, f, g, room, previous=candidates)
            passes_newton += 1
            evaluator = candidates if candidates.complete else problem
            if evaluator is not problem:
                return _Point(evaluator, f, g, threshold, cap)
        passes_newton += 1
        return _Point(problem, f, g, threshold, cap, out=arena.kept(n, cap) if arena is not None else None)

    def finish_allowed():
        # (float64 only: a float32 kernel does not resolve the errors a finish must reach)
        return (problem.dtype == xp.float64 and adaptive and stopThr > 0.0 and not finish["finished"]
                and finish["rate"] is not None and finish["rate"] < 1.0)

    def relaxed_finish(f, g, budget):
        """Over-relaxed Sinkhorn from (f, g), with the weight of the warm-up's
        last rate: scaling iterations on a new kernel in M's dtype (the
        plan's bytes hold the candidates), or log-domain sweeps on a grid's
        cost; None where they overflow or no iteration is left.  Stopped as
        the warm-up's relaxed finish is, but where that one was tried
        already and Newton did no better after it: then for the iterations
        it was given, whatever its rate, and Newton again after them."""
        stop = _relaxed_stop(stopThr)
        if finish["relaxed"]:
            budget, stop = min(budget, finish["relaxed"]), None
        if budget < 1:
            return None
        omega = _omega(finish["rate"])
        if not problem.dense:
            return solve_log(problem, budget, stopThr, verbose, print_period=print_period, potentials=(f, g),
                             stop=stop, omega=omega)
        with np.errstate(all="ignore"):
            sol = scaling_iterations(problem, f, g, budget, stopThr, verbose, stop=stop, print_period=print_period,
                                     dtype=problem.dtype, omega=omega)
        return sol if _finite(xp, sol) else None

    poor = 0
    k = min(n, m - 1, max(_MIN_GROUPS, round(_GROUPS_PER_ROOT * math.sqrt(m))))
    seeds = _seeds(problem, k) if k >= _MIN_GROUPS else None
    cg_total = 0
    nnz = 0
    checks = 0
    # The Newton stage alternates numba passes with small BLAS calls (dot products): BLAS on one thread, or its
    # spinning threads take the cores from the numba threads.
    # The Newton stage's large arrays in the bytes of the plan's array where the plan is returned (all of them,
    # not only the float32 kernel's share), else in the kernel's.
    arena = _Arena(problem.plan_out if problem.plan_out is not None else scratch) if xp is np else None
    held = {}
    with one_blas_thread() if xp is np else contextlib.nullcontext():
        if problem.dense and not errs[-1:] < [stopThr]:
            candidates = _Candidates(problem, warm.f, warm.g, room, arena=arena)
            evaluator = candidates if candidates.complete else problem
            passes_newton += 1
        point = evaluate(warm.f, warm.g)
        while True:
            while point.err >= stopThr and n_sweeps + n_newton < numItermax:
                H = _Hessian(xp, point, n, m, held)
                nnz = H.nnz
                if cap < cap_limit and int(xp.sum(xp.astype(point.raised > 0, xp.int64))) > 0.01 * n:
                    cap = min(cap_limit, 2 * cap)
                grad = xp.concat([problem.a - point.r, problem.b - point.c])
                # Inexact Newton: the next error is about rtol * err (+ err^2), so rtol = err keeps the quadratic
                # rate, and no solve needs to be tighter than what brings the next error to a tenth of stopThr.
                rtol = max(1e-12, min(0.1, max(point.err, 0.1 * stopThr / point.err)))
                level = None
                if seeds is not None:
                    try:
                        level = _Coarse(xp, point, H, _groups(xp, seeds, point.f, m), k)
                    except np.linalg.LinAlgError:  # a coarse matrix that rounding left indefinite: the diagonal
                        level = None
                delta, cg_it = _newton_direction(point, H, reg * grad, rtol, cg_maxiter, xp, level)
                H = level = None  # not held while the next ones are built
                cg_total += cg_it
                slope = float(grad @ delta)
                step = 1.0
                accepted = None
                if all(math.isfinite(v) for v in (slope, float(xp.max(xp.abs(delta))))):
                    for _ in range(max_linesearch + 1):
                        trial = evaluate(point.f + step * delta[:n], point.g + step * delta[n:])
                        if trial.finite and (trial.err < point.err or trial.value >= point.value + 1e-4 * step * slope):
                            accepted = trial
                            break
                        step *= 0.5
                if accepted is not None:
                    poor = poor + 1 if accepted.err > _POOR_CONTRACTION * point.err else 0
                    point = accepted
                    n_newton += 1
                    errs.append(point.err)
                    if verbose:
                        print(f"{len(errs):>5}|{point.err:>12.6e}|{step:>8.3g}|{cg_it:>6}")
                else:
                    # Newton made no progress here: a few Sinkhorn sweeps, then resume.
                    poor += 1
                    f, g = sweeps(problem, point.f, point.g, fallback_sweeps)
                    passes += 2 * fallback_sweeps
                    point = evaluate(f, g)
                    n_sweeps += fallback_sweeps
                    errs.append(point.err)
                    if verbose:
                        print(f"{len(errs):>5}|{point.err:>12.6e}|{'sinkhorn':>8}|{'':>6}")
                if poor >= _POOR_STEPS and finish_allowed() and point.err >= stopThr:
                    # Newton contracts no faster than Sinkhorn would (a spread plan, whose sparsified Hessian drops
                    # too much; or a point too far for it): Sinkhorn finishes over-relaxed, on a kernel of its own,
                    # once a solve.
                    finish["finished"] = True
                    poor = 0
                    sol = relaxed_finish(point.f, point.g, numItermax - n_sweeps - n_newton)
                    if sol is not None and sol.errs:
                        errs += sol.errs
                        passes += sol.passes
                        n_sweeps += len(sol.errs)
                        point = evaluate(sol.f, sol.g)
                        errs[-1] = point.err
                        if verbose:
                            print(f"{len(errs):>5}|{point.err:>12.6e}|{'relaxed':>8}|{'':>6}")
            # On the candidates, the whole plan's error is within twice the mass they leave out: below stopThr,
            # the point has converged.
            if evaluator is problem or point.err + 2.0 * point.left_out < stopThr:
                break
            # Else the whole plan at the point reached: its error is the one reported.  Where the mass outside
            # the candidates keeps it above stopThr, Newton goes on from here on the candidates of this point (on
            # the whole plan after _MAX_CHECKS such rounds).
            checks += 1
            passes_newton += 1
            candidates = _Candidates(problem, point.f, point.g, room, previous=candidates)
            errs[-1] = candidates.err
            if candidates.err < stopThr or n_sweeps + n_newton >= numItermax:
                break
            evaluator = candidates if candidates.complete and checks < _MAX_CHECKS else problem
            point = evaluate(point.f, point.g)
    extra = {
        "niter": n_sweeps + n_newton,
        "n_sinkhorn": n_sweeps,
        "n_newton": n_newton,
        "cg_iters": cg_total + coarse["cg_iters"],
        "nnz": int(nnz),
        "n_passes_newton": passes_newton + coarse["n_passes_newton"],
    }
    return Solution(point.f, point.g, errs, passes + passes_newton, extra)


solve_sns.takes_grid = True
solve_sns.uses_plan_out = True

r"""``solver="auto"``, the estimators' default: quasi-Newton in scaled
variables, and Newton where the quasi-Newton iteration turns out slow.

The rule
--------
0. **Newton from the start where the gradient's pass sums the Hessian
   cheaply.**  The binary loss on dense ``X`` with at most 24 parameters, on
   the numba kernels, adds each row's rank-one update to the Hessian while
   the row is in cache.  Where those updates cost little (``n p^2`` up to
   about 4 million), a Newton iteration costs about what an L-BFGS one
   does, and Newton takes a handful of them (:func:`newton_cholesky`: a
   Cholesky solve and a backtracking line search, nothing else per
   iteration, since on small data the iteration's fixed cost is the fit's
   cost).  1000 x 10 with C = 1e4: 7 iterations instead of 13, 1.1 ms
   instead of 1.7.  Where the iteration cannot go on (a Hessian that is not
   positive definite, a line search that finds no decrease), the trust
   region below goes on from its point.
1. **Scale the variables.**  :math:`D` is the Hessian's diagonal at
   :math:`w = 0` (:meth:`GLMLoss.hessian_diagonal`, summed in the first
   gradient's pass for the binary loss, which L-BFGS reuses).
   In :math:`u = D^{1/2} w` every feature has unit curvature at the start,
   whatever its scale: the ill-conditioning that unscaled features bring
   (condition numbers that grow as the square of the features' spread) is
   gone before any method starts.
2. **L-BFGS first.**  A bare L-BFGS (``_lbfgs.lbfgs``: the two-loop
   recursion in one compiled call and a strong Wolfe line search) runs on
   the fused loss in the scaled variables: about one pass over ``X`` per
   iteration, the cheapest iteration there is, and few of them on a
   well-conditioned problem.  It takes the iterations scipy's L-BFGS-B
   takes, without its 100 µs of bookkeeping an iteration, which on small
   data cost more than the pass (1000 x 30: 0.98 ms a fit instead of
   1.57).  On the numba kernels the whole run is one compiled call
   (:mod:`secondorder._kernels.cpu.glm_lbfgs`, the same iterates): the 30-40
   µs of Python an iteration costs besides its pass go too (binary 1000 x
   100, 22 iterations: 1.9 ms a fit instead of 3.9), and so do those of
   the Newton steps' conjugate gradients below
   (:mod:`secondorder._kernels.cpu.glm_cg`).  It stops when the gradient
   norm of the original objective is at most ``tol``, the estimators'
   test.
3. **Newton where L-BFGS is slow.**  From its tenth iteration on, the rate
   of the last ten predicts how many more L-BFGS needs; when those would
   cost more passes over ``X`` than a Newton solve (about six steps, each a
   pass for the gradient plus the curvature: a dense Hessian for up to 512
   parameters of the binary loss on dense ``X``, costing about
   ``n_params / 8`` passes, or conjugate gradients preconditioned by the
   Hessian's diagonal at each point, about 15), the fit goes on from the L-BFGS point by
   trust-region Newton (:func:`secondorder.minimize`,
   ``method="trust-region"``).  The remaining correlation between features
   and weak regularisation (large ``C``, nearly separable classes) are what
   Newton handles and L-BFGS does not.  L-BFGS stopping short of ``tol``
   (its line search fails at rounding level) hands over too.
4. **The dense matrix where CG turns out costly.**  The multinomial loss
   (and the binary one beyond 512 parameters) starts its Newton phase on
   products; with at most 1024 parameters on dense ``X``, once CG spends
   more products at one point than the dense matrix and its
   eigendecomposition cost (about ``p / 8 + p^2 / n`` products), the
   remaining points use the dense matrix: correlated features, whose
   condition CG pays for in iterations (30,000 x 300, 3 classes: twice as
   fast).
5. **The dense matrix reused.**  With more than 32 parameters, a dense
   matrix of the Newton phase (rules 3 and 4) is computed at one point and
   kept at the next ones while each step shrinks the gradient at least
   twofold ("lazy Hessians", :class:`_LazyDense`): it costs about
   ``p / 8`` passes, a step on a kept one a gradient's pass and no new
   factorisation.  From L-BFGS's point the Hessian changes little between
   steps: binary 30,000 x 200 with correlated features took 0.085 s
   instead of 0.15 s, one matrix for its five Newton points.

On a cluster (the Dask losses) every oracle call is a round of tasks, whose
fixed cost (tens of milliseconds) outweighs a pass over a partition, and
the dense curvature matrix comes in the gradient's round.  Where that
matrix costs a few gradients, a Newton iteration costs about what an
L-BFGS one does and Newton takes fewer, about six, however the problem is
conditioned: the fit is trust-region Newton on the dense matrix from the
start (``solver_ = "trust-region"``) with at most 32 parameters, and for
the binary loss on dense ``X`` (one BLAS rank-k update per partition) with
at most 128.  Beyond that the rule above applies, counting rounds instead
of passes, and judging L-BFGS on the rate of its first five iterations:
the Newton solve it is weighed against costs about six rounds, and with
the dense matrix two matrices of about four rounds each (rule 5 keeps
one across rounds).  Correlated 200,000 x 40 features in 8 partitions: 6
rounds instead of 56 (17 counting rounds after ten iterations); 100,000
x 200: 16 rounds, one of them with the matrix.
"""

import math
import warnings

import numpy as np
from scipy.optimize import OptimizeResult

from .._array_api import asarray_like, astype, norm, to_numpy
from ..curvature import DiagonalHessian
from ..optimize import minimize
from ._lbfgs import SLOW as _SLOW
from ._lbfgs import lbfgs, lbfgs_compiled
from ._newton_cholesky import newton_cholesky

__all__ = ["fit_auto"]

# L-BFGS iterations before its rate is judged, and the window the rate is taken over.
_WINDOW = 10
# Newton steps a solve from an L-BFGS point takes, and the passes over X a
# conjugate-gradient solve for one step costs (products and the gradient).
_NEWTON_STEPS = 6
_CG_PASSES = 15


# The dense Hessian of the binary loss on dense X costs about n_params / 8
# passes (one BLAS rank-k update); up to this many parameters it is cheaper
# than the CG iterations an ill-conditioned problem (the ones L-BFGS hands
# over) needs per Newton step.
_DENSE_MAX = 512


# Parameters up to which a fit on a cluster is Newton on the dense matrix from the start: any loss, and the
# binary loss on dense X (whose matrix is one BLAS rank-k update per partition).
_DISTRIBUTED_DENSE_MAX = 32
_DISTRIBUTED_BINARY_DENSE_MAX = 128
# On a cluster, L-BFGS iterations before its rate is judged (the Newton solve it is weighed against is a few
# rounds there, not tens of passes).
_DISTRIBUTED_WINDOW = 5


def _distributed_dense(loss):
    """Whether a fit on a cluster is Newton on the dense matrix from the
    start (see the module's notes)."""
    if loss.n_params <= _DISTRIBUTED_DENSE_MAX:
        return True
    return loss.n_outputs == 1 and not loss.sparse and loss.n_params <= _DISTRIBUTED_BINARY_DENSE_MAX


def _dense(loss):
    return loss.n_outputs == 1 and not loss.sparse and loss.n_params <= _DENSE_MAX


# Newton from the start while the Hessian's rank-one updates, n p^2 multiply-adds a pass, stay below this:
# then an iteration costs about what an L-BFGS one does, whose fixed cost per call dominates small fits.
# Measured: Newton ahead at 1000 x 10 (1.1 ms against 1.7), 10,000 x 10 and 3000 x 23; even at 10^5 x 10
# and 10^6 x 10; behind at 10,000 x 24 and 30,000 x 20 (10 ms against 7.6), where the updates cost more than
# the L-BFGS iterations they save.
_NEWTON_FROM_START_MAX = 1 << 22


def _fused_newton(loss, curvature):
    """Whether the fit is Newton from the start (:func:`newton_cholesky`):
    the gradient's pass can sum the Hessian (the binary loss on the numba
    kernels, at most 24 parameters), and those sums cost little (see
    :data:`_NEWTON_FROM_START_MAX`)."""
    fuses = getattr(loss, "_fuses", None)
    return (not loss.distributed and fuses is not None and fuses(curvature)
            and loss.n_samples * loss.n_params ** 2 <= _NEWTON_FROM_START_MAX)


def _newton_passes(loss):
    """The passes over ``X`` a Newton solve is expected to cost; on a
    cluster, the rounds: a step's gradient, and for the dense matrix (kept
    across steps, :class:`_LazyDense`) about two rounds of its own."""
    if loss.distributed:
        if _dense(loss):
            return _NEWTON_STEPS + 2.0 * _DISTRIBUTED_MATRIX_ROUNDS
        return _NEWTON_STEPS * (1.0 + _CG_PASSES)
    if _dense(loss):
        return _NEWTON_STEPS * (1.0 + loss.n_params / 8.0)
    return _NEWTON_STEPS * (1.0 + _CG_PASSES)


class _Slow(Exception):
    """L-BFGS is predicted to need more passes than Newton."""


class _Monitor:
    """The L-BFGS callback: raises :class:`_Slow` when the observed rate
    predicts more passes than a Newton solve."""

    def __init__(self, loss, tol, budget, window=_WINDOW):
        self.loss, self.tol, self.budget, self.window = loss, tol, budget, window
        self.history = []
        self.x = None
        self.start = loss.n_passes

    def __call__(self, x, gnorm):
        from .._kernels.cpu.glm_lbfgs import predicts_slow

        self.x = x
        self.history.append(gnorm)
        k = len(self.history)
        passes_per_iteration = (self.loss.n_passes - self.start) / k
        if predicts_slow(np.asarray(self.history), k, self.window, self.tol, passes_per_iteration, self.budget):
            raise _Slow


def fit_auto(loss, tol, max_iter, curvature, verbose=False):
    """Minimise ``loss`` to a gradient norm of ``tol`` by the rule of the
    module's notes, in at most ``max_iter`` iterations of both phases
    together; an ``OptimizeResult`` with ``x`` (an array of the loss's
    library, float64), ``jac``, ``nit`` (iterations of both phases),
    ``success``, ``message`` and ``solver`` (``"lbfgs"`` or
    ``"lbfgs+trust-region"``)."""
    xp = loss.xp
    w0 = astype(xp, loss.initial_params(), xp.float64)
    if loss.distributed and _distributed_dense(loss):
        res = _newton(loss, w0, loss.curvature(curvature, solver="dense"), tol, max_iter, verbose)
        res.solver = "trust-region"
        return res
    if _fused_newton(loss, curvature) and not verbose:
        res = newton_cholesky(loss, w0, tol, max_iter, curvature)
        res.solver = "newton-cholesky"
        if res.success or res.nit >= max_iter:
            return res
        # the bare iteration cannot go on from here: the trust region can
        nit = res.nit
        res = _newton(loss, res.x, loss.curvature(curvature, solver="dense"), tol, max_iter - nit, verbose)
        res.nit += nit
        res.solver = "newton-cholesky+trust-region"
        return res
    diagonal = to_numpy(loss.hessian_diagonal(w0))  # its gradient pass is L-BFGS's first
    # a feature that is zero in every sample (and no penalty) has no curvature: any finite scale will do
    root = np.sqrt(np.maximum(diagonal, 1e-12 * max(float(diagonal.max()), np.finfo(float).tiny)))
    # f carries the rounding noise of X's precision (the kernels take the parameters in it)
    precision = np.float32 if loss.dtype == xp.float32 else np.float64
    window = _DISTRIBUTED_WINDOW if loss.distributed else _WINDOW
    compiled = loss._compiled_lbfgs(root)
    if compiled is not None:  # the numba kernels: the whole run in one compiled call
        u, nit, status = lbfgs_compiled(loss, compiled, w0, root, tol, max_iter, precision, window,
                                        _newton_passes(loss))
    else:
        like = w0

        def w_of(u):
            return asarray_like(xp, u / root, like)

        def fun(u):
            value, g, _ = loss._point(w_of(u))  # the cached gradient: read here, never handed out
            g = to_numpy(g)
            return value, g / root, norm(np, g)

        monitor = _Monitor(loss, tol, _newton_passes(loss), window)
        try:
            res = lbfgs(fun, np.zeros_like(root), tol, max_iter, callback=monitor, dtype=precision)
            u, nit, status = res.x, res.nit, res.status
        except _Slow:
            u, nit, status = monitor.x, len(monitor.history), _SLOW
    w = asarray_like(xp, u / root, w0)
    if status == 0:
        value, g = loss.value_and_grad(w)
        return OptimizeResult(x=w, fun=value, jac=g, nit=nit, success=True, solver="lbfgs",
                              message="Optimization terminated successfully.")
    # Newton from L-BFGS's last iterate: where it is slow, and where it stopped short of tol
    res = _newton(loss, w, _newton_curvature(loss, curvature), tol, max(0, max_iter - nit), verbose)
    res.nit += nit
    res.solver = "lbfgs+trust-region"
    return res


def _newton(loss, w, model, tol, max_iter, verbose):
    """Trust-region Newton from ``w`` with the curvature ``model``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return minimize(loss.value_and_grad, w, jac=True, hess=model, method="trust-region",
                        options={"gtol": tol, "maxiter": max_iter, "disp": bool(verbose)})


# Parameters up to which the Newton phase may go over from products to the dense matrix.
_SWITCH_MAX = 1024


def _dense_cost(loss):
    """The dense matrix and its eigendecomposition, in Hessian-vector
    products: its rank-k updates cost about ``p / 8`` passes over ``X``,
    the decomposition ``p^3`` against a product's ``n p``."""
    p = loss.n_params
    return p / 8.0 + p * p / loss.n_samples


class _Forwarding:
    """A curvature model of the Newton phase that decides, at each point,
    which model answers: products, solves and trust steps go to
    ``self.inner``."""

    def matvec(self, v):
        return self.inner.matvec(v)

    def solve(self, v, shift=0.0):
        return self.inner.solve(v, shift=shift)

    def trust_step(self, g, radius):
        return self.inner.trust_step(g, radius)


class _ProductsThenDense(_Forwarding):
    """The Newton phase's curvature where the dense matrix is affordable but
    not chosen up front (the multinomial loss): products and CG, until CG
    spends more products at one point than the dense matrix costs (the
    Hessian of correlated features, whose condition CG pays for in
    iterations), then the dense matrix for the remaining points."""

    def __init__(self, products, dense, budget):
        self.products, self.dense, self.budget = products, dense, budget
        self.current = products
        self._mark = 0

    def update(self, x, g, **kwargs):
        if self.current is self.products and self.products.ncg - self._mark > self.budget:
            self.current = self.dense()
        self._mark = self.products.ncg
        return self.current.update(x, g, **kwargs)

    @property
    def inner(self):
        return self.current

    @property
    def ncg(self):
        return self.products.ncg

    @property
    def nfact(self):
        return getattr(self.current, "nfact", 0)


# A dense matrix is reused at the next point while the last step shrank the gradient at least this much.
_LAZY_CONTRACTION = 0.5
# Parameters beyond which the Newton phase reuses its dense matrix: fewer, and the gradient's pass sums it, or it
# costs a few passes.
_LAZY_MIN = 32
# On a cluster, a round with the matrix costs about this many gradient rounds (measured 4-6 at 150 to 250
# parameters, partitions of 12,500 to 50,000 rows: a round's fixed cost is shared).
_DISTRIBUTED_MATRIX_ROUNDS = 4.0


def _matrix_cost(loss):
    """The dense matrix (and its factorisation) in gradient evaluations:
    passes over ``X`` in memory, rounds on a cluster."""
    return _DISTRIBUTED_MATRIX_ROUNDS if loss.distributed else _dense_cost(loss)


class _LazyDense(_Forwarding):
    """The Newton phase's dense matrix, evaluated at one point and reused
    at the next ones ("lazy Hessians"), with its factorisation.

    The matrix of ``p`` parameters costs ``cost`` gradient evaluations
    (about ``p / 8`` passes over ``X``; on a cluster a round several times a
    gradient's); a step on a kept one costs one.  Near the solution, where
    the Newton phase starts from L-BFGS's point, the Hessian changes little
    between steps and a kept one still contracts the gradient fast.  At
    each new point the rate of the last step decides: the matrix is
    evaluated afresh when that step shrank the gradient less than
    :data:`_LAZY_CONTRACTION`, or when at that rate the steps still needed
    to reach the tolerance would cost more than a new matrix and a step.
    The first matrix comes in the gradient's pass (the dense model's
    request); after it, the gradients' passes leave it out, and a refresh
    computes it at its point.  Every decision depends on gradient norms
    only, so a fit is deterministic.

    References
    ----------
    .. [1] N. Doikov, E. M. Chayti and M. Jaggi, "Second-order optimization
       with lazy Hessians", ICML 2023.
    """

    def __init__(self, loss, dense, cost):
        self.loss, self.dense, self.cost = loss, dense, cost
        self.refreshes = 0
        self._gnorm = None

    def _due(self, gnorm, gtol):
        rate = gnorm / self._gnorm
        if rate > _LAZY_CONTRACTION:
            return True
        if not (gtol and 0.0 < rate and gtol < gnorm):
            return False
        # the kept matrix's steps still needed at this rate, against a new matrix and one step
        return math.log(gtol / gnorm) / math.log(rate) > self.cost + 1.0

    def update(self, x, g, **kwargs):
        gnorm = float(norm(self.loss.xp, g))
        if self._gnorm is None or self._due(gnorm, kwargs.get("gtol")):
            self.dense.update(x, g, **kwargs)
            self.refreshes += 1
        self._gnorm = gnorm
        self.loss._prefetch = None  # later gradients without the matrix

    @property
    def inner(self):
        return self.dense

    @property
    def nhev(self):
        return self.dense.nhev

    @property
    def nfact(self):
        return self.dense.nfact


def _newton_curvature(loss, curvature):
    """The Newton phase's curvature: the loss's dense matrix where it is
    cheap (reused across points beyond :data:`_LAZY_MIN` parameters), else
    products by CG preconditioned by the Hessian's diagonal at each point
    (a pass over ``X`` per point, saved many times over in CG iterations
    where the curvature of the features differs widely)."""
    if _dense(loss):
        dense = loss.curvature(curvature, solver="dense")
        return _LazyDense(loss, dense, _matrix_cost(loss)) if loss.n_params > _LAZY_MIN else dense
    products = loss.curvature(curvature, solver="cg", preconditioner=DiagonalHessian(loss.hessian_diagonal))
    if loss.n_params <= _SWITCH_MAX and not loss.sparse:
        def dense():
            return _LazyDense(loss, loss.curvature(curvature, solver="dense"), _matrix_cost(loss))

        return _ProductsThenDense(products, dense, _dense_cost(loss))
    return products

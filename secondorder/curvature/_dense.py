"""Dense Hessian model."""

import numpy as np

from .._array_api import array_min, cho_solve, cholesky, copy, diagonal, norm, trust_region_eig
from .._backend import get_namespace
from .._validation import check_output, check_positive, check_real, check_vector
from ._base import Curvature, NonFiniteCurvatureError, NotPositiveDefiniteError, NotUpdatedError

__all__ = ["DenseHessian"]

# An eigendecomposition costs about as much as this many Cholesky
# factorisations of the same matrix (measured 6x to 15x for n = 50..1000 with
# OpenBLAS).  Renting Choleskys until their cost reaches that of one eigh and
# then buying the eigh is the classic ski-rental rule: never more than about
# twice the cost of the better choice made in hindsight.
_EIGH_COST = 8
# Below this size a factorisation is dominated by call overhead, so one eigh
# serves every shift at once.
_SMALL = 16


class DenseHessian(Curvature):
    r"""A dense symmetric matrix ``H`` as a curvature model.

    Parameters
    ----------
    hess : callable or array_like
        ``hess(x, *args) -> (n, n) array``, evaluated lazily once per point
        given to :meth:`update`, or a constant matrix.
    args : tuple, optional
        Extra arguments passed to ``hess``.
    factorization : {"auto", "cholesky", "eigh"}, optional
        How shifted systems are solved.  ``"cholesky"`` factors
        ``H + shift I`` for each new shift (:math:`n^3/3` flops each);
        ``"eigh"`` computes ``H = Q \operatorname{diag}(w) Q^T`` once per point,
        after which any shift costs :math:`O(n^2)`:
        ``(H + \sigma I)^{-1} v = Q \operatorname{diag}(1/(w + \sigma)) Q^T v``.
        ``"auto"`` (default) uses eigh for small matrices and otherwise
        switches from Cholesky to eigh once the Choleskys spent at one point
        cost as much as one eigh.

    Notes
    -----
    ``trust_step`` first tries the Newton step with the Cholesky factor of
    ``H`` (enough when ``H`` is positive definite and the step is inside the
    region); otherwise it uses the eigendecomposition: in the eigenbasis the
    trust-region subproblem reduces to the secular equation
    :math:`\|(\operatorname{diag}(w) + \sigma I)^{-1} Q^T g\| = \Delta`, solved
    to machine precision, hard case included (Moré and Sorensen 1983).

    Only the lower triangle of ``H`` is read, as LAPACK does.

    References
    ----------
    .. [1] J. J. Moré and D. C. Sorensen, "Computing a trust region step",
       SIAM J. Sci. Stat. Comput. 4(3), 553-572, 1983.
    """

    def __init__(self, hess, args=(), factorization="auto"):
        if factorization not in ("auto", "cholesky", "eigh"):
            raise ValueError(
                f"`factorization` must be 'auto', 'cholesky' or 'eigh'; got {factorization!r}."
            )
        self._hess = hess
        self.args = tuple(args)
        self.factorization = factorization
        self.nhev = 0
        self.nfact = 0
        self.ncg = 0
        self._x = None
        self._H = None
        self._reset()
        if not callable(hess):
            xp = get_namespace(hess)
            H = xp.asarray(hess)
            self._xp = xp
            dtype = xp.float32 if H.dtype == xp.float32 else xp.float64
            self._H = self._checked(H, H.shape[0] if H.ndim else 0, dtype)

    def _reset(self):
        self._eig = None  # (w, Q)
        self._chol = None  # (shift, factor)
        self._nchol_here = 0
        self._proj = None  # (v, Q^T v) for the last right-hand side

    def _checked(self, H, n, dtype):
        H = check_output(H, (n, n), "hess", self._xp, dtype)
        if not bool(self._xp.all(self._xp.isfinite(H))):
            raise NonFiniteCurvatureError("`hess` returned NaN or inf values at the current point.")
        return H

    def update(self, x, g=None, **data):
        """Move to ``x``; the Hessian is evaluated when first needed."""
        self._x = x
        self._xp = get_namespace(x)
        self._reset()
        if callable(self._hess):
            self._H = None

    @property
    def matrix(self):
        """``H`` at the current point (evaluated on first access)."""
        if self._H is None:
            if self._x is None:
                raise NotUpdatedError()
            x = self._x
            self._H = self._checked(self._hess(copy(self._xp, x), *self.args), x.shape[0], x.dtype)
            self.nhev += 1
        return self._H

    def _vector(self, v, name="v"):
        H = self.matrix
        return check_vector(v, H.shape[0], name, self._xp, dtype=H.dtype)

    def matvec(self, v):
        return self.matrix @ self._vector(v)

    def diagonal(self):
        return diagonal(self._xp, self.matrix)

    def _eigh(self):
        if self._eig is None:
            w, Q = self._xp.linalg.eigh(self.matrix)
            self.nfact += 1
            self._eig = (w, Q)
        return self._eig

    def _project(self, v):
        # Q^T v is O(n^2); the solvers call solve() with the same gradient for
        # several shifts, so keep it for the last vector seen.
        if self._proj is None or self._proj[0] is not v:
            self._proj = (v, self._eig[1].T @ v)
        return self._proj[1]

    def _use_eigh(self):
        if self._eig is not None or self.factorization == "eigh":
            return True
        if self.factorization == "cholesky":
            return False
        return self.matrix.shape[0] <= _SMALL or self._nchol_here >= _EIGH_COST

    def solve(self, v, shift=0.0):
        r"""``(H + shift I)^{-1} v``.

        Raises
        ------
        NotPositiveDefiniteError
            When ``H + shift I`` is not positive definite.
        """
        shift = check_real(shift, "shift")
        v = self._vector(v)
        if self._use_eigh():
            w, Q = self._eigh()
            d = w + shift
            if not array_min(self._xp, d) > 0.0:
                raise NotPositiveDefiniteError(
                    f"H + {shift:g} I is not positive definite (smallest eigenvalue {array_min(self._xp, w):g})."
                )
            return Q @ (self._project(v) / d)
        if self._chol is None or self._chol[0] != shift:
            self._chol = (shift, _cholesky(self._xp, self.matrix, shift))
            self.nfact += 1
            self._nchol_here += 1
        return cho_solve(self._xp, self._chol[1], v)

    def trust_step(self, g, radius):
        r"""Exact minimiser of ``g.s + s.H.s/2`` over ``||s|| <= radius``,
        and whether it lies on the boundary."""
        radius = check_positive(radius, "radius")
        g = self._vector(g, "g")
        if not self._use_eigh():
            # Near a minimiser the Newton step is usually inside the region:
            # one Cholesky then settles it, at a fraction of an eigh's cost.
            try:
                s = -self.solve(g, 0.0)
            except NotPositiveDefiniteError:
                pass
            else:
                if norm(self._xp, s) <= radius:
                    return s, False
        w, Q = self._eigh()
        c, hits_boundary = trust_region_eig(self._xp, w, self._project(g), radius)
        return Q @ c, hits_boundary


def _cholesky(xp, H, shift):
    """A Cholesky factorisation of ``H + shift I`` (for ``cho_solve``), its
    failure as :class:`NotPositiveDefiniteError`."""
    try:
        return cholesky(xp, H, shift)
    except np.linalg.LinAlgError as exc:
        raise NotPositiveDefiniteError(f"H + {shift:g} I is not positive definite.") from exc

"""Matrix-free Hessian model: products only, solves by conjugate gradients."""

import math

from .._array_api import copy, norm
from .._backend import get_namespace
from .._validation import check_int, check_output, check_positive, check_real, check_vector
from ._base import Curvature, NonFiniteCurvatureError, NotPositiveDefiniteError, NotUpdatedError

__all__ = ["OperatorHessian"]

# CG stops once its residual is this fraction of the driver's gradient target.
_GTOL_FRACTION = 0.1


class OperatorHessian(Curvature):
    r"""A Hessian known only through products ``H v``.

    Parameters
    ----------
    hessp : callable, optional
        ``hessp(x, v, *args) -> H(x) v``, as in :func:`scipy.optimize.minimize`.
    args : tuple, optional
        Extra arguments passed to ``hessp``.
    operator : scipy.sparse.linalg.LinearOperator or sparse matrix, optional
        A fixed operator (for instance what a ``hess`` callable returned);
        exactly one of ``hessp`` and ``operator`` is given.
    rtol : float, optional
        Relative residual at which CG stops.  By default the forcing term
        :math:`\min(0.5, \sqrt{\|v\|})` of inexact Newton methods, which keeps
        the outer convergence superlinear (Nocedal and Wright, Thm. 7.2),
        loosened where the last (interior) step showed the outer iteration
        contracting slowly whatever the solve's accuracy: Eisenstat and
        Walker's :math:`|\|g_k\| - \|g_{k-1} + H s_{k-1}\|| / \|g_{k-1}\|`.
        When the driver passes its target gradient norm ``gtol`` to
        :meth:`update`, CG also stops once the residual is below
        ``0.1 * gtol``: with an exact Hessian the next gradient is about the
        residual, so a tighter solve buys nothing.
    maxiter : int, optional
        Cap on CG iterations per solve; default ``min(2 n, 1000)``.
    preconditioner : curvature model, optional
        A model ``M`` whose ``solve`` is cheap (a diagonal Fisher, M-FAC):
        CG becomes preconditioned CG with :math:`(M + \sigma I)^{-1}`, and the
        trust step becomes the preconditioned Steihaug method, whose trust
        region is the ellipsoid :math:`\|s\|_M \le \Delta` (Conn, Gould and
        Toint, Alg. 7.5.1).  It is updated with this model.

    Notes
    -----
    ``solve(v, shift)`` runs CG on the system :math:`(H + \sigma I) s = v`,
    warm-started from the previous solution for the same ``v`` at the same
    point (regularised methods solve with one gradient for several shifts).
    Non-positive curvature met along a CG direction proves that
    :math:`H + \sigma I` is not positive definite and raises
    :class:`NotPositiveDefiniteError`.

    ``trust_step`` is Steihaug's truncated CG: it stops at the boundary when a
    step leaves the ball and follows negative curvature to the boundary.

    References
    ----------
    .. [1] T. Steihaug, "The conjugate gradient method and trust regions in
       large scale optimization", SIAM J. Numer. Anal. 20(3), 626-637, 1983.
    .. [2] J. Nocedal and S. J. Wright, Numerical Optimization, 2nd ed.,
       Springer, 2006, Algorithms 5.2 and 7.2.
    .. [3] A. R. Conn, N. I. M. Gould and P. L. Toint, Trust-Region Methods,
       SIAM, 2000, Algorithm 7.5.1.
    """

    iterative = True  # solves by CG: each costs many products

    def __init__(self, hessp=None, args=(), operator=None, rtol=None, maxiter=None, preconditioner=None):
        if (hessp is None) == (operator is None):
            raise ValueError("give exactly one of `hessp` (a callable) and `operator`.")
        if hessp is not None and not callable(hessp):
            raise TypeError(f"`hessp` must be callable as hessp(x, v, *args); got {type(hessp).__name__}.")
        if operator is not None and not hasattr(operator, "dot") and not hasattr(operator, "matvec"):
            raise TypeError("`operator` must be a LinearOperator or a matrix with a matvec/dot method.")
        self._hessp = hessp
        self._operator = operator
        self.args = tuple(args)
        if rtol is not None:
            rtol = check_positive(rtol, "rtol")
            if not rtol < 1.0:
                raise ValueError(f"`rtol` must be in (0, 1): the CG residual relative to the right-hand side; got {rtol!r}.")
        self.rtol = rtol
        self.maxiter = None if maxiter is None else check_int(maxiter, "maxiter", minimum=1)
        self.nhev = 0
        self.nfact = 0
        self.ncg = 0
        if preconditioner is not None and not callable(getattr(preconditioner, "solve", None)):
            raise TypeError("`preconditioner` must be a curvature model with a solve(v, shift) method.")
        self.preconditioner = preconditioner
        self._x = None
        self._warm = None
        self._gtol = None
        self._eta = None  # the forcing term at this point, from the last step (Eisenstat and Walker)
        self._last = None  # (||g||, ||g + H s||, eta) of the last interior step: the model's predicted gradient

    def update(self, x, g=None, **data):
        self._x = x
        self._xp = get_namespace(x)
        self._warm = None
        self._gtol = data.get("gtol")
        self._eta = _forcing(self._last, None if g is None else norm(self._xp, g))
        self._last = None
        if self.preconditioner is not None:
            self.preconditioner.update(x, g, **data)

    def _precondition(self, r, shift=0.0, first=False):
        # A preconditioner that is not positive definite at this point (a
        # signed Hutchinson estimate, say) would break CG: that run goes
        # unpreconditioned instead, decided on its first application.
        if first:
            self._use_precond = self.preconditioner is not None
        if not self._use_precond:
            return r
        try:
            return self._xp.asarray(self.preconditioner.solve(r, shift), dtype=r.dtype)
        except NotPositiveDefiniteError:
            if not first:
                raise
            self._use_precond = False
            return r

    def _vector(self, v, name="v"):
        if self._x is None:
            raise NotUpdatedError()
        return check_vector(v, self._x.shape[0], name, self._xp, dtype=self._x.dtype)

    def matvec(self, v):
        return self._matvec(self._vector(v))

    def _matvec(self, v):
        if self._x is None:
            raise NotUpdatedError()
        x = self._x
        if self._hessp is not None:
            out = self._hessp(copy(self._xp, x), copy(self._xp, v), *self.args)
            name = "hessp"
        else:
            op = self._operator
            out = op.matvec(v) if hasattr(op, "matvec") else op.dot(v)
            name = "hess"
        self.nhev += 1
        return check_output(out, x.shape, name, self._xp, x.dtype)

    def _maxiter(self, n):
        return self.maxiter if self.maxiter is not None else min(2 * n, 1000)

    def _tol(self, vnorm):
        if self.rtol is not None:
            rtol = self.rtol
        else:
            # min(0.5, sqrt(||v||)) keeps the outer convergence superlinear; where the last step showed the
            # outer iteration contracting slowly whatever the solve's accuracy, a looser solve buys as much
            rtol = min(0.5, math.sqrt(vnorm))
            if self._eta is not None:
                rtol = max(rtol, self._eta)
        tol = rtol * vnorm
        if self._gtol is not None:
            # The next gradient is about the residual of the Newton system:
            # solving it far below the driver's target is wasted work.
            tol = max(tol, _GTOL_FRACTION * self._gtol)
        return tol

    def _product(self, p, shift):
        Ap = self._matvec(p)
        if shift:
            Ap = Ap + shift * p
        pAp = float(p @ Ap)
        if not math.isfinite(pAp):
            raise NonFiniteCurvatureError("the Hessian-vector product returned NaN or inf at the current point.")
        return Ap, pAp

    def solve(self, v, shift=0.0):
        r"""``(H + shift I)^{-1} v`` by (preconditioned) conjugate gradients."""
        shift = check_real(shift, "shift")
        v = self._vector(v)
        xp = self._xp
        vnorm = _checked_norm(xp, v, "v")
        if vnorm == 0.0:
            return xp.zeros_like(v)
        tol = self._tol(vnorm)
        if self._warm is not None and self._warm[0] is v:
            s = copy(xp, self._warm[1])
            r = v - (self._matvec(s) + shift * s)
        else:
            s = xp.zeros_like(v)
            r = copy(xp, v)
        y = self._precondition(r, shift, first=True)
        p = copy(xp, y)
        ry = float(r @ y)
        for _ in range(self._maxiter(v.shape[0])):
            if norm(xp, r) <= tol:
                break
            Ap, pAp = self._product(p, shift)
            self.ncg += 1
            if pAp <= 0.0:
                raise NotPositiveDefiniteError(
                    f"H + {shift:g} I is not positive definite (negative curvature met by CG)."
                )
            alpha = ry / pAp
            # s and r are this solve's own arrays: update them in place (a new
            # array where the library has no in-place operators, as JAX)
            s += alpha * p
            r -= alpha * Ap
            y = self._precondition(r, shift)
            ry_new = float(r @ y)
            p = y + (ry_new / ry) * p
            ry = ry_new
        self._warm = (v, s)
        return copy(xp, s)

    def trust_step(self, g, radius):
        r"""(Preconditioned) Steihaug-CG step for ``min g.s + s.H.s/2`` in the trust region.

        Sets ``hits_boundary``.  With a preconditioner the region is
        :math:`\|s\|_M \le \Delta`; the M-norms are carried by recurrences,
        so no product with ``M`` is needed.
        """
        radius = check_positive(radius, "radius")
        g = self._vector(g, "g")
        gnorm = _checked_norm(self._xp, g, "g")
        if gnorm == 0.0:
            return self._xp.zeros_like(g), False
        tol = self._tol(gnorm)
        self._last = None
        z, hits_boundary, rnorm = self._steihaug(g, float(radius), tol)
        if not hits_boundary:
            # an interior step: r = g + H z is the gradient the model predicts at x + z
            self._last = (gnorm, rnorm, tol / gnorm)
        return z, hits_boundary

    def _steihaug(self, g, radius, tol):
        """Steihaug's loop for :meth:`trust_step`: ``(z, hits_boundary,
        ||r||)``, ``r = g + H z`` the final residual (of interior steps)."""
        xp = self._xp
        z = xp.zeros_like(g)
        r = copy(xp, g)
        y = self._precondition(r, first=True)
        p = -y
        ry = float(r @ y)
        zMz, zMp, pMp = 0.0, 0.0, ry
        for _ in range(self._maxiter(g.shape[0])):
            Bp, pBp = self._product(p, 0.0)
            self.ncg += 1
            if pBp <= 0.0:
                return z + _to_boundary(zMz, zMp, pMp, radius) * p, True, None
            alpha = ry / pBp
            zMz_new = zMz + 2.0 * alpha * zMp + alpha * alpha * pMp
            if zMz_new >= radius * radius:
                return z + _to_boundary(zMz, zMp, pMp, radius) * p, True, None
            z = z + alpha * p
            r = r + alpha * Bp
            if norm(xp, r) < tol:
                break
            y = self._precondition(r)
            ry_new = float(r @ y)
            beta = ry_new / ry
            zMp = beta * (zMp + alpha * pMp)
            pMp = ry_new + beta * beta * pMp
            p = -y + beta * p
            zMz, ry = zMz_new, ry_new
        return z, False, norm(xp, r)


# Eisenstat and Walker's safeguard: the forcing term does not fall faster than the last one to this power, while
# that one is above _FORCING_SAFEGUARD; and it stays at most _FORCING_MAX.
_FORCING_POWER = (1.0 + math.sqrt(5.0)) / 2.0
_FORCING_SAFEGUARD = 0.1
_FORCING_MAX = 0.5


def _forcing(last, gnorm):
    r"""The forcing term at a new point from the last step, Eisenstat and
    Walker's first choice: :math:`\eta_k = |\|g_k\| - \|g_{k-1} + H_{k-1}
    s_{k-1}\|| / \|g_{k-1}\|`, how far the linear model's predicted
    gradient missed the actual one.  Where the outer iteration contracts
    slowly whatever the solve's accuracy (far from the quadratic region),
    a loose solve buys as much for fewer products; :meth:`OperatorHessian._tol`
    takes it where it is looser than the default
    :math:`\min(0.5, \sqrt{\|g\|})`, never tighter (on an ill-conditioned
    Hessian a tighter solve costs more products than it saves steps).  None
    without a record of the last step (the first point, a step on the
    trust region's boundary).

    References
    ----------
    .. [1] S. C. Eisenstat and H. F. Walker, "Choosing the forcing terms in
       an inexact Newton method", SIAM J. Sci. Comput. 17(1), 16-32, 1996.
    """
    if last is None or gnorm is None or not last[0] > 0.0:
        return None
    previous_norm, predicted, previous_eta = last
    eta = abs(gnorm - predicted) / previous_norm
    floor = previous_eta**_FORCING_POWER
    if floor > _FORCING_SAFEGUARD:
        eta = max(eta, floor)
    return min(eta, _FORCING_MAX)


# CG's inner products square the right-hand side's scale: beyond this norm they overflow float64, and beyond
# _MAX_NORM_SCALE times the square root of its dtype's largest number they overflow that dtype.
_MAX_NORM = 1e150
_MAX_NORM_SCALE = 1e-4


def _checked_norm(xp, v, name):
    vnorm = norm(xp, v)
    # the inner products are taken in v's dtype: float32 overflows from norms near 1e19
    limit = min(_MAX_NORM, _MAX_NORM_SCALE * math.sqrt(float(xp.finfo(v.dtype).max)))
    if vnorm > limit:
        raise ValueError(
            f"`{name}` is too large for conjugate gradients (norm {vnorm:.3g}: its inner products overflow "
            f"{v.dtype}); scale the problem down."
        )
    return vnorm


def _to_boundary(zz, zp, pp, radius):
    """The tau >= 0 with ||z + tau p|| = radius, from zz = ||z||^2, zp = <z, p>,
    pp = ||p||^2 (in whichever norm the region uses), z inside the region."""
    c = zz - radius * radius
    disc = math.sqrt(max(zp * zp - pp * c, 0.0))
    # Stable root of pp tau^2 + 2 zp tau + c = 0 with c <= 0.
    if zp >= 0.0:
        return -c / (zp + disc) if (zp + disc) > 0.0 else 0.0
    return (-zp + disc) / pp

"""Diagonal curvature models: the shared algebra of every diagonal estimate."""

import numpy as np

from .._array_api import array_min, copy, trust_region_eig
from .._backend import get_namespace
from .._validation import check_finite, check_nonnegative, check_output, check_positive, check_real, check_vector
from ._base import Curvature, NonFiniteCurvatureError, NotPositiveDefiniteError, NotUpdatedError

__all__ = ["DiagonalModel", "DiagonalHessian"]


class DiagonalModel(Curvature):
    r"""Base of the models :math:`H = \operatorname{diag}(d) + \text{damp}\, I`.

    Subclasses compute the estimate ``d`` in :meth:`_estimate` (lazily, once
    per point); everything else is shared:

    * ``matvec``: :math:`d \odot v`, O(n);
    * ``solve(v, shift)``: :math:`v / (d + \text{shift})`, O(n);
    * ``trust_step(g, radius)``: exact, since the standard basis is an
      eigenbasis of a diagonal matrix: the secular equation in ``d`` (the same
      kernel as the dense model's, with :math:`Q = I`), O(n) per Newton
      iteration on the multiplier.

    Parameters
    ----------
    damp : float
        Added to the estimate, >= 0.
    """

    def __init__(self, damp=0.0):
        self.damp = check_nonnegative(damp, "damp")
        self.nhev = 0
        self.nfact = 0
        self.ncg = 0
        self._x = None
        self._g = None
        self._d = None

    def update(self, x, g=None, **data):
        self._x = x
        self._g = g
        self._xp = get_namespace(x)
        self._d = None

    def _estimate(self):  # pragma: no cover - interface
        raise NotImplementedError

    def diagonal(self):
        """The damped diagonal at the current point."""
        if self._d is None:
            if self._x is None:
                raise NotUpdatedError("call update(x, g) before using the model.")
            d = self._estimate()
            if not bool(self._xp.all(self._xp.isfinite(d))):
                raise NonFiniteCurvatureError(f"{type(self).__name__}: the diagonal estimate holds NaN or inf.")
            self._d = d + self.damp if self.damp else d
            self._dmin = array_min(self._xp, self._d)  # kept: a preconditioner solves once per CG iteration
        return self._d

    def _vector(self, v, name="v"):
        d = self.diagonal()
        return check_vector(v, d.shape[0], name, self._xp, dtype=d.dtype)

    def matvec(self, v):
        return self.diagonal() * self._vector(v)

    def solve(self, v, shift=0.0):
        shift = check_real(shift, "shift")
        v = self._vector(v)
        d = self.diagonal()
        dmin = self._dmin + shift
        if not dmin > 0.0:
            raise NotPositiveDefiniteError(
                f"diag(d) + {float(shift):g} I is not positive definite (min entry {dmin:g})."
            )
        return v / (d + shift) if shift else v / d

    def trust_step(self, g, radius):
        radius = check_positive(radius, "radius")
        return trust_region_eig(self._xp, self.diagonal(), self._vector(g, "g"), radius)  # (step, on the boundary)


class DiagonalHessian(DiagonalModel):
    """A diagonal matrix given directly: ``diag(x, *args) -> (n,)`` or a
    constant vector (for instance the exact diagonal of a separable problem).
    """

    def __init__(self, diag, args=(), damp=0.0):
        super().__init__(damp)
        self._diag = diag
        self.args = tuple(args)
        if not callable(diag):
            check_finite(np.asarray(diag) if isinstance(diag, (list, tuple)) else diag, "diag")

    def _estimate(self):
        x = self._x
        if callable(self._diag):
            self.nhev += 1
            value = self._diag(copy(self._xp, x), *self.args)
        else:
            value = self._diag
        return check_output(value, x.shape, "diag", self._xp, x.dtype)

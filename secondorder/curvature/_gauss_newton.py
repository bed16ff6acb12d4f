"""Generalised Gauss-Newton model ``J^T W J``."""

import numpy as np

from .._array_api import copy
from .._backend import get_namespace, is_cupy
from .._validation import check_nonnegative
from ._base import Curvature, NotUpdatedError
from ._dense import DenseHessian
from ._operator import OperatorHessian

__all__ = ["GaussNewton"]


class GaussNewton(Curvature):
    r"""The generalised Gauss-Newton matrix :math:`J^T W J + \text{damp}\, I`.

    For :math:`f(x) = \phi(r(x))` with residuals :math:`r` and Jacobian
    :math:`J = \partial r / \partial x`, it keeps the curvature of the outer
    function, :math:`W = \nabla^2 \phi(r)`, and drops the terms with
    second derivatives of :math:`r`: positive semi-definite whenever
    :math:`\phi` is convex (least squares: :math:`W = I`; softmax
    cross-entropy: :math:`W = \operatorname{diag}(p) - p p^T`).

    Give either

    * ``jac(x, *args) -> (r, n)`` (a dense Jacobian): the model forms
      :math:`J^T W J` once per point and solves as a :class:`DenseHessian`;
    * or ``jvp(x, v, *args) -> J v`` and ``vjp(x, u, *args) -> J^T u``: the
      model is matrix-free and solves as an :class:`OperatorHessian`.

    Parameters
    ----------
    jac, jvp, vjp : callable
        See above.
    weights : callable, optional
        ``weights(x, *args)`` returning :math:`W` as a vector (diagonal) of
        length ``r`` or an ``(r, r)`` matrix; default identity.
    args : tuple, optional
        Extra arguments for every callable.
    damp : float, optional
        Added to the diagonal, >= 0.
    """

    def __init__(self, jac=None, jvp=None, vjp=None, weights=None, args=(), damp=0.0):
        if (jac is None) == (jvp is None and vjp is None):
            raise ValueError("give either `jac` or both `jvp` and `vjp`.")
        if jac is None and (jvp is None or vjp is None):
            raise ValueError("a matrix-free Gauss-Newton model needs both `jvp` and `vjp`.")
        for name, f in (("jac", jac), ("jvp", jvp), ("vjp", vjp), ("weights", weights)):
            if f is not None and not callable(f):
                raise TypeError(f"`{name}` must be callable; got {type(f).__name__}.")
        self._jac, self._jvp, self._vjp, self._weights = jac, jvp, vjp, weights
        self.args = tuple(args)
        self.damp = check_nonnegative(damp, "damp")
        self._inner = None
        self._counts = {"nhev": 0, "nfact": 0, "ncg": 0}

    def _retire(self):
        if self._inner is not None:
            for key in self._counts:
                self._counts[key] += getattr(self._inner, key, 0)

    def _count(self, key):
        return self._counts[key] + (getattr(self._inner, key, 0) if self._inner is not None else 0)

    nhev = property(lambda self: self._count("nhev"))
    nfact = property(lambda self: self._count("nfact"))
    ncg = property(lambda self: self._count("ncg"))

    def _W(self, x, xp):
        return None if self._weights is None else xp.asarray(self._weights(copy(xp, x), *self.args), dtype=x.dtype)

    def _apply_W(self, W, u):
        if W is None:
            return u
        return W * u if W.ndim == 1 else W @ u

    def update(self, x, g=None, **data):
        self._retire()
        xp = get_namespace(x)
        if self._jac is not None:
            self._inner = DenseHessian(lambda z: self._dense(z, xp))
        else:
            state = {}

            def hessp(z, v):
                if "W" not in state:
                    state["W"] = self._W(z, xp)
                Jv = self._jvp(z, v, *self.args)
                out = xp.asarray(self._vjp(z, self._apply_W(state["W"], Jv), *self.args), dtype=z.dtype)
                return out + self.damp * v if self.damp else out

            self._inner = OperatorHessian(hessp)
        self._inner.update(x, g)

    def _dense(self, x, xp):
        J = xp.asarray(self._jac(x, *self.args), dtype=x.dtype)
        if J.ndim != 2 or J.shape[1] != x.shape[0]:
            raise ValueError(f"`jac` returned shape {J.shape}, expected (n_residuals, {x.shape[0]}).")
        W = self._W(x, xp)
        if W is None:
            H = J.T @ J
        elif W.ndim == 1:
            H = J.T @ (W[:, None] * J)
        else:
            H = J.T @ (W @ J)
        if self.damp:
            if xp is np or is_cupy(xp):
                H[xp.arange(H.shape[0]), xp.arange(H.shape[0])] += self.damp
            else:  # the standard has no in-place update at integer indices
                H = H + self.damp * xp.eye(H.shape[0], dtype=H.dtype)
        return H

    def _model(self):
        if self._inner is None:
            raise NotUpdatedError()
        return self._inner

    @property
    def iterative(self):
        """Whether solves run CG (the matrix-free form)."""
        return bool(getattr(self._inner, "iterative", False))

    def matvec(self, v):
        return self._model().matvec(v)

    def solve(self, v, shift=0.0):
        return self._model().solve(v, shift)

    def trust_step(self, g, radius):
        return self._model().trust_step(g, radius)

    def diagonal(self):
        return self._model().diagonal()

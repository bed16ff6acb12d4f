"""Turning what ``minimize`` receives (``hess``, ``hessp``) into a model."""

import numpy as np

from .._array_api import copy
from .._backend import get_namespace
from .._validation import check_output
from ._base import Curvature, NotUpdatedError, is_curvature
from ._dense import DenseHessian
from ._operator import OperatorHessian

__all__ = ["as_curvature", "HessianCallable"]


def _is_operator(obj):
    import scipy.sparse
    from scipy.sparse.linalg import LinearOperator

    return isinstance(obj, LinearOperator) or scipy.sparse.issparse(obj) or type(obj).__module__.startswith(
        "cupyx.scipy.sparse"
    )


class HessianCallable(Curvature):
    """A ``hess`` callable whose return value decides the model.

    ``hess(x, *args)`` may return a dense array (a :class:`DenseHessian`), a
    :class:`scipy.sparse.linalg.LinearOperator` or sparse matrix (an
    :class:`OperatorHessian`), or a curvature model (used as it is, after
    ``update``).  The callable is evaluated lazily, once per point.
    """

    def __init__(self, hess, args=(), **model_options):
        self._hess = hess
        self.args = tuple(args)
        self._options = model_options
        self._x = None
        self._g = None
        self._model = None
        self._counts = {"nhev": 0, "nfact": 0, "ncg": 0}

    def _retire(self):
        if self._model is not None:
            for key in self._counts:
                self._counts[key] += getattr(self._model, key, 0)
            self._model = None

    def update(self, x, g=None, **data):
        self._retire()
        self._x, self._g, self._data = x, g, data

    @property
    def model(self):
        """The model at the current point (evaluates ``hess`` on first use)."""
        if self._model is None:
            if self._x is None:
                raise NotUpdatedError()
            H = self._hess(copy(get_namespace(self._x), self._x), *self.args)
            self._counts["nhev"] += 1
            if is_curvature(H):
                model = H
            elif _is_operator(H):
                model = OperatorHessian(operator=H, **self._options)
            else:
                x = self._x
                xp = get_namespace(x)
                try:
                    H = xp.asarray(H)  # in x's library, so that dtypes compare
                except Exception as exc:
                    raise TypeError(f"`hess` must return an array; got {type(H).__name__}.") from exc
                dtype = xp.float32 if H.dtype == xp.float32 else x.dtype
                H = check_output(H, (x.shape[0], x.shape[0]), "hess", xp, dtype)
                model = DenseHessian(H, **self._options)
            model.update(self._x, self._g, **self._data)
            self._model = model
        return self._model

    def _count(self, key):
        return self._counts[key] + (getattr(self._model, key, 0) if self._model is not None else 0)

    nhev = property(lambda self: self._count("nhev"), doc="Hessian evaluations and products.")
    nfact = property(lambda self: self._count("nfact"), doc="Matrix factorisations.")
    ncg = property(lambda self: self._count("ncg"), doc="Inner CG iterations.")

    def matvec(self, v):
        return self.model.matvec(v)

    def solve(self, v, shift=0.0):
        return self.model.solve(v, shift)

    def trust_step(self, g, radius):
        return self.model.trust_step(g, radius)

    def diagonal(self):
        return self.model.diagonal()


def as_curvature(hess=None, hessp=None, args=()):
    """The curvature model for ``minimize``'s ``hess``/``hessp`` arguments.

    Returns ``None`` when neither is given.  ``hess`` wins over ``hessp``,
    as in scipy.
    """
    if hess is not None:
        if is_curvature(hess):
            return hess
        if _is_operator(hess):  # before callable(): LinearOperator has __call__
            return OperatorHessian(operator=hess)
        if callable(hess):
            return HessianCallable(hess, args)
        if isinstance(hess, str):
            raise ValueError(
                f"`hess={hess!r}` is not supported: pass a callable returning the Hessian, "
                "`hessp`, or a curvature model from secondorder.curvature."
            )
        return DenseHessian(np.asarray(hess) if isinstance(hess, (list, tuple)) else hess)
    if hessp is not None:
        if not callable(hessp):
            raise TypeError(f"`hessp` must be callable as hessp(x, v, *args); got {type(hessp).__name__}.")
        return OperatorHessian(hessp, args)
    return None

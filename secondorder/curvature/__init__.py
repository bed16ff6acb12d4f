"""Curvature models: one protocol for every Hessian approximation.

See :mod:`secondorder.curvature._base` for the protocol.  Any object with
``update``, ``matvec``, ``solve`` and ``trust_step`` methods can be passed as
``hess`` to :func:`secondorder.minimize`.
"""

from ._base import Curvature, NonFiniteCurvatureError, NotPositiveDefiniteError, is_curvature
from ._callable import HessianCallable, as_curvature
from ._dense import DenseHessian
from ._operator import OperatorHessian

__all__ = [
    "Curvature",
    "DenseHessian",
    "OperatorHessian",
    "HessianCallable",
    "as_curvature",
    "is_curvature",
    "NotPositiveDefiniteError",
    "NonFiniteCurvatureError",
]

"""Curvature models: one protocol for every Hessian approximation.

Every model implements ``update(x, g)``, ``matvec(v)``, ``solve(v, shift)``,
``trust_step(g, radius)`` and, where cheap, ``diagonal()`` (see
:mod:`secondorder.curvature._base`).  Any object with those methods can be
passed as ``hess`` to :func:`secondorder.minimize`, and every method works
with every model.
"""

from ._base import Curvature, NonFiniteCurvatureError, NotPositiveDefiniteError, NotUpdatedError, is_curvature
from ._callable import HessianCallable, as_curvature
from ._dense import DenseHessian
from ._diagonal import DiagonalHessian, DiagonalModel
from ._fisher import DiagonalFisher
from ._gauss_newton import GaussNewton
from ._hutchinson import HutchinsonDiagonal
from ._mfac import MFAC, MFACStatic
from ._operator import OperatorHessian

__all__ = [
    "Curvature",
    "DenseHessian",
    "OperatorHessian",
    "HessianCallable",
    "DiagonalModel",
    "DiagonalHessian",
    "DiagonalFisher",
    "HutchinsonDiagonal",
    "MFAC",
    "MFACStatic",
    "GaussNewton",
    "as_curvature",
    "is_curvature",
    "NotPositiveDefiniteError",
    "NonFiniteCurvatureError",
    "NotUpdatedError",
]

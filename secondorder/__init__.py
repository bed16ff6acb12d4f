"""secondorder: second-order optimisation for scientific Python.

``minimize`` follows :func:`scipy.optimize.minimize`; the curvature models
live in :mod:`secondorder.curvature`.
"""

from . import curvature, linear_model, optimize, ot, stochastic
from ._backend import backend, set_backend
from .optimize import OptimizeResult, minimize

__version__ = "0.1.0.dev0"

__all__ = [
    "minimize",
    "OptimizeResult",
    "set_backend",
    "backend",
    "curvature",
    "linear_model",
    "optimize",
    "ot",
    "stochastic",
    "__version__",
]

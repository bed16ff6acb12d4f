"""The curvature protocol shared by every second-order method.

A curvature model stands for a symmetric matrix ``H`` (an exact Hessian, a
Gauss-Newton or Fisher approximation, a diagonal or low-rank model) at the
current point.  Solvers talk to it only through:

``update(x, g, **data)``
    move the model to a new accepted point (lazy: nothing is evaluated until
    a product or a solve needs it, so a rejected trial point never costs a
    Hessian evaluation).  The drivers pass ``gtol``, their target gradient
    norm, which iterative models use to stop their inner solves; models
    ignore the data they have no use for;
``matvec(v)``
    ``H v``;
``solve(v, shift=0.0)``
    ``(H + shift I)^{-1} v``; raises :class:`NotPositiveDefiniteError` when
    ``H + shift I`` is not positive definite;
``trust_step(g, radius)``
    ``(s, hits_boundary)``: a minimiser ``s`` of ``g.s + s.H.s/2`` subject to
    ``||s|| <= radius``, and whether it lies on the boundary (as scipy's
    trust-region subproblems report it; the driver widens the region only
    then).  A model that returns the step alone still works: the driver then
    takes a step of length at least ``0.99 radius`` as on the boundary;
``diagonal()``
    the diagonal of ``H`` where it is cheap.

Counters ``nhev`` (Hessian evaluations or Hessian-vector products),
``nfact`` (matrix factorisations) and ``ncg`` (inner iterations of an
iterative solver) let the drivers report the work done.
"""

import numpy as np

__all__ = [
    "Curvature",
    "NotPositiveDefiniteError",
    "NonFiniteCurvatureError",
    "is_curvature",
]


class NotPositiveDefiniteError(np.linalg.LinAlgError):
    """``H + shift I`` is not positive definite, so the shifted solve has no
    descent meaning.  Regularised methods react by increasing the shift."""


class NotUpdatedError(ValueError, RuntimeError):
    """A model was used before :meth:`Curvature.update` gave it a point.  A
    ``ValueError`` (the model is not ready for the arguments it was given)
    and a ``RuntimeError`` (the order of calls), as scikit-learn's
    ``NotFittedError`` is a ``ValueError``."""

    def __init__(self, message="call update(x) before using the model."):
        super().__init__(message)


class NonFiniteCurvatureError(ValueError, ArithmeticError):
    """The Hessian (or its product with a vector) holds NaN or inf at the
    current point; no shift repairs that.  A ``ValueError`` (what a user's
    callable returned is invalid), and an ``ArithmeticError`` as before."""


class Curvature:
    """Base class of the curvature models; see the module docstring.

    Subclasses implement ``update``, ``matvec``, ``solve`` and
    ``trust_step``; ``diagonal`` is optional.
    """

    nhev = 0
    nfact = 0
    ncg = 0

    def update(self, x, g=None, **data):  # pragma: no cover - interface
        raise NotImplementedError

    def matvec(self, v):  # pragma: no cover - interface
        raise NotImplementedError

    def solve(self, v, shift=0.0):  # pragma: no cover - interface
        raise NotImplementedError

    def trust_step(self, g, radius):  # pragma: no cover - interface
        raise NotImplementedError

    def diagonal(self):
        raise NotImplementedError(f"{type(self).__name__} has no cheap diagonal.")


def is_curvature(obj):
    """Whether ``obj`` follows the curvature protocol (duck-typed, so models
    written outside the package work too)."""
    return all(callable(getattr(obj, name, None)) for name in ("update", "matvec", "solve", "trust_step"))

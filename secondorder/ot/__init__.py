"""Entropic optimal transport with POT's conventions.

``sinkhorn(a, b, M, reg, method="sns")`` and ``sinkhorn2`` take the
arguments of ``ot.sinkhorn`` / ``ot.sinkhorn2``; the solvers are
Sinkhorn-Newton-Sparse (:func:`sinkhorn_newton_sparse`), log-domain Sinkhorn
(:func:`sinkhorn_log`), stabilised scaling iterations
(:func:`sinkhorn_stabilized`), epsilon scaling
(:func:`sinkhorn_epsilon_scaling`) and Greenkhorn (:func:`greenkhorn`).  :func:`dist` and :func:`grid_cost` build cost
matrices; :class:`GridCost` is a grid's cost without the matrix, for
passes of :math:`O(n^{1.5})`.
"""

from ._cost import GridCost, dist, grid_cost
from ._epsilon_scaling import sinkhorn_epsilon_scaling
from ._greenkhorn import greenkhorn
from ._scaling import sinkhorn_stabilized
from ._sinkhorn import sinkhorn, sinkhorn2
from ._sinkhorn_log import sinkhorn_log
from ._sns import sinkhorn_newton_sparse

__all__ = [
    "sinkhorn",
    "sinkhorn2",
    "sinkhorn_log",
    "sinkhorn_stabilized",
    "sinkhorn_epsilon_scaling",
    "greenkhorn",
    "sinkhorn_newton_sparse",
    "dist",
    "grid_cost",
    "GridCost",
]

"""Dropping the first row and column of a Cholesky factor, on the GPU; see
the fallback module for the rotations.

The ``n - 1`` rotations are sequential, each an update of the rest of a row:
one block whose threads share the columns, a barrier between rotations.
:math:`O(n^2)` work in :math:`O(n)` steps, on the device where the factor
lives (no copy of the m x m factor to the host).
"""

import math

from ..._backend import get_namespace
from ._cuda import TPB, cuda

__all__ = ["chol_drop_first_upper"]


@cuda.jit
def _drop_first(U, x, n):
    t = cuda.threadIdx.x
    for j in range(t, n - 1, TPB):
        x[j] = U[0, j + 1]
    cuda.syncthreads()
    for k in range(n - 1):
        ukk = U[k + 1, k + 1]
        xk = x[k]
        r = math.sqrt(ukk * ukk + xk * xk)
        c = r / ukk
        s = xk / ukk
        cuda.syncthreads()  # every thread has read x[k] before it changes
        if t == 0:
            U[k, k] = r
        for j in range(k + 1 + t, n - 1, TPB):
            row = (U[k + 1, j + 1] + s * x[j]) / c
            x[j] = c * x[j] - s * row
            U[k, j] = row
        cuda.syncthreads()


def chol_drop_first_upper(U, n):
    r"""Factor of ``A[1:n, 1:n]`` from the upper factor ``U[:n, :n]`` of
    ``A``, written into ``U[:n-1, :n-1]``."""
    xp = get_namespace(U)
    _drop_first[1, TPB](U, xp.empty(max(n - 1, 1), dtype=U.dtype), n)
    return U

"""Dropping the first row and column of a Cholesky factor (numba); see the
fallback's docstring for the algorithm."""

import math

import numpy as np

from ..._backend import jit


@jit
def chol_drop_first_upper(U, n):
    x = np.empty(n - 1, dtype=U.dtype)
    for j in range(n - 1):
        x[j] = U[0, j + 1]
    for k in range(n - 1):
        ukk = U[k + 1, k + 1]
        xk = x[k]
        r = math.sqrt(ukk * ukk + xk * xk)
        c = r / ukk
        s = xk / ukk
        U[k, k] = r
        # Row k + 1 is read and row k written left to right, both contiguous
        # in C order; row k + 1 is overwritten only at the next k.
        for i in range(k + 1, n - 1):
            u = (U[k + 1, i + 1] + s * x[i]) / c
            x[i] = c * x[i] - s * u
            U[k, i] = u
    return U

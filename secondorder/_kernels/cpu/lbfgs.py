"""The L-BFGS two-loop recursion (numba): the same result as
:func:`secondorder._kernels.fallback.lbfgs.lbfgs_direction` in one call,
where the NumPy version makes four calls per pair (about 40 µs a direction
with ten pairs, more than a small problem's pass over its data)."""

import numpy as np

from ..._backend import jit

__all__ = ["lbfgs_direction"]


@jit
def lbfgs_direction(S, Y, rho, newest, count, g):
    m, p = S.shape
    q = g.astype(np.float64)
    a = np.empty(max(count, 1))
    for i in range(count):
        j = (newest - i) % m
        t = 0.0
        for k in range(p):
            t += S[j, k] * q[k]
        a[i] = rho[j] * t
        for k in range(p):
            q[k] -= a[i] * Y[j, k]
    if count > 0:
        sy = 0.0
        yy = 0.0
        for k in range(p):
            sy += S[newest, k] * Y[newest, k]
            yy += Y[newest, k] * Y[newest, k]
        gamma = sy / yy
        for k in range(p):
            q[k] *= gamma
    for i in range(count - 1, -1, -1):
        j = (newest - i) % m
        t = 0.0
        for k in range(p):
            t += Y[j, k] * q[k]
        c = a[i] - rho[j] * t
        for k in range(p):
            q[k] += c * S[j, k]
    for k in range(p):
        q[k] = -q[k]
    return q

r"""The L-BFGS two-loop recursion (NumPy reference).

With the ``count`` latest pairs :math:`s_i = x_{i+1} - x_i`,
:math:`y_i = g_{i+1} - g_i` in the rows of ``S`` and ``Y`` (a ring buffer:
the newest in row ``newest``, older ones before it, cyclically) and
:math:`\rho_i = 1 / s_i^T y_i`, the direction is :math:`-H g`, where
:math:`H` is the inverse-Hessian approximation that the pairs update from
:math:`\gamma I`, :math:`\gamma = s^T y / y^T y` of the newest pair
(Nocedal and Wright, Numerical Optimization, 2nd ed., Algorithm 7.4):

1. newest to oldest: :math:`a_i = \rho_i s_i^T q`, :math:`q \leftarrow q - a_i y_i`;
2. :math:`r = \gamma q`;
3. oldest to newest: :math:`b = \rho_i y_i^T r`, :math:`r \leftarrow r + (a_i - b) s_i`.

With no pair, the direction is :math:`-g`.
"""

import numpy as np


def lbfgs_direction(S, Y, rho, newest, count, g):
    m = S.shape[0]
    q = np.array(g, dtype=np.float64)
    order = [(newest - i) % m for i in range(count)]
    a = np.empty(count)
    for i, j in enumerate(order):
        a[i] = rho[j] * (S[j] @ q)
        q -= a[i] * Y[j]
    if count:
        q *= (S[newest] @ Y[newest]) / (Y[newest] @ Y[newest])
    for i in range(count - 1, -1, -1):
        j = order[i]
        q += (a[i] - rho[j] * (Y[j] @ q)) * S[j]
    return -q

"""Dropping the first row and column of a Cholesky factor (array-API reference)."""

from ..._array_api import copy
from ..._backend import get_namespace


def chol_drop_first_upper(U, n):
    r"""Factor of ``A[1:n, 1:n]`` from the upper factor ``U[:n, :n]`` of ``A``.

    With :math:`U = \begin{pmatrix} u_{11} & u_{12}^T \\ 0 & U_{22} \end{pmatrix}`,
    :math:`A_{22} = U_{22}^T U_{22} + u_{12} u_{12}^T`: a rank-one *update*
    of :math:`U_{22}`, done by Givens rotations that fold :math:`u_{12}` into
    the diagonal (only sums of squares under the root: backward stable).
    The new factor is written into ``U[:n-1, :n-1]`` in the same pass, row
    ``k`` from old row ``k + 1``, so no copy of the matrix is needed.
    :math:`O(n^2)`.
    """
    x = copy(get_namespace(U), U[0, 1:n])
    for k in range(n - 1):
        ukk = float(U[k + 1, k + 1])
        xk = float(x[k])
        r = (ukk * ukk + xk * xk) ** 0.5
        c = r / ukk
        s = xk / ukk
        U[k, k] = r
        if k + 1 < n - 1:
            row = (U[k + 1, k + 2 : n] + s * x[k + 1 :]) / c
            x[k + 1 :] = c * x[k + 1 :] - s * row
            U[k, k + 1 : n - 1] = row
    return U

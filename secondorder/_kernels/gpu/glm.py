"""CUDA kernels of the GLM losses; see the fallback module for the
definitions.

On the GPU the products with ``X`` are the BLAS's (cuBLAS, or cuSPARSE for a
CSR ``X``): ``X @ coef`` and ``X^T r`` read ``X`` at the device's bandwidth.
What lies between them, the per-sample loss, residual and curvature weight
(and, for softmax, the probabilities of every class), is one kernel with a
thread per sample, in float64 whatever the dtype of ``X``, instead of the
dozen element-wise array operations (each a pass over n x K values) of the
generic code.
"""

import math

from ..._backend import get_namespace, is_cupy
from ..fallback.glm import gram_matvec
from ._cuda import TPB, blocks, cuda

__all__ = [
    "logistic_grad",
    "logistic_grad_csr",
    "gram_matvec_csr",
    "softmax_grad",
    "softmax_grad_csr",
    "softmax_hessp",
    "softmax_hessp_csr",
]


def _csr(data, indices, indptr, d):
    xp = get_namespace(data)
    if is_cupy(xp):
        import cupyx.scipy.sparse as sparse
    else:
        import scipy.sparse as sparse
    return sparse.csr_matrix((data, indices, indptr), shape=(indptr.shape[0] - 1, d))


def _float64(xp, a):
    return a if a.dtype == xp.float64 else a.astype(xp.float64)


# ----------------------------------------------------------------- logistic
@cuda.jit
def _logistic_terms(z, y, sw, r, h, loss):
    i = cuda.grid(1)
    if i < z.shape[0]:
        zi, yi, si = z[i], y[i], sw[i]
        # stable for any margin: everything from e = exp(-|z|) <= 1
        e = math.exp(-abs(zi))
        p = 1.0 / (1.0 + e) if zi >= 0 else e / (1.0 + e)
        loss[i] = si * (max(zi, 0.0) + math.log1p(e) - yi * zi)
        r[i] = si * (p - yi)
        h[i] = si * e / ((1.0 + e) * (1.0 + e))


def logistic_grad(X, y, sw, coef, b, r_out, h_out):
    """Loss sum, gradient sum ``X^T r``; fills ``r`` and ``h`` per sample."""
    xp = get_namespace(r_out)
    z = _float64(xp, X @ coef + b)
    loss = xp.empty(z.shape[0])
    _logistic_terms[blocks(z.shape[0]), TPB](z, y, sw, r_out, h_out, loss)
    return float(loss.sum()), X.T @ r_out.astype(X.dtype, copy=False)


def logistic_grad_csr(data, indices, indptr, d, y, sw, coef, b, r_out, h_out):
    return logistic_grad(_csr(data, indices, indptr, d), y, sw, coef, b, r_out, h_out)


def gram_matvec_csr(data, indices, indptr, d, w, v, vb):
    return gram_matvec(_csr(data, indices, indptr, d), w, v, vb)


# ------------------------------------------------------------------ softmax
@cuda.jit
def _softmax_terms(Z, y, sw, P, R, loss):
    i = cuda.grid(1)
    n, K = Z.shape
    if i >= n:
        return
    zmax = -math.inf
    for c in range(K):
        zmax = max(zmax, Z[i, c])
    s = 0.0
    for c in range(K):
        e = math.exp(Z[i, c] - zmax)
        P[i, c] = e
        s += e
    si, yi = sw[i], y[i]
    loss[i] = si * (zmax + math.log(s) - Z[i, yi])
    for c in range(K):
        p = P[i, c] / s
        P[i, c] = p
        R[i, c] = si * p
    R[i, yi] -= si


def softmax_grad(X, y, sw, coef, b, P_out):
    """Loss sum and gradient sum ``R^T X``, ``R = sw (P - Y)``; fills ``P``.
    Returns ``(loss, grad, grad_b)``."""
    xp = get_namespace(P_out)
    Z = _float64(xp, X @ coef.T + b)
    R = xp.empty_like(Z)
    loss = xp.empty(Z.shape[0])
    _softmax_terms[blocks(Z.shape[0]), TPB](Z, y, sw, P_out, R, loss)
    return float(loss.sum()), (X.T @ R.astype(X.dtype, copy=False)).T, R.sum(axis=0)


def softmax_grad_csr(data, indices, indptr, d, y, sw, coef, b, P_out):
    return softmax_grad(_csr(data, indices, indptr, d), y, sw, coef, b, P_out)


@cuda.jit
def _softmax_curvature(y, sw, P, U, mode):
    # U is overwritten with the rows of R (mode 0: Hessian, 1: Gauss-Newton, 2: empirical Fisher)
    i = cuda.grid(1)
    n, K = P.shape
    if i >= n:
        return
    si = sw[i]
    if mode == 0:
        pu = 0.0
        for c in range(K):
            pu += P[i, c] * U[i, c]
        for c in range(K):
            U[i, c] = si * P[i, c] * (U[i, c] - pu)
    elif mode == 1:
        for c in range(K):
            U[i, c] = si * P[i, c] * U[i, c]
    else:
        yi = y[i]
        gu = 0.0
        for c in range(K):
            gu += (P[i, c] - (1.0 if c == yi else 0.0)) * U[i, c]
        for c in range(K):
            U[i, c] = si * (P[i, c] - (1.0 if c == yi else 0.0)) * gu


def softmax_hessp(X, y, sw, P, V, vb, mode):
    """Curvature product at ``P`` along ``(V, vb)``: ``(R^T X, R.sum(0))``,
    ``mode`` 0 (Hessian), 1 (Gauss-Newton) or 2 (empirical Fisher)."""
    xp = get_namespace(P)
    R = _float64(xp, X @ V.T + vb)  # a new array, which the kernel overwrites with R
    _softmax_curvature[blocks(R.shape[0]), TPB](y, sw, P, R, int(mode))
    return (X.T @ R.astype(X.dtype, copy=False)).T, R.sum(axis=0)


def softmax_hessp_csr(data, indices, indptr, d, y, sw, P, V, vb, mode):
    return softmax_hessp(_csr(data, indices, indptr, d), y, sw, P, V, vb, mode)

"""Reference versions of the GLM kernels, in the Python array API standard
(NumPy, CuPy, PyTorch, array-api-strict...).

Binary logistic loss with labels ``y`` in {0, 1}, weights ``sw`` and linear
predictor ``z = X coef + b``:

.. math::

    \\ell_i = \\log(1 + e^{z_i}) - y_i z_i, \\qquad
    r_i = s_i (p_i - y_i), \\qquad h_i = s_i p_i (1 - p_i),
    \\qquad p_i = \\sigma(z_i).

Multinomial (softmax) loss with integer labels ``y`` in ``0..K-1``,
``Z = X coef^T + b``:

.. math::

    \\ell_i = \\operatorname{logsumexp}(Z_i) - Z_{i y_i}, \\qquad
    P_i = \\operatorname{softmax}(Z_i).

Every kernel returns sums over the samples (the caller divides by the total
weight) and accepts a dense ``X`` (any order) or, for the ``*_csr``
variants, the three arrays of a CSR matrix.
"""

import scipy.sparse

from ..._array_api import astype, concat, one_hot
from ..._backend import get_namespace

__all__ = [
    "gram_matvec",
    "gram_matvec_csr",
    "logistic_grad",
    "logistic_grad_csr",
    "logistic_grad_gram",
    "logistic_grad_squares",
    "logistic_grad_squares_csr",
    "softmax_grad",
    "softmax_grad_csr",
    "softmax_hessp",
    "softmax_hessp_csr",
]


def _csr(data, indices, indptr, d):
    return scipy.sparse.csr_matrix((data, indices, indptr), shape=(indptr.shape[0] - 1, d))


def _logistic_terms(xp, z, y, sw, r_out, h_out):
    # log(1 + e^z) = max(z, 0) + log1p(e^{-|z|}); sigma(z) from e^{-|z|} too,
    # so nothing overflows for large margins.
    e = xp.exp(-xp.abs(z))
    loss = xp.clip(z, min=0.0) + xp.log1p(e) - y * z
    p = xp.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    r_out[...] = sw * (p - y)
    h_out[...] = sw * (e / ((1.0 + e) * (1.0 + e)))
    return float(xp.sum(sw * loss))


def logistic_grad(X, y, sw, coef, b, r_out, h_out):
    """Loss sum, gradient sum ``X^T r``; fills ``r`` and ``h`` per sample."""
    xp = get_namespace(r_out)
    z = astype(xp, X @ coef + b, xp.float64)
    loss = _logistic_terms(xp, z, y, sw, r_out, h_out)
    return loss, X.T @ astype(xp, r_out, X.dtype)


def logistic_grad_csr(data, indices, indptr, d, y, sw, coef, b, r_out, h_out):
    return logistic_grad(_csr(data, indices, indptr, d), y, sw, coef, b, r_out, h_out)


def logistic_grad_gram(X, y, sw, coef, b, r_out, h_out):
    """As :func:`logistic_grad`, and the weighted Gram matrix
    ``[X 1]^T diag(h) [X 1]`` of the same pass (dense ``X``), the binary
    loss's Hessian sum: ``(loss, gradient, G)``."""
    xp = get_namespace(r_out)
    loss, g = logistic_grad(X, y, sw, coef, b, r_out, h_out)
    X = astype(xp, X, xp.float64)
    Xh = X * h_out[:, None]
    top = X.T @ Xh
    column = xp.sum(Xh, axis=0)
    corner = xp.reshape(xp.sum(h_out), (1,))
    return loss, g, concat(xp, [concat(xp, [top, column[:, None]], axis=1), concat(xp, [column, corner])[None, :]])


def logistic_grad_squares(X, y, sw, coef, b, r_out, h_out):
    """As :func:`logistic_grad`, and the Hessian's diagonal sums
    ``sum_i h_i x_ij^2`` of the same pass: ``(loss, gradient, squares)``."""
    xp = get_namespace(r_out)
    loss, g = logistic_grad(X, y, sw, coef, b, r_out, h_out)
    X = astype(xp, X, xp.float64)
    return loss, g, (X * X).T @ h_out


def logistic_grad_squares_csr(data, indices, indptr, d, y, sw, coef, b, r_out, h_out):
    loss, g = logistic_grad_csr(data, indices, indptr, d, y, sw, coef, b, r_out, h_out)
    data = astype(get_namespace(r_out), data, r_out.dtype)
    return loss, g, _csr(data * data, indices, indptr, d).T @ h_out


def gram_matvec(X, w, v, vb):
    """``(X^T (w * u), sum(w * u))`` with ``u = X v + vb``."""
    xp = get_namespace(w)
    u = w * astype(xp, X @ v + vb, w.dtype)
    return X.T @ astype(xp, u, X.dtype), float(xp.sum(u))


def gram_matvec_csr(data, indices, indptr, d, w, v, vb):
    return gram_matvec(_csr(data, indices, indptr, d), w, v, vb)


def csr_matvec(data, indices, indptr, d, x):
    """``S x`` for the CSR matrix ``S`` (n x d) of ``(data, indices, indptr)``."""
    return _csr(data, indices, indptr, d) @ x


def csr_rmatvec(data, indices, indptr, d, y, square=False):
    """``S^T y`` (length d) for the CSR matrix ``S`` of ``csr_matvec``;
    with ``square``, of its entries squared."""
    return _csr(data * data if square else data, indices, indptr, d).T @ y


def softmax_grad(X, y, sw, coef, b, P_out):
    """Loss sum and gradient sum ``R^T X`` (shape ``coef``), ``R = sw (P - Y)``;
    fills ``P``.  Returns ``(loss, grad, grad_b)``."""
    xp = get_namespace(P_out)
    Z = astype(xp, X @ coef.T + b, xp.float64)
    zmax = xp.max(Z, axis=1, keepdims=True)
    E = xp.exp(Z - zmax)
    s = xp.sum(E, axis=1, keepdims=True)
    P_out[...] = E / s
    Y = one_hot(xp, y, Z.shape[1], Z.dtype)
    loss = float(xp.sum(sw * (zmax[:, 0] + xp.log(s[:, 0]) - xp.sum(Z * Y, axis=1))))
    R = (P_out - Y) * sw[:, None]
    return loss, (X.T @ astype(xp, R, X.dtype)).T, xp.sum(R, axis=0)


def softmax_grad_csr(data, indices, indptr, d, y, sw, coef, b, P_out):
    return softmax_grad(_csr(data, indices, indptr, d), y, sw, coef, b, P_out)


def softmax_hessp(X, y, sw, P, V, vb, mode):
    """Curvature product at probabilities ``P`` along ``(V, vb)``, with
    ``U = X V^T + vb``:

    * ``mode=0``, Hessian: ``R = sw P * (U - sum(P * U))``;
    * ``mode=1``, weighted Gauss-Newton: ``R = sw P * U`` (drops the
      ``-p p^T`` term, so it dominates the Hessian);
    * ``mode=2``, empirical Fisher: ``R = sw G (G . U)``, ``G = P - Y``.

    Returns ``(R^T X, R.sum(0))``.
    """
    xp = get_namespace(P)
    U = astype(xp, X @ V.T + vb, xp.float64)
    if mode == 0:
        R = P * (U - xp.sum(P * U, axis=1, keepdims=True))
    elif mode == 1:
        R = P * U
    else:
        G = P - one_hot(xp, y, P.shape[1], P.dtype)
        R = G * xp.sum(G * U, axis=1, keepdims=True)
    R = R * sw[:, None]
    return (X.T @ astype(xp, R, X.dtype)).T, xp.sum(R, axis=0)


def softmax_hessp_csr(data, indices, indptr, d, y, sw, P, V, vb, mode):
    return softmax_hessp(_csr(data, indices, indptr, d), y, sw, P, V, vb, mode)

"""Steihaug's truncated conjugate gradients on the fused GLM products,
compiled whole (numba).

The same iteration as :meth:`secondorder.curvature.OperatorHessian.
trust_step`, step for step (the tests hold the two to the same steps), for
the Hessian products of the binary and multinomial losses on an ``X``
(dense, or CSR) on the numba kernels: the loop and its products in one
call.  On small data a product takes 50-150 µs and the Python around each
CG iteration (the product's wrappers, the preconditioner's checks, the
vector updates) 20-30 µs more.

``data`` is a tuple of the loss's arrays and constants, ending with the
product's blocks of rows (1 on the calling thread), ``state`` the
per-sample weights of the point's pass (``h`` for the binary loss, ``P``
for the multinomial one), ``diagonal`` the preconditioner's diagonal (ones
for none).  Returns ``(z, status, iterations, ||r||)``: status 0 for an
interior step, 1 on the trust region's boundary, 2 where a product was
not finite.

As in :mod:`secondorder._kernels.cpu.glm_lbfgs`, the loop compiles with
strict IEEE arithmetic, and an edit of ``glm.py`` calls for a touch of this
file (numba's cache does not follow calls into other files).
"""

import math

import numpy as np

from ..._backend import jit
from ...curvature._operator import _to_boundary
from .glm_lbfgs import variant
from .glm import _gram_matvec_csr, _gram_matvec_dense, _softmax_hessp_csr, _softmax_hessp_dense

__all__ = ["steihaug_logistic", "steihaug_logistic_csr", "steihaug_softmax", "steihaug_softmax_csr", "to_boundary"]

# Each product's two compilations (see glm._Pass): on the calling thread, and over numba's threads.
_gram_serial, _gram_threaded = _gram_matvec_dense.serial, _gram_matvec_dense.threaded
_gram_csr_serial, _gram_csr_threaded = _gram_matvec_csr.serial, _gram_matvec_csr.threaded
_hessp_serial, _hessp_threaded = _softmax_hessp_dense.serial, _softmax_hessp_dense.threaded
_hessp_csr_serial, _hessp_csr_threaded = _softmax_hessp_csr.serial, _softmax_hessp_csr.threaded

_INTERIOR, _BOUNDARY, _NONFINITE = 0, 1, 2


# the boundary step of the Python loop, compiled
to_boundary = jit(_to_boundary, fastmath=False)


@jit(error_model="numpy")
def _take(v, K, d, fit_intercept, dtype):
    """``(V, vb)`` of the vector ``v``: ``V`` of shape ``(K, d)`` in ``X``'s
    ``dtype``, ``vb`` the ``K`` intercepts' entries (zeros without)."""
    V = np.empty((K, d), dtype=dtype)
    vb = np.zeros(K)
    for k in range(K):
        for j in range(d):
            V[k, j] = v[k * d + j]
        if fit_intercept:
            vb[k] = v[K * d + k]
    return V, vb


@jit(error_model="numpy")
def _assemble(acc, accb, v, alpha, inv_total, fit_intercept, out):
    """``out`` = the product from its sums: ``acc`` (``(K, d)``) over the
    coefficients, plus the penalty's ``alpha v``, and ``accb`` over the
    intercepts."""
    K, d = acc.shape
    for k in range(K):
        for j in range(d):
            out[k * d + j] = acc[k, j] * inv_total + alpha * v[k * d + j]
        if fit_intercept:
            out[K * d + k] = accb[k] * inv_total


@jit(error_model="numpy")
def _logistic_product(data, h, v, out):
    X, alpha, inv_total, fit_intercept, nb = data
    V, vb = _take(v, 1, X.shape[1], fit_intercept, X.dtype)
    if nb == 1:
        acc, s = _gram_serial(X, h, V[0], vb[0], 1)
    else:
        acc, s = _gram_threaded(X, h, V[0], vb[0], nb)
    _assemble(acc.reshape((1, -1)), np.full(1, s), v, alpha, inv_total, fit_intercept, out)


@jit(error_model="numpy")
def _logistic_csr_product(data, h, v, out):
    (values, indices, indptr, d), alpha, inv_total, fit_intercept, nb = data
    V, vb = _take(v, 1, d, fit_intercept, values.dtype)
    if nb == 1:
        acc, s = _gram_csr_serial(values, indices, indptr, d, h, V[0], vb[0], 1)
    else:
        acc, s = _gram_csr_threaded(values, indices, indptr, d, h, V[0], vb[0], nb)
    _assemble(acc.reshape((1, -1)), np.full(1, s), v, alpha, inv_total, fit_intercept, out)


@jit(error_model="numpy")
def _softmax_product(data, P, v, out):
    X, y, sw, alpha, inv_total, fit_intercept, K, nb = data
    V, vb = _take(v, K, X.shape[1], fit_intercept, X.dtype)
    if nb == 1:
        acc, accb = _hessp_serial(X, y, sw, P, V, vb, 0, 1)
    else:
        acc, accb = _hessp_threaded(X, y, sw, P, V, vb, 0, nb)
    _assemble(acc, accb, v, alpha, inv_total, fit_intercept, out)


@jit(error_model="numpy")
def _softmax_csr_product(data, P, v, out):
    (values, indices, indptr, d), y, sw, alpha, inv_total, fit_intercept, K, nb = data
    V, vb = _take(v, K, d, fit_intercept, values.dtype)
    VT = np.ascontiguousarray(V.T)  # feature-major, as the CSR pass takes it
    if nb == 1:
        accT, accb = _hessp_csr_serial(values, indices, indptr, y, sw, P, VT, vb, 0, 1)
    else:
        accT, accb = _hessp_csr_threaded(values, indices, indptr, y, sw, P, VT, vb, 0, nb)
    _assemble(np.ascontiguousarray(accT.T), accb, v, alpha, inv_total, fit_intercept, out)


@jit(fastmath=False)
def _dot(a, b):
    s = 0.0
    for k in range(a.shape[0]):
        s += a[k] * b[k]
    return s


# The Hessian product of each compiled copy of _run (see glm_lbfgs.variant).
_product = None


def _run(data, state, g, radius, tol, diagonal, maxiter):
    n = g.shape[0]
    z = np.zeros(n)
    r = g.copy()
    y = r / diagonal
    p = -y
    ry = _dot(r, y)
    zMz, zMp, pMp = 0.0, 0.0, ry
    Bp = np.empty(n)
    status, k = _INTERIOR, 0
    while k < maxiter:
        _product(data, state, p, Bp)
        k += 1
        pBp = _dot(p, Bp)
        if not math.isfinite(pBp):
            status = _NONFINITE
            break
        if pBp <= 0.0:  # negative curvature: follow it to the boundary
            z += to_boundary(zMz, zMp, pMp, radius) * p
            status = _BOUNDARY
            break
        alpha = ry / pBp
        zMz_new = zMz + 2.0 * alpha * zMp + alpha * alpha * pMp
        if zMz_new >= radius * radius:
            z += to_boundary(zMz, zMp, pMp, radius) * p
            status = _BOUNDARY
            break
        z += alpha * p
        r += alpha * Bp
        if math.sqrt(_dot(r, r)) < tol:
            break
        y = r / diagonal
        ry_new = _dot(r, y)
        beta = ry_new / ry
        zMp = beta * (zMp + alpha * pMp)
        pMp = ry_new + beta * beta * pMp
        p = -y + beta * p
        zMz, ry = zMz_new, ry_new
    return z, status, k, math.sqrt(_dot(r, r))


steihaug_logistic = variant(_run, "steihaug_logistic", _product=_logistic_product)
steihaug_logistic_csr = variant(_run, "steihaug_logistic_csr", _product=_logistic_csr_product)
steihaug_softmax = variant(_run, "steihaug_softmax", _product=_softmax_product)
steihaug_softmax_csr = variant(_run, "steihaug_softmax_csr", _product=_softmax_csr_product)

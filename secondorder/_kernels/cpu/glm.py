"""numba kernels of the GLM losses; see the fallback module for the
definitions.  Each kernel reads every row of ``X`` once: the row's margins
are computed and its contribution added to the gradient (or product) while
it is in cache.  Rows are split into one block per thread, each with its own
accumulator, merged at the end (a fixed order, so results are
reproducible).  A dense ``X`` that is not C-contiguous goes to the BLAS
fallback, which reads it column-wise efficiently."""

import math
import types

import numpy as np
from numba import get_num_threads, prange

from ..._backend import jit
from ..fallback import glm as _fallback
from ._fastexp import exact_exp, log1p_unit

__all__ = [
    "logistic_grad",
    "logistic_grad_csr",
    "logistic_grad_gram",
    "logistic_grad_squares",
    "logistic_grad_squares_csr",
    "gram_matvec",
    "gram_matvec_csr",
    "softmax_grad",
    "softmax_grad_csr",
    "softmax_hessp",
    "softmax_hessp_csr",
]


# Passes over fewer entries of X than this run on the calling thread alone.  Waking the other threads costs
# 0.1 ms when they were idle, and 4-8 ms on a virtual machine whose other cores went to sleep (the first pass
# after a 0.2 s pause): more than a whole small fit.  A serial pass over 300,000 entries takes 150-430 µs,
# 50-220 µs more than on two threads: over a fit's 15 passes, less than that wait.  Fits after a 0.2 s pause
# (median of six): 1000 x 100 to 5000 x 50, 5.3-5.7 ms serially against 6.3-14.9 ms threaded; 3000 x 100 and
# 10,000 x 30, 7.3 and 8.4 ms against 11.9 and 12.5; 5000 x 100 and 20,000 x 30 (500,000 and 600,000
# entries), 8.1 and 13.5 ms against 6.9 and 11.2.  Back to back, serial fits took 3-5% longer at 2^18 entries.
_SERIAL_MAX = 400_000
# The products of SparseRows run in loops (conjugate gradients) whose threads stay awake: threads pay there from
# far fewer entries.
_PRODUCT_SERIAL_MAX = 1 << 16


def _blocks(n, entries, serial_max=None):
    """The row blocks of a pass over ``entries`` entries of ``n`` rows: one
    per thread, or one for a pass small enough to run serially (below
    ``serial_max``, default :data:`_SERIAL_MAX`)."""
    if entries < (_SERIAL_MAX if serial_max is None else serial_max):
        return 1
    # Read outside the compiled code so that the kernels stay cacheable.
    return max(1, min(get_num_threads(), n))


class _Pass:
    """A kernel over blocks of rows (its last argument, ``nb``), compiled
    twice: over numba's threads, and serially (``prange`` as ``range``)
    for ``nb == 1``, which then starts no thread at all."""

    def __init__(self, func):
        self.threaded = jit(func, parallel=True)
        serial = types.FunctionType(func.__code__, func.__globals__, func.__name__ + "_serial", func.__defaults__,
                                    func.__closure__)
        serial.__qualname__ = func.__qualname__ + "_serial"  # its own entry in numba's on-disk cache
        self.serial = jit(serial)

    def __call__(self, *args):
        return (self.serial if args[-1] == 1 else self.threaded)(*args)


def _unsigned(a):
    # CSR index arrays as unsigned views: numba then drops the negative-index
    # wrap-around test from every gather and scatter (about 1.8x faster).
    return a.view(np.uint32 if a.dtype.itemsize == 4 else np.uint64)


def _dense_ok(X):
    return isinstance(X, np.ndarray) and X.ndim == 2 and X.flags.c_contiguous


# ----------------------------------------------------------------- logistic
# Rows per chunk of the dense logistic pass: their margins, then their losses and weights in one loop that
# vectorises across the rows, then their gradient sweep, while the chunk is in cache.
_CHUNK = 64


@jit(error_model="numpy")
def _logistic_chunk(z, y, sw, i0, m, r_out, h_out, r_chunk, h_chunk):
    # Rows i0 .. i0 + m - 1 at margins z[:m]: r and h into r_out and h_out, and the weighted loss sum.  Only
    # arithmetic, the vectorisable exp and log1p, and IEEE division (no zero test to branch on): LLVM runs it
    # several rows per instruction, where libm's exp and log1p took about 13 ns a row.  Stable for any
    # margin: everything from e = exp(-|z|) <= 1.
    # The loop stores into the chunk's own r_chunk and h_chunk, copied out after: storing into r_out and h_out
    # while loading y and sw at the same offsets ran at 16.5 ns a row instead of 5 wherever the arrays'
    # addresses fell a multiple of 4 KiB apart (the core takes such loads for reloads of the stores).
    total = 0.0
    for t in range(m):
        zi = z[t]
        i = i0 + t
        e = exact_exp(-abs(zi))
        inv = 1.0 / (1.0 + e)
        p = inv if zi >= 0.0 else e * inv
        si = sw[i]
        total += si * (max(zi, 0.0) + log1p_unit(e) - y[i] * zi)
        r_chunk[t] = si * (p - y[i])
        h_chunk[t] = si * e * inv * inv
    for t in range(m):
        r_out[i0 + t] = r_chunk[t]
        h_out[i0 + t] = h_chunk[t]
    return total


@_Pass
def _logistic_grad_dense(X, y, sw, coef, b, r_out, h_out, grams, squares, nb):
    # With grams of shape (nb, d + 1, d + 1), each block also sums the
    # Hessian [X 1]^T diag(h) [X 1] (rank-one updates of each row while it is
    # in cache); with squares of shape (nb, d), the Hessian's diagonal sums
    # h_i x_ij^2; with shapes (nb, 0, 0) and (nb, 0), the gradient alone.
    n, d = X.shape
    gram = grams.shape[1] > 0
    diag = squares.shape[1] > 0
    acc = np.zeros((nb, d))
    losses = np.zeros(nb)
    for blk in prange(nb):
        lo = blk * n // nb
        hi = (blk + 1) * n // nb
        a = acc[blk]
        G = grams[blk]
        z = np.empty(_CHUNK)
        r_chunk = np.empty(_CHUNK)
        h_chunk = np.empty(_CHUNK)
        total = 0.0
        for c0 in range(lo, hi, _CHUNK):
            c1 = min(c0 + _CHUNK, hi)
            # 1. the margins; each dot product a loop of its own (written as one loop over j with several
            # sums, LLVM vectorises across the rows with strided gathers: half speed on an X beyond the caches)
            for i in range(c0, c1):
                zi = b
                for j in range(d):
                    zi += X[i, j] * coef[j]
                z[i - c0] = zi
            # 2. the losses, r and h, across the rows
            total += _logistic_chunk(z, y, sw, c0, c1 - c0, r_out, h_out, r_chunk, h_chunk)
            # 3. the gradient (and the Hessian), four rows at a time: one sweep over the accumulator for all
            # four (its loads and stores are shared)
            i = c0
            while i + 4 <= c1:
                r0, r1, r2, r3 = r_out[i], r_out[i + 1], r_out[i + 2], r_out[i + 3]
                for j in range(d):
                    a[j] += r0 * X[i, j] + r1 * X[i + 1, j] + r2 * X[i + 2, j] + r3 * X[i + 3, j]
                if diag:
                    h0, h1, h2, h3 = h_out[i], h_out[i + 1], h_out[i + 2], h_out[i + 3]
                    sq = squares[blk]
                    for j in range(d):
                        x0, x1, x2, x3 = X[i, j], X[i + 1, j], X[i + 2, j], X[i + 3, j]
                        sq[j] += h0 * x0 * x0 + h1 * x1 * x1 + h2 * x2 * x2 + h3 * x3 * x3
                if gram:
                    h0, h1, h2, h3 = h_out[i], h_out[i + 1], h_out[i + 2], h_out[i + 3]
                    # the full square (not the triangle): a loop of fixed length vectorises
                    for j in range(d):
                        g0, g1, g2, g3 = h0 * X[i, j], h1 * X[i + 1, j], h2 * X[i + 2, j], h3 * X[i + 3, j]
                        for k in range(d):
                            G[j, k] += g0 * X[i, k] + g1 * X[i + 1, k] + g2 * X[i + 2, k] + g3 * X[i + 3, k]
                        G[j, d] += g0 + g1 + g2 + g3
                    G[d, d] += h0 + h1 + h2 + h3
                i += 4
            while i < c1:
                ri = r_out[i]
                for j in range(d):
                    a[j] += ri * X[i, j]
                if diag:
                    hi_ = h_out[i]
                    sq = squares[blk]
                    for j in range(d):
                        sq[j] += hi_ * X[i, j] * X[i, j]
                if gram:
                    hi_ = h_out[i]
                    for j in range(d):
                        gj = hi_ * X[i, j]
                        for k in range(d):
                            G[j, k] += gj * X[i, k]
                        G[j, d] += gj
                    G[d, d] += hi_
                i += 1
        losses[blk] = total
    return losses.sum(), acc.sum(axis=0)


def logistic_grad(X, y, sw, coef, b, r_out, h_out):
    if not _dense_ok(X):
        return _fallback.logistic_grad(X, y, sw, coef, b, r_out, h_out)
    nb = _blocks(X.shape[0], X.size)
    return _logistic_grad_dense(X, y, sw, coef, float(b), r_out, h_out, np.zeros((nb, 0, 0)), np.zeros((nb, 0)), nb)


def logistic_grad_squares(X, y, sw, coef, b, r_out, h_out):
    if not _dense_ok(X):
        return _fallback.logistic_grad_squares(X, y, sw, coef, b, r_out, h_out)
    nb = _blocks(X.shape[0], X.size)
    squares = np.zeros((nb, X.shape[1]))
    loss, g = _logistic_grad_dense(X, y, sw, coef, float(b), r_out, h_out, np.zeros((nb, 0, 0)), squares, nb)
    return loss, g, squares.sum(axis=0)


def logistic_grad_gram(X, y, sw, coef, b, r_out, h_out):
    if not _dense_ok(X):
        return _fallback.logistic_grad_gram(X, y, sw, coef, b, r_out, h_out)
    nb, q = _blocks(X.shape[0], X.size), X.shape[1] + 1
    grams = np.zeros((nb, q, q))
    loss, g = _logistic_grad_dense(X, y, sw, coef, float(b), r_out, h_out, grams, np.zeros((nb, 0)), nb)
    G = grams.sum(axis=0)
    G[-1, :-1] = G[:-1, -1]  # the column of ones was summed on one side only
    return loss, g, G


@_Pass
def _logistic_grad_csr(data, indices, indptr, d, y, sw, coef, b, r_out, h_out, squares, nb):
    # In chunks of rows, as the dense pass: margins, then the vectorised losses and weights, then the sweep
    # (with squares of shape (nb, d), the Hessian's diagonal sums too).
    n = indptr.shape[0] - 1
    diag = squares.shape[1] > 0
    acc = np.zeros((nb, d))
    losses = np.zeros(nb)
    for blk in prange(nb):
        lo = blk * n // nb
        hi = (blk + 1) * n // nb
        a = acc[blk]
        z = np.empty(_CHUNK)
        r_chunk = np.empty(_CHUNK)
        h_chunk = np.empty(_CHUNK)
        total = 0.0
        for c0 in range(lo, hi, _CHUNK):
            c1 = min(c0 + _CHUNK, hi)
            for i in range(c0, c1):
                zi = b
                for k in range(indptr[i], indptr[i + 1]):
                    zi += data[k] * coef[indices[k]]
                z[i - c0] = zi
            total += _logistic_chunk(z, y, sw, c0, c1 - c0, r_out, h_out, r_chunk, h_chunk)
            for i in range(c0, c1):
                ri = r_out[i]
                for k in range(indptr[i], indptr[i + 1]):
                    a[indices[k]] += ri * data[k]
            if diag:
                sq = squares[blk]
                for i in range(c0, c1):
                    hi_ = h_out[i]
                    for k in range(indptr[i], indptr[i + 1]):
                        sq[indices[k]] += hi_ * data[k] * data[k]
        losses[blk] = total
    return losses.sum(), acc.sum(axis=0)


def logistic_grad_csr(data, indices, indptr, d, y, sw, coef, b, r_out, h_out):
    nb = _blocks(indptr.shape[0] - 1, data.shape[0])
    return _logistic_grad_csr(data, _unsigned(indices), _unsigned(indptr), d, y, sw, coef, float(b), r_out, h_out,
                              np.zeros((nb, 0)), nb)


def logistic_grad_squares_csr(data, indices, indptr, d, y, sw, coef, b, r_out, h_out):
    nb = _blocks(indptr.shape[0] - 1, data.shape[0])
    squares = np.zeros((nb, d))
    loss, g = _logistic_grad_csr(data, _unsigned(indices), _unsigned(indptr), d, y, sw, coef, float(b), r_out, h_out,
                                 squares, nb)
    return loss, g, squares.sum(axis=0)


@_Pass
def _gram_matvec_dense(X, w, v, vb, nb):
    n, d = X.shape
    acc = np.zeros((nb, d))
    sums = np.zeros(nb)
    for blk in prange(nb):
        lo = blk * n // nb
        hi = (blk + 1) * n // nb
        a = acc[blk]
        s = 0.0
        i = lo
        while i + 4 <= hi:  # four rows at a time, as in the gradient
            u0 = vb
            for j in range(d):
                u0 += X[i, j] * v[j]
            u1 = vb
            for j in range(d):
                u1 += X[i + 1, j] * v[j]
            u2 = vb
            for j in range(d):
                u2 += X[i + 2, j] * v[j]
            u3 = vb
            for j in range(d):
                u3 += X[i + 3, j] * v[j]
            u0 *= w[i]
            u1 *= w[i + 1]
            u2 *= w[i + 2]
            u3 *= w[i + 3]
            s += u0 + u1 + u2 + u3
            for j in range(d):
                a[j] += u0 * X[i, j] + u1 * X[i + 1, j] + u2 * X[i + 2, j] + u3 * X[i + 3, j]
            i += 4
        while i < hi:
            u = vb
            for j in range(d):
                u += X[i, j] * v[j]
            u *= w[i]
            s += u
            for j in range(d):
                a[j] += u * X[i, j]
            i += 1
        sums[blk] = s
    return acc.sum(axis=0), sums.sum()


def gram_matvec(X, w, v, vb):
    if not _dense_ok(X):
        return _fallback.gram_matvec(X, w, v, vb)
    return _gram_matvec_dense(X, w, v, float(vb), _blocks(X.shape[0], X.size))


@_Pass
def _gram_matvec_csr(data, indices, indptr, d, w, v, vb, nb):
    n = indptr.shape[0] - 1
    acc = np.zeros((nb, d))
    sums = np.zeros(nb)
    for blk in prange(nb):
        lo = blk * n // nb
        hi = (blk + 1) * n // nb
        a = acc[blk]
        s = 0.0
        for i in range(lo, hi):
            u = vb
            for k in range(indptr[i], indptr[i + 1]):
                u += data[k] * v[indices[k]]
            u *= w[i]
            s += u
            for k in range(indptr[i], indptr[i + 1]):
                a[indices[k]] += u * data[k]
        sums[blk] = s
    return acc.sum(axis=0), sums.sum()


def gram_matvec_csr(data, indices, indptr, d, w, v, vb):
    return _gram_matvec_csr(data, _unsigned(indices), _unsigned(indptr), d, w, v, float(vb), _blocks(indptr.shape[0] - 1, data.shape[0]))


@_Pass
def _csr_matvec(data, indices, indptr, x, out, nb):
    n = indptr.shape[0] - 1
    for blk in prange(nb):
        for i in range(blk * n // nb, (blk + 1) * n // nb):
            s = 0.0
            for k in range(indptr[i], indptr[i + 1]):
                s += data[k] * x[indices[k]]
            out[i] = s
    return out


def csr_matvec(data, indices, indptr, d, x):
    n = indptr.shape[0] - 1
    return _csr_matvec(data, _unsigned(indices), _unsigned(indptr), x, np.empty(n),
                       _blocks(n, data.shape[0], _PRODUCT_SERIAL_MAX))


@_Pass
def _csr_rmatvec(data, indices, indptr, d, y, square, nb):
    n = indptr.shape[0] - 1
    acc = np.zeros((nb, d))
    for blk in prange(nb):
        a = acc[blk]
        for i in range(blk * n // nb, (blk + 1) * n // nb):
            yi = y[i]
            for k in range(indptr[i], indptr[i + 1]):
                v = data[k]
                if square:
                    v = v * v
                a[indices[k]] += v * yi
    return acc.sum(axis=0)


def csr_rmatvec(data, indices, indptr, d, y, square=False):
    return _csr_rmatvec(data, _unsigned(indices), _unsigned(indptr), d, y, square,
                        _blocks(indptr.shape[0] - 1, data.shape[0], _PRODUCT_SERIAL_MAX))


# ------------------------------------------------------------------ softmax
@jit
def _margins4(X, i, M, c, out):
    # out[m] = M @ X[i + m] + c for the four rows i .. i + 3 of a dense X:
    # each load of M serves the four rows (four sums in one loop: with K
    # dot products per row the pass is compute-bound, and this form wins).
    K, d = M.shape
    for k in range(K):
        t0 = c[k]
        t1 = c[k]
        t2 = c[k]
        t3 = c[k]
        for j in range(d):
            mkj = M[k, j]
            t0 += X[i, j] * mkj
            t1 += X[i + 1, j] * mkj
            t2 += X[i + 2, j] * mkj
            t3 += X[i + 3, j] * mkj
        out[0, k] = t0
        out[1, k] = t1
        out[2, k] = t2
        out[3, k] = t3


@jit
def _sweep4(X, i, r, a, ab):
    # a += r^T X[i : i + 4] and ab += the column sums of r: one sweep over
    # the accumulator for four rows.
    K, d = a.shape
    for k in range(K):
        r0 = r[0, k]
        r1 = r[1, k]
        r2 = r[2, k]
        r3 = r[3, k]
        ab[k] += r0 + r1 + r2 + r3
        for j in range(d):
            a[k, j] += r0 * X[i, j] + r1 * X[i + 1, j] + r2 * X[i + 2, j] + r3 * X[i + 3, j]


@jit
def _margins1(X, i, M, c, out):
    # out = M @ X[i] + c for one row (the rows after the last group of four).
    K, d = M.shape
    for k in range(K):
        t = c[k]
        for j in range(d):
            t += X[i, j] * M[k, j]
        out[k] = t


@jit
def _sweep1(X, i, r, a, ab):
    # a += outer(r, X[i]) and ab += r for one row.
    K, d = a.shape
    for k in range(K):
        rk = r[k]
        ab[k] += rk
        for j in range(d):
            a[k, j] += rk * X[i, j]


@jit
def _csr_margins1(data, indices, indptr, i, MT, c, out):
    # out = M @ x_i + c for row i of a CSR X, with M feature-major (MT, shape (d, K)).
    K = MT.shape[1]
    for k in range(K):
        out[k] = c[k]
    for q in range(indptr[i], indptr[i + 1]):
        x = data[q]
        j = indices[q]
        for k in range(K):
            out[k] += x * MT[j, k]


@jit
def _csr_sweep1(data, indices, indptr, i, r, aT, ab):
    # aT += outer(x_i, r) (feature-major) and ab += r for row i of a CSR X.
    K = aT.shape[1]
    for k in range(K):
        ab[k] += r[k]
    for q in range(indptr[i], indptr[i + 1]):
        x = data[q]
        j = indices[q]
        for k in range(K):
            aT[j, k] += r[k] * x


@jit(error_model="numpy")
def _softmax_chunk(Z, y, sw, i0, m, P_out, R):
    # Rows i0 .. i0 + m - 1 with margins Z[:m]: their probabilities into P_out, R = s_i (p_i - e_{y_i}), and the
    # weighted loss sum.  The exponentials run in one loop over the m x K block (contiguous), which LLVM
    # vectorises across rows and classes alike; per row the K classes alone fill no vector, and libm's exp took
    # about 13 ns each, most of the pass.
    K = Z.shape[1]
    for t in range(m):
        zmax = Z[t, 0]
        for k in range(1, K):
            zmax = max(zmax, Z[t, k])
        for k in range(K):
            Z[t, k] -= zmax
    flat = Z.reshape(-1)
    E = P_out[i0 : i0 + m].reshape(-1)
    for q in range(m * K):
        E[q] = exact_exp(flat[q])
    total = 0.0
    for t in range(m):
        i = i0 + t
        s = 0.0
        for k in range(K):
            s += P_out[i, k]
        inv = 1.0 / s
        si = sw[i]
        for k in range(K):
            P_out[i, k] *= inv
            R[t, k] = si * P_out[i, k]
        R[t, y[i]] -= si
        total += si * (math.log(s) - Z[t, y[i]])
    return total


@_Pass
def _softmax_grad_dense(X, y, sw, coef, b, P_out, nb):
    # In chunks of rows, as the logistic pass: their margins (four rows at a time, see _margins4), then their
    # probabilities in one vectorised loop (_softmax_chunk), then their gradient sweep (_sweep4), while the
    # chunk is in cache.
    n, d = X.shape
    K = coef.shape[0]
    acc = np.zeros((nb, K, d))
    accb = np.zeros((nb, K))
    losses = np.zeros(nb)
    for blk in prange(nb):
        lo = blk * n // nb
        hi = (blk + 1) * n // nb
        a = acc[blk]
        Z = np.empty((_CHUNK, K))
        R = np.empty((_CHUNK, K))
        total = 0.0
        for c0 in range(lo, hi, _CHUNK):
            c1 = min(c0 + _CHUNK, hi)
            i = c0
            while i + 4 <= c1:
                _margins4(X, i, coef, b, Z[i - c0 : i - c0 + 4])
                i += 4
            while i < c1:
                _margins1(X, i, coef, b, Z[i - c0])
                i += 1
            total += _softmax_chunk(Z, y, sw, c0, c1 - c0, P_out, R)
            i = c0
            while i + 4 <= c1:
                _sweep4(X, i, R[i - c0 : i - c0 + 4], a, accb[blk])
                i += 4
            while i < c1:
                _sweep1(X, i, R[i - c0], a, accb[blk])
                i += 1
        losses[blk] = total
    return losses.sum(), acc.sum(axis=0), accb.sum(axis=0)


def softmax_grad(X, y, sw, coef, b, P_out):
    if not _dense_ok(X):
        return _fallback.softmax_grad(X, y, sw, coef, b, P_out)
    return _softmax_grad_dense(X, y, sw, np.ascontiguousarray(coef), b, P_out, _blocks(X.shape[0], X.size * coef.shape[0]))


@_Pass
def _softmax_grad_csr(data, indices, indptr, y, sw, coefT, b, P_out, nb):
    # Feature-major (d, K) coefficients and accumulators: each stored entry
    # is read once and meets its K classes in one contiguous row, instead of
    # K gathers over the row's indices.  In chunks of rows, as the dense pass:
    # margins, then the vectorised probabilities (_softmax_chunk), then the sweep.
    n = indptr.shape[0] - 1
    d, K = coefT.shape
    acc = np.zeros((nb, d, K))
    accb = np.zeros((nb, K))
    losses = np.zeros(nb)
    for blk in prange(nb):
        lo = blk * n // nb
        hi = (blk + 1) * n // nb
        a = acc[blk]
        Z = np.empty((_CHUNK, K))
        R = np.empty((_CHUNK, K))
        total = 0.0
        for c0 in range(lo, hi, _CHUNK):
            c1 = min(c0 + _CHUNK, hi)
            for i in range(c0, c1):
                _csr_margins1(data, indices, indptr, i, coefT, b, Z[i - c0])
            total += _softmax_chunk(Z, y, sw, c0, c1 - c0, P_out, R)
            for i in range(c0, c1):
                _csr_sweep1(data, indices, indptr, i, R[i - c0], a, accb[blk])
        losses[blk] = total
    return losses.sum(), acc.sum(axis=0), accb.sum(axis=0)


def softmax_grad_csr(data, indices, indptr, d, y, sw, coef, b, P_out):
    loss, g, gb = _softmax_grad_csr(data, _unsigned(indices), _unsigned(indptr), y, sw, np.ascontiguousarray(coef.T), b,
                                    P_out, _blocks(indptr.shape[0] - 1, data.shape[0] * coef.shape[0]))
    return loss, np.ascontiguousarray(g.T), gb


@jit
def _softmax_curv_row(u, p, yi, si, mode, r):
    # r = si * (curvature of the row's loss in the margins) @ u; see fallback.
    K = u.shape[0]
    if mode == 0:
        pu = 0.0
        for k in range(K):
            pu += p[k] * u[k]
        for k in range(K):
            r[k] = si * p[k] * (u[k] - pu)
    elif mode == 1:
        for k in range(K):
            r[k] = si * p[k] * u[k]
    else:
        gu = -u[yi]
        for k in range(K):
            gu += p[k] * u[k]
        for k in range(K):
            r[k] = si * gu * p[k]
        r[yi] -= si * gu


@_Pass
def _softmax_hessp_dense(X, y, sw, P, V, vb, mode, nb):
    n, d = X.shape
    K = V.shape[0]
    acc = np.zeros((nb, K, d))
    accb = np.zeros((nb, K))
    for blk in prange(nb):
        lo = blk * n // nb
        hi = (blk + 1) * n // nb
        a = acc[blk]
        u = np.empty((4, K))
        r = np.empty((4, K))
        i = lo
        # Four rows at a time (see _margins4 and _sweep4).
        while i + 4 <= hi:
            _margins4(X, i, V, vb, u)
            for m in range(4):
                _softmax_curv_row(u[m], P[i + m], y[i + m], sw[i + m], mode, r[m])
            _sweep4(X, i, r, a, accb[blk])
            i += 4
        while i < hi:
            _margins1(X, i, V, vb, u[0])
            _softmax_curv_row(u[0], P[i], y[i], sw[i], mode, r[0])
            _sweep1(X, i, r[0], a, accb[blk])
            i += 1
    return acc.sum(axis=0), accb.sum(axis=0)


def softmax_hessp(X, y, sw, P, V, vb, mode):
    if not _dense_ok(X):
        return _fallback.softmax_hessp(X, y, sw, P, V, vb, mode)
    return _softmax_hessp_dense(X, y, sw, P, np.ascontiguousarray(V), vb, int(mode), _blocks(X.shape[0], X.size * V.shape[0]))


@_Pass
def _softmax_hessp_csr(data, indices, indptr, y, sw, P, VT, vb, mode, nb):
    # Feature-major (d, K) layout, as _softmax_grad_csr.
    n = indptr.shape[0] - 1
    d, K = VT.shape
    acc = np.zeros((nb, d, K))
    accb = np.zeros((nb, K))
    for blk in prange(nb):
        lo = blk * n // nb
        hi = (blk + 1) * n // nb
        a = acc[blk]
        u = np.empty(K)
        r = np.empty(K)
        for i in range(lo, hi):
            _csr_margins1(data, indices, indptr, i, VT, vb, u)
            _softmax_curv_row(u, P[i], y[i], sw[i], mode, r)
            _csr_sweep1(data, indices, indptr, i, r, a, accb[blk])
    return acc.sum(axis=0), accb.sum(axis=0)


def softmax_hessp_csr(data, indices, indptr, d, y, sw, P, V, vb, mode):
    out, out_b = _softmax_hessp_csr(data, _unsigned(indices), _unsigned(indptr), y, sw, P, np.ascontiguousarray(V.T), vb,
                                    int(mode), _blocks(indptr.shape[0] - 1, data.shape[0] * V.shape[0]))
    return np.ascontiguousarray(out.T), out_b

"""numba kernels of the entropic OT solvers; see the fallback module for the
definitions.  Every kernel is one pass (or two, the first without exp) over
the cost matrix, parallel over blocks of rows; column reductions use one
accumulator per block, merged at the end, so ``M`` is always read row by row
(no transposed copy)."""

import math

import numpy as np
from numba import get_num_threads, prange

from ..._backend import jit
from ._fastexp import _bits_f64, _f64_bits, fast_exp
from ..fallback.sinkhorn import RAISES


def _blocks(n):
    # Blocks of rows for the column reductions: one per thread.  Read here,
    # outside the compiled code, so that the kernels can be cached on disk.
    return max(1, min(get_num_threads(), n))


def value_range(M):
    if M.ndim != 2 or not M.flags.c_contiguous:
        return float(M.max()), float(M.min())
    hi, lo, nan = _value_range(M, _blocks(M.shape[0]))
    return (math.nan, math.nan) if nan else (float(hi), float(lo))


@jit(parallel=True)
def _value_range(M, nb):
    # one pass for both ends, per block of rows; a NaN is counted apart (max and min would drop it)
    n, m = M.shape
    his = np.full(nb, -np.inf)
    los = np.full(nb, np.inf)
    nans = np.zeros(nb, dtype=np.int64)
    for b in prange(nb):
        hi, lo, bad = -np.inf, np.inf, 0
        for i in range(b * n // nb, (b + 1) * n // nb):
            for j in range(m):
                v = M[i, j]
                hi = max(hi, v)
                lo = min(lo, v)
                bad += v != v
        his[b], los[b], nans[b] = hi, lo, bad
    return his.max(), los.min(), nans.sum() > 0


@jit(parallel=True)
def lse_rows(M, g, reg, out):
    n, m = M.shape
    inv = 1.0 / reg
    for i in prange(n):
        mx = -np.inf
        for j in range(m):
            mx = max(mx, (g[j] - M[i, j]) * inv)
        s = 0.0
        for j in range(m):
            s += fast_exp((g[j] - M[i, j]) * inv - mx)
        out[i] = mx + math.log(s)
    return out


def lse_cols(M, f, reg, out):
    return _lse_cols(M, f, reg, out, _blocks(M.shape[0]))


@jit(parallel=True)
def _lse_cols(M, f, reg, out, nb):
    n, m = M.shape
    inv = 1.0 / reg
    cmax = np.full((nb, m), -np.inf)
    csum = np.zeros((nb, m))
    for b in prange(nb):
        lo = b * n // nb
        hi = (b + 1) * n // nb
        mx = cmax[b]
        for i in range(lo, hi):
            fi = f[i]
            for j in range(m):
                mx[j] = max(mx[j], (fi - M[i, j]) * inv)
        s = csum[b]
        for i in range(lo, hi):
            fi = f[i]
            for j in range(m):
                s[j] += fast_exp((fi - M[i, j]) * inv - mx[j])
    for j in range(m):
        top = -np.inf
        for b in range(nb):
            top = max(top, cmax[b, j])
        s = 0.0
        for b in range(nb):
            if csum[b, j] > 0.0:
                s += csum[b, j] * math.exp(cmax[b, j] - top)
        out[j] = top + math.log(s)
    return out


@jit(parallel=True)
def row_scaled_kernel(M, log_a, reg, out):
    n, m = M.shape
    inv = 1.0 / reg
    f = np.empty(n)
    for i in prange(n):
        mx = -np.inf
        for j in range(m):
            mx = max(mx, (0.0 - M[i, j]) * inv)
        s = 0.0
        for j in range(m):
            s += fast_exp((0.0 - M[i, j]) * inv - mx)
        fi = reg * (log_a[i] - (mx + math.log(s)))
        f[i] = fi
        # the row again while it is in cache
        for j in range(m):
            out[i, j] = fast_exp((fi + 0.0 - M[i, j]) * inv)
    return f


@jit(parallel=True)
def scaled_kernel(M, f, g, reg, out):
    n, m = M.shape
    inv = 1.0 / reg
    for i in prange(n):
        fi = f[i]
        for j in range(m):
            out[i, j] = fast_exp((fi + g[j] - M[i, j]) * inv)
    return out


@jit(parallel=True)
def transport_cost(M, f, g, reg):
    n, m = M.shape
    inv = 1.0 / reg
    total = 0.0
    for i in prange(n):
        fi = f[i]
        s = 0.0
        for j in range(m):
            s += fast_exp((fi + g[j] - M[i, j]) * inv) * M[i, j]
        total += s
    return total


def sns_eval(M, f, g, reg, delta, cap, out=None):
    # The kept entries' room is allocated by NumPy, which asks the system for huge pages: at n = 10,000 the
    # 150 MB that numba's own allocator would get in small pages took 40 ms of page faults a pass.
    n = M.shape[0]
    idx, vals = out if out is not None else (np.empty((n, cap), dtype=np.int32), np.empty((n, cap)))
    return _sns_eval(M, f, g, reg, delta, cap, _blocks(n), idx, vals)


@jit
def _row_threshold(row, mx, delta, cap, raises):
    """The row's keep threshold, ``mx * delta * 10**s`` for the first
    ``s <= raises`` that keeps at most ``cap`` entries (else ``mx``, the
    row's largest entry), and that ``s``."""
    d = delta
    for s in range(raises + 1):
        if not d < 1.0:
            break
        t = mx * d
        cnt = 0
        for j in range(row.shape[0]):
            cnt += row[j] >= t
        if cnt <= cap:
            return t, s
        d = d * 10.0
    return mx, raises + 1


@jit
def _sum_blocks(acc):
    """The sum over the blocks' accumulators (the rows of ``acc``)."""
    out = np.zeros(acc.shape[1])
    for b in range(acc.shape[0]):
        for j in range(acc.shape[1]):
            out[j] += acc[b, j]
    return out


@jit
def _keep(row, cols, t, cap, col_buf, val_buf, idx_out, vals_out):
    """Writes the first ``cap`` entries of ``row`` at or above ``t``, and
    their ``cols``, into ``vals_out`` and ``idx_out``; returns how many.
    Branch-free: every entry is written at the next free slot of the
    buffers (of ``row``'s length), which advances only for a kept one; a
    branch on each entry mispredicts where rows keep a large share."""
    q = 0
    for k in range(row.shape[0]):
        v = row[k]
        col_buf[q] = cols[k]
        val_buf[q] = v
        q += v >= t
    q = min(q, cap)
    for k in range(q):
        idx_out[k] = col_buf[k]
        vals_out[k] = val_buf[k]
    return q


@jit(parallel=True)
def _sns_eval(M, f, g, reg, delta, cap, nb, idx, vals):
    n, m = M.shape
    inv = 1.0 / reg
    r = np.empty(n)
    count = np.empty(n, dtype=np.int64)
    raised = np.empty(n, dtype=np.int64)
    csum = np.zeros((nb, m))
    cols = np.arange(m).astype(np.int32)
    for b in prange(nb):
        lo = b * n // nb
        hi = (b + 1) * n // nb
        row = np.empty(m)
        col_buf = np.empty(m + 1, dtype=np.int32)
        val_buf = np.empty(m + 1)
        cs = csum[b]
        for i in range(lo, hi):
            fi = f[i]
            s = 0.0
            # The row's largest entry through its bits: for non-negative floats their order is the integers',
            # and an integer max vectorises where a float max (NaN-aware) would not.
            top = 0
            for j in range(m):
                p = fast_exp((fi + g[j] - M[i, j]) * inv)
                row[j] = p
                s += p
                cs[j] += p
                top = max(top, _f64_bits(p))
            r[i] = s
            # the kept entries, from the row still in cache
            t, raised[i] = _row_threshold(row, _bits_f64(top), delta, cap, RAISES)
            count[i] = _keep(row, cols, t, cap, col_buf, val_buf, idx[i], vals[i])
    return r, _sum_blocks(csum), count, raised, idx, vals


def sns_eval_sparse(count, cols, entries, ef, eg, delta, cap, m, out=None):
    n = count.shape[0]
    idx, vals = out if out is not None else (np.empty((n, cap), dtype=np.int32), np.empty((n, cap)))
    return _sns_eval_sparse(count, cols, entries, ef, eg, delta, cap, m, _blocks(n), idx, vals)


@jit(parallel=True)
def _sns_eval_sparse(count_in, cols, entries, ef, eg, delta, cap, m, nb, idx, vals):
    n, width = cols.shape
    r = np.empty(n)
    count = np.empty(n, dtype=np.int64)
    raised = np.empty(n, dtype=np.int64)
    csum = np.zeros((nb, m))
    for b in prange(nb):
        lo = b * n // nb
        hi = (b + 1) * n // nb
        row = np.empty(width)
        col_buf = np.empty(width + 1, dtype=np.int32)
        val_buf = np.empty(width + 1)
        cs = csum[b]
        for i in range(lo, hi):
            length = count_in[i]
            ei = ef[i]
            s = 0.0
            top = 0
            for k in range(length):
                j = cols[i, k]
                p = entries[i, k] * ei * eg[j]
                row[k] = p
                s += p
                cs[j] += p
                top = max(top, _f64_bits(p))
            r[i] = s
            t, raised[i] = _row_threshold(row[:length], _bits_f64(top), delta, cap, RAISES)
            count[i] = _keep(row[:length], cols[i, :length], t, cap, col_buf, val_buf, idx[i], vals[i])
    return r, _sum_blocks(csum), count, raised, idx, vals


def group_gram(data, indices, indptr, groups, k, w):
    return _group_gram(data, indices, indptr, groups, k, w, _blocks(indptr.shape[0] - 1))


@jit(parallel=True)
def _group_gram(data, indices, indptr, groups, k, w, nb):
    # Row by row: the row's sums per group (over the groups it touches, a few where the groups follow the
    # plan's geometry), then their weighted outer product: no n x k array, no k^2 work per row.
    n = indptr.shape[0] - 1
    acc = np.zeros((nb, k, k))
    for b in prange(nb):
        q = np.zeros(k)
        seen = np.full(k, -1)
        touched = np.empty(k, dtype=np.int64)
        G = acc[b]
        for i in range(b * n // nb, (b + 1) * n // nb):
            t = 0
            for p in range(indptr[i], indptr[i + 1]):
                a = groups[indices[p]]
                if a >= 0:
                    if seen[a] != i:
                        seen[a] = i
                        q[a] = 0.0
                        touched[t] = a
                        t += 1
                    q[a] += data[p]
            wi = w[i]
            for x in range(t):
                ax = touched[x]
                qa = q[ax] * wi
                for y in range(t):
                    G[ax, touched[y]] += qa * q[touched[y]]
    return acc.sum(axis=0)


@jit(parallel=True)
def row_max(count, vals):
    n = count.shape[0]
    out = np.zeros(n)
    for i in prange(n):
        top = 0.0
        for q in range(count[i]):
            top = max(top, vals[i, q])
        out[i] = top
    return out


def kept_csr(count, idx, vals, out=None):
    n = count.shape[0]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(count, out=indptr[1:])
    nnz = int(indptr[-1])
    if out is not None and out[0].shape == (nnz,) and out[1].dtype == idx.dtype:
        data, indices = out
    else:
        data, indices = np.empty(nnz, dtype=vals.dtype), np.empty(nnz, dtype=idx.dtype)
    _copy_kept(count, idx, vals, indptr, data, indices)
    return data, indices, indptr


@jit(parallel=True)
def _copy_kept(count, idx, vals, indptr, data, indices):
    for i in prange(count.shape[0]):
        start = indptr[i]
        for q in range(count[i]):
            data[start + q] = vals[i, q]
            indices[start + q] = idx[i, q]


@jit(parallel=True)
def group_sums(data, indices, indptr, groups, k):
    n = indptr.shape[0] - 1
    Q = np.zeros((n, k), dtype=data.dtype)
    for i in prange(n):
        for p in range(indptr[i], indptr[i + 1]):
            a = groups[indices[p]]
            if a >= 0:
                Q[i, a] += data[p]
    return Q


# Separable costs on a grid; see the fallback module for the definitions.


@jit(parallel=True)
def lse_axis(X, N, out, out_max):
    A, Q = X.shape
    P = N.shape[0]
    for t in prange(A * P):
        a = t // P
        p = t % P
        mx = -np.inf
        for q in range(Q):
            mx = max(mx, X[a, q] + N[p, q])
        out_max[a, p] = mx
        if mx == -np.inf:
            out[a, p] = -np.inf
            continue
        s = 0.0
        for q in range(Q):
            s += fast_exp(X[a, q] + N[p, q] - mx)
        out[a, p] = mx + math.log(s)
    return out, out_max


@jit
def _grid_collect(N1, N2, G, Bmax, i1, i2, thr, fk, col_map, idx, vals, k, cap):
    """The entries of grid row (i1, i2) at or above thr, the first ``cap``
    written to idx[k], vals[k]; returns how many there are in all."""
    h, w = Bmax.shape
    q = 0
    for j1 in range(h):
        base = N1[i1, j1]
        if base + Bmax[j1, i2] < thr:
            continue
        for j2 in range(w):
            e = base + (G[j1 * w + j2] + N2[i2, j2])
            if e >= thr:
                if q < cap:
                    idx[k, q] = col_map[j1 * w + j2]
                    vals[k, q] = fast_exp(fk + e)
                q += 1
    return q


@jit(parallel=True)
def grid_kept(N1, N2, F, G, Bmax, rowmax, rows, col_map, delta, cap):
    w = Bmax.shape[1]
    n = rows.shape[0]
    count = np.empty(n, dtype=np.int64)
    raised = np.empty(n, dtype=np.int64)
    idx = np.empty((n, cap), dtype=np.int32)
    vals = np.empty((n, cap))
    for k in prange(n):
        i1 = rows[k] // w
        i2 = rows[k] % w
        top = rowmax[k]
        # the last resort keeps the row's largest: a hair below it, so that rounding cannot drop it
        last = top - 1e-12 * (1.0 + abs(top))
        chosen = RAISES + 1
        q = cap + 1
        d = delta
        for s in range(RAISES + 1):
            if not d < 1.0:
                break
            # collected while counted: a row that fits at its first level is read once
            q = _grid_collect(N1, N2, G, Bmax, i1, i2, top + math.log(d), F[k], col_map, idx, vals, k, cap)
            if q <= cap:
                chosen = s
                break
            d = d * 10.0
        if chosen > RAISES:
            q = min(cap, _grid_collect(N1, N2, G, Bmax, i1, i2, last, F[k], col_map, idx, vals, k, cap))
        raised[k] = chosen
        count[k] = q
    return count, raised, idx, vals


@jit(parallel=True)
def grid_plan(N1, N2, F, G, rows, cols, out):
    w = N2.shape[0]
    m = cols.shape[0]
    c1 = cols // w
    c2 = cols % w
    for k in prange(rows.shape[0]):
        i1 = rows[k] // w
        i2 = rows[k] % w
        fk = F[k]
        for l in range(m):
            out[k, l] = fast_exp(fk + G[l] + N1[i1, c1[l]] + N2[i2, c2[l]])
    return out

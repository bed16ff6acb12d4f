"""numba kernels of the entropic OT solvers; see the fallback module for the
definitions.  Every kernel is one pass (or two, the first without exp) over
the cost matrix, parallel over blocks of rows; column reductions use one
accumulator per block, merged at the end, so ``M`` is always read row by row
(no transposed copy)."""

import math

import numpy as np
from numba import get_num_threads, prange

from ..._backend import jit
from ._fastexp import fast_exp


def _blocks(n):
    # Blocks of rows for the column reductions: one per thread.  Read here,
    # outside the compiled code, so that the kernels can be cached on disk.
    return max(1, min(get_num_threads(), n))


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


def sns_eval(M, f, g, reg, k):
    return _sns_eval(M, f, g, reg, k, _blocks(M.shape[0]))


@jit(parallel=True)
def _sns_eval(M, f, g, reg, k, nb):
    n, m = M.shape
    inv = 1.0 / reg
    r = np.empty(n)
    topv = np.full((n, k), -1.0)
    topi = np.full((n, k), -1, dtype=np.int64)
    csum = np.zeros((nb, m))
    cmax = np.full((nb, m), -1.0)
    carg = np.zeros((nb, m), dtype=np.int64)
    for b in prange(nb):
        lo = b * n // nb
        hi = (b + 1) * n // nb
        row = np.empty(m)
        cs = csum[b]
        cm = cmax[b]
        ca = carg[b]
        for i in range(lo, hi):
            fi = f[i]
            s = 0.0
            for j in range(m):
                p = fast_exp((fi + g[j] - M[i, j]) * inv)
                row[j] = p
                s += p
                cs[j] += p
            r[i] = s
            hv = topv[i]
            hi = topi[i]
            for j in range(m):
                p = row[j]
                if p > cm[j]:
                    cm[j] = p
                    ca[j] = i
                if p > hv[0]:
                    # The row's k largest as a min-heap: replace the root, sift down.
                    q = 0
                    while True:
                        child = 2 * q + 1
                        if child >= k:
                            break
                        if child + 1 < k and hv[child + 1] < hv[child]:
                            child += 1
                        if hv[child] >= p:
                            break
                        hv[q] = hv[child]
                        hi[q] = hi[child]
                        q = child
                    hv[q] = p
                    hi[q] = j
            # the row's largest goes first (the heap order is not needed after)
            best = 0
            for q in range(1, k):
                if hv[q] > hv[best]:
                    best = q
            hv[0], hv[best] = hv[best], hv[0]
            hi[0], hi[best] = hi[best], hi[0]
    c = np.zeros(m)
    colv = np.full(m, -1.0)
    coli = np.zeros(m, dtype=np.int64)
    for b in range(nb):
        for j in range(m):
            c[j] += csum[b, j]
            if cmax[b, j] > colv[j]:
                colv[j] = cmax[b, j]
                coli[j] = carg[b, j]
    return r, c, topv, topi, colv, coli

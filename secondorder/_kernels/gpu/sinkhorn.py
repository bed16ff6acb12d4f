"""CUDA kernels of the entropic OT solvers; see the fallback module for the
definitions.

Layout of the passes over the n x m cost matrix (row-major):

* row reductions (``lse_rows``, ``transport_cost`` and ``sns_eval``'s row
  sums with the ``k`` largest entries, a heap per row): a thread per row
  over tiles of 32 x 32 entries staged in shared memory, so that a warp's
  reads stay coalesced while each row is scanned in order, as on the CPU
  (``lse_rows`` keeps an online log-sum-exp: one exp per entry, one pass);
* column reductions (``lse_cols``, the column half of ``sns_eval``): one
  thread per column walking down the rows, so a warp reads 32 consecutive
  entries of a row at a time.

Accumulators are float64 whatever the dtype of ``M``; exponents are clamped
to [-500, 700] as in the CPU kernels.
"""

import math

from numba import float64

from ._cuda import LOWER, TPB, UPPER, blocks, cuda
from ..._backend import get_namespace

__all__ = ["lse_rows", "lse_cols", "scaled_kernel", "transport_cost", "sns_eval"]

_TILE = 32  # rows per block and columns per tile of the row passes


@cuda.jit(device=True, inline=True)
def _clamped_exp(z):
    return math.exp(min(max(z, LOWER), UPPER))


@cuda.jit(device=True, inline=True)
def _lse_push(mx, s, z):
    """The running (max, sum of exp(. - max)) after one more term ``z``."""
    if z > mx:
        return z, s * math.exp(mx - z) + 1.0
    if z > -math.inf:
        return mx, s + math.exp(z - mx)
    if z != z:  # NaN
        return z, z
    return mx, s


@cuda.jit(device=True, inline=True)
def _lse_value(mx, s):
    if s > 0.0:
        return mx + math.log(s)
    return -math.inf if s == 0.0 else s  # no mass at all; NaN


@cuda.jit
def _lse_rows(M, g, inv, out):
    n, m = M.shape
    t = cuda.threadIdx.x
    row0 = cuda.blockIdx.x * _TILE
    i = row0 + t
    tile = cuda.shared.array((_TILE, _TILE + 1), dtype=float64)
    mx = -math.inf
    s = 0.0
    for col0 in range(0, m, _TILE):
        j = col0 + t
        for q in range(_TILE):
            if row0 + q < n and j < m:
                tile[q, t] = (g[j] - M[row0 + q, j]) * inv
        cuda.syncthreads()
        if i < n:
            for q in range(min(_TILE, m - col0)):
                mx, s = _lse_push(mx, s, tile[t, q])
        cuda.syncthreads()
    if i < n:
        out[i] = _lse_value(mx, s)


def lse_rows(M, g, reg, out):
    """``out[i] = LSE_j((g_j - M_ij)/reg)``."""
    _lse_rows[blocks(M.shape[0], _TILE), _TILE](M, g, 1.0 / reg, out)
    return out


@cuda.jit
def _lse_cols(M, f, inv, out):
    j = cuda.grid(1)
    if j >= M.shape[1]:
        return
    mx = -math.inf
    s = 0.0
    for i in range(M.shape[0]):
        mx, s = _lse_push(mx, s, (f[i] - M[i, j]) * inv)
    out[j] = _lse_value(mx, s)


def lse_cols(M, f, reg, out):
    """``out[j] = LSE_i((f_i - M_ij)/reg)``."""
    _lse_cols[blocks(M.shape[1]), TPB](M, f, 1.0 / reg, out)
    return out


@cuda.jit
def _scaled_kernel(M, f, g, inv, out):
    n, m = M.shape
    idx = cuda.grid(1)
    if idx < n * m:
        i = idx // m
        j = idx - i * m
        out[i, j] = _clamped_exp((f[i] + g[j] - M[i, j]) * inv)


def scaled_kernel(M, f, g, reg, out):
    """``out = exp((f 1^T + 1 g^T - M)/reg)``."""
    _scaled_kernel[blocks(M.shape[0] * M.shape[1]), TPB](M, f, g, 1.0 / reg, out)
    return out


@cuda.jit
def _transport_cost(M, f, g, inv, partial):
    n, m = M.shape
    t = cuda.threadIdx.x
    row0 = cuda.blockIdx.x * _TILE
    i = row0 + t
    tile = cuda.shared.array((_TILE, _TILE + 1), dtype=float64)
    s = 0.0
    for col0 in range(0, m, _TILE):
        j = col0 + t
        for q in range(_TILE):
            if row0 + q < n and j < m:
                c = M[row0 + q, j]
                tile[q, t] = _clamped_exp((f[row0 + q] + g[j] - c) * inv) * c
        cuda.syncthreads()
        if i < n:
            for q in range(min(_TILE, m - col0)):
                s += tile[t, q]
        cuda.syncthreads()
    if i < n:
        partial[i] = s


def transport_cost(M, f, g, reg):
    """``sum_ij P_ij M_ij`` without storing ``P``."""
    xp = get_namespace(M)
    partial = xp.empty(M.shape[0])
    _transport_cost[blocks(M.shape[0], _TILE), _TILE](M, f, g, 1.0 / reg, partial)
    return float(partial.sum())


@cuda.jit
def _sns_rows(M, f, g, inv, r, topv, topi):
    n, m = M.shape
    k = topv.shape[1]
    t = cuda.threadIdx.x
    row0 = cuda.blockIdx.x * _TILE
    i = row0 + t
    tile = cuda.shared.array((_TILE, _TILE + 1), dtype=float64)
    s = 0.0
    for col0 in range(0, m, _TILE):
        # stage P's tile: thread t reads column col0 + t of each row (coalesced)
        j = col0 + t
        for q in range(_TILE):
            if row0 + q < n and j < m:
                tile[q, t] = _clamped_exp((f[row0 + q] + g[j] - M[row0 + q, j]) * inv)
        cuda.syncthreads()
        if i < n:
            for q in range(min(_TILE, m - col0)):
                p = tile[t, q]
                s += p
                if p > topv[i, 0]:
                    # the row's k largest as a min-heap: replace the root, sift down
                    a = 0
                    while True:
                        child = 2 * a + 1
                        if child >= k:
                            break
                        if child + 1 < k and topv[i, child + 1] < topv[i, child]:
                            child += 1
                        if topv[i, child] >= p:
                            break
                        topv[i, a] = topv[i, child]
                        topi[i, a] = topi[i, child]
                        a = child
                    topv[i, a] = p
                    topi[i, a] = col0 + q
        cuda.syncthreads()
    if i < n:
        r[i] = s
        # the row's largest first
        best = 0
        for a in range(1, k):
            if topv[i, a] > topv[i, best]:
                best = a
        v, c = topv[i, 0], topi[i, 0]
        topv[i, 0], topi[i, 0] = topv[i, best], topi[i, best]
        topv[i, best], topi[i, best] = v, c


@cuda.jit
def _sns_cols(M, f, g, inv, c, colv, coli):
    j = cuda.grid(1)
    if j >= M.shape[1]:
        return
    s = 0.0
    best = -1.0
    arg = 0
    gj = g[j]
    for i in range(M.shape[0]):
        p = _clamped_exp((f[i] + gj - M[i, j]) * inv)
        s += p
        if p > best:
            best = p
            arg = i
    c[j] = s
    colv[j] = best
    coli[j] = arg


def sns_eval(M, f, g, reg, k):
    """Row and column sums of ``P``, each row's ``k`` largest entries (the
    largest first) and each column's largest (two passes: rows, columns)."""
    xp = get_namespace(M)
    n, m = M.shape
    inv = 1.0 / reg
    r = xp.empty(n)
    c = xp.empty(m)
    topv = xp.full((n, k), -1.0)
    topi = xp.full((n, k), -1, dtype=xp.int64)
    colv = xp.empty(m)
    coli = xp.empty(m, dtype=xp.int64)
    _sns_rows[blocks(n, _TILE), _TILE](M, f, g, inv, r, topv, topi)
    _sns_cols[blocks(m), TPB](M, f, g, inv, c, colv, coli)
    return r, c, topv, topi, colv, coli

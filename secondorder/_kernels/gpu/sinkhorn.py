"""CUDA kernels of the entropic OT solvers; see the fallback module for the
definitions.

Layout of the passes over the n x m cost matrix (row-major):

* row reductions (``lse_rows``, ``transport_cost`` and ``sns_eval``'s row
  sums with each row's large entries, three scans of the row): a thread per row
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

from numba import float64, int64

from ._cuda import LOWER, TPB, UPPER, blocks, cuda
from ..._backend import get_namespace
from ..fallback.sinkhorn import RAISES

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
def _sns_rows(M, f, g, inv, delta, raises, r, count, raised, idx, vals):
    # Three scans of each row, tiles staged as in the other row passes: the
    # largest entry; the sum and the count above each threshold level; the
    # entries kept at the chosen level (see the fallback module).
    n, m = M.shape
    cap = idx.shape[1]
    t = cuda.threadIdx.x
    row0 = cuda.blockIdx.x * _TILE
    i = row0 + t
    tile = cuda.shared.array((_TILE, _TILE + 1), dtype=float64)
    levels = cuda.local.array(8, dtype=float64)
    counts = cuda.local.array(8, dtype=int64)
    mx = 0.0
    s = 0.0
    keep = 0.0
    level = 0
    q_out = 0
    for phase in range(3):
        if phase == 1:
            d = delta
            for lv in range(raises + 1):
                # a level at or above the max stands for the max itself
                levels[lv] = mx * d if d < 1.0 else mx
                counts[lv] = 0
                d = d * 10.0
        for col0 in range(0, m, _TILE):
            j = col0 + t
            for q in range(_TILE):
                if row0 + q < n and j < m:
                    tile[q, t] = _clamped_exp((f[row0 + q] + g[j] - M[row0 + q, j]) * inv)
            cuda.syncthreads()
            if i < n:
                for q in range(min(_TILE, m - col0)):
                    p = tile[t, q]
                    if phase == 0:
                        mx = max(mx, p)
                    elif phase == 1:
                        s += p
                        for lv in range(raises + 1):
                            if p >= levels[lv]:
                                counts[lv] += 1
                    elif p >= keep and q_out < cap:
                        idx[i, q_out] = col0 + q
                        vals[i, q_out] = p
                        q_out += 1
            cuda.syncthreads()
        if phase == 1:
            keep = mx
            level = raises + 1
            d = delta
            for lv in range(raises + 1):
                if not d < 1.0:
                    break
                if counts[lv] <= cap:
                    keep = levels[lv]
                    level = lv
                    break
                d = d * 10.0
    if i < n:
        r[i] = s
        count[i] = q_out
        raised[i] = level


@cuda.jit
def _sns_cols(M, f, g, inv, c):
    j = cuda.grid(1)
    if j >= M.shape[1]:
        return
    s = 0.0
    gj = g[j]
    for i in range(M.shape[0]):
        s += _clamped_exp((f[i] + gj - M[i, j]) * inv)
    c[j] = s


def sns_eval(M, f, g, reg, delta, cap, out=None):
    """Row and column sums of ``P`` and each row's large entries (three
    scans of the rows, one of the columns)."""
    xp = get_namespace(M)
    n, m = M.shape
    inv = 1.0 / reg
    r = xp.empty(n)
    c = xp.empty(m)
    count = xp.empty(n, dtype=xp.int64)
    raised = xp.empty(n, dtype=xp.int64)
    idx = xp.empty((n, cap), dtype=xp.int32)
    vals = xp.empty((n, cap))
    _sns_rows[blocks(n, _TILE), _TILE](M, f, g, inv, float(delta), RAISES, r, count, raised, idx, vals)
    _sns_cols[blocks(m), TPB](M, f, g, inv, c)
    return r, c, count, raised, idx, vals

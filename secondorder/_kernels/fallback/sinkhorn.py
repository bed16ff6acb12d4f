r"""Kernels of the entropic OT solvers (NumPy/CuPy reference).

With potentials ``f`` (rows) and ``g`` (columns) in cost units, the plan is
:math:`P_{ij} = \exp((f_i + g_j - M_{ij})/\varepsilon)`, :math:`\varepsilon`
= ``reg``.  Exponents are clamped to [-500, 700] as in the compiled kernels:
entries below :math:`e^{-500}` carry no mass that matters and would
otherwise end as denormals.
"""

from ..._backend import get_namespace

LOWER = -500.0
UPPER = 700.0
# raises of the keep threshold of ``sns_eval`` (delta -> 10 delta) before it is the row's max
RAISES = 6


def _exp(xp, z):
    return xp.exp(xp.clip(z, min=LOWER, max=UPPER))


def _lse(xp, t, axis):
    mx = xp.max(t, axis=axis, keepdims=True)
    mx = xp.where(xp.isfinite(mx), mx, 0.0)  # a row of -inf only: LSE -inf, not NaN
    return xp.squeeze(mx, axis=axis) + xp.log(xp.sum(xp.exp(t - mx), axis=axis))


def value_range(M):
    """``(max(M), min(M))`` as floats; NaN where ``M`` holds one."""
    xp = get_namespace(M)
    return float(xp.max(M)), float(xp.min(M))


def lse_rows(M, g, reg, out):
    """``out[i] = LSE_j((g_j - M_ij)/reg)``."""
    xp = get_namespace(M)
    out[...] = _lse(xp, (g[None, :] - M) / reg, 1)
    return out


def lse_cols(M, f, reg, out):
    """``out[j] = LSE_i((f_i - M_ij)/reg)``."""
    xp = get_namespace(M)
    out[...] = _lse(xp, (f[:, None] - M) / reg, 0)
    return out


def row_scaled_kernel(M, log_a, reg, out):
    """The cold start of the scaling iterations: ``f = reg (log_a -
    LSE_j(-M_ij/reg))``, the potentials for ``g = 0`` whose kernel rows
    carry masses ``a``, and ``out = exp((f 1^T - M)/reg)``; returns ``f``.
    (The compiled kernels make both in one pass, each row in cache.)"""
    xp = get_namespace(M)
    f = reg * (log_a - lse_rows(M, xp.zeros(M.shape[1], dtype=xp.float64), reg, xp.empty(M.shape[0], dtype=xp.float64)))
    scaled_kernel(M, f, xp.zeros(M.shape[1], dtype=xp.float64), reg, out)
    return f


def scaled_kernel(M, f, g, reg, out):
    """``out = exp((f 1^T + 1 g^T - M)/reg)``: the plan, or the kernel of the
    scaling iterations after absorbing the potentials."""
    xp = get_namespace(M)
    out[...] = xp.astype(_exp(xp, (f[:, None] + g[None, :] - M) / reg), out.dtype)
    return out


def transport_cost(M, f, g, reg):
    """``sum_ij P_ij M_ij`` without storing ``P``."""
    xp = get_namespace(M)
    return float(xp.sum(_exp(xp, (f[:, None] + g[None, :] - M) / reg) * M))


def sns_eval(M, f, g, reg, delta, cap, out=None):
    """One pass over ``P``: its row sums ``r`` and column sums ``c``, and
    each row's large entries, those at least ``t_i = d * max_j P_ij`` with
    ``d = delta * 10**s`` for the first ``s <= RAISES`` (``s = raised[i]``)
    with ``d < 1`` that keeps at most ``cap <= m`` entries (else ``d = 1``,
    ``s = RAISES + 1``): ``count[i]`` of them, their columns
    ``idx[i, :count[i]]`` (ascending; int32) and values
    ``vals[i, :count[i]]``; beyond ``count[i]`` the contents are
    unspecified.  Where more than ``cap`` entries tie at the row's largest,
    the first ``cap`` columns.  ``out``: ``(idx, vals)`` arrays of shape
    (n, cap) that a kernel may write into (this one makes new ones)."""
    xp = get_namespace(M)
    P = _exp(xp, (f[:, None] + g[None, :] - M) / reg)
    r = xp.sum(P, axis=1)
    c = xp.sum(P, axis=0)
    return (r, c) + _kept(xp, P, delta, cap)


def _kept(xp, P, delta, cap):
    """``(count, raised, idx, vals)`` of :func:`sns_eval` for the rows of ``P``."""
    n, m = P.shape
    mx = xp.max(P, axis=1)
    t = mx
    raised = xp.full((n,), RAISES + 1, dtype=xp.int64)
    levels = []
    d = delta
    for _ in range(RAISES + 1):
        if not d < 1.0:
            break
        levels.append(d)
        d = d * 10.0
    for s, d in reversed(list(enumerate(levels))):  # the first level that fits wins: go from the last
        tl = mx * d
        fits = xp.sum(xp.astype(P >= tl[:, None], xp.int64), axis=1) <= cap
        t = xp.where(fits, tl, t)
        raised = xp.where(fits, s, raised)
    mask = P >= t[:, None]
    columns = xp.arange(m, dtype=xp.int64)
    order = xp.argsort(xp.where(mask, columns[None, :], columns[None, :] + m), axis=1, stable=True)[:, :cap]
    count = xp.minimum(xp.sum(xp.astype(mask, xp.int64), axis=1), cap)
    return count, raised, xp.astype(order, xp.int32), xp.take_along_axis(P, order, axis=1)


def sns_eval_sparse(count, cols, entries, ef, eg, delta, cap, m, out=None):
    """:func:`sns_eval` for a plan given by some of its entries, in the
    layout :func:`sns_eval` keeps them: row ``i`` holds ``entries[i, k] *
    ef[i] * eg[cols[i, k]]`` at column ``cols[i, k]`` for ``k <
    count[i]`` (columns ascending) and zeros elsewhere.  Entries of a plan
    at potentials ``(f0, g0)`` so give the plan at ``(f, g)``, with ``ef =
    exp((f - f0)/reg)`` and ``eg = exp((g - g0)/reg)``, without an exp per
    entry.  Same outputs and contract as :func:`sns_eval`; ``m`` columns.
    ``out``: ``(idx, vals)`` arrays of shape (n, cap) that a kernel may
    write the kept entries into (this one makes new ones)."""
    xp = get_namespace(entries)
    n, width = cols.shape
    valid = xp.arange(width, dtype=count.dtype)[None, :] < count[:, None]
    safe = xp.where(valid, xp.astype(cols, xp.int64), 0)
    flat = xp.reshape(safe, (-1,))
    P = xp.where(valid, entries, 0.0) * ef[:, None] * xp.reshape(xp.take(eg, flat), (n, width))
    r = xp.sum(P, axis=1)
    # the column sums: one "row" of every entry, each column its own group (the padding adds zeros to column 0)
    bounds = xp.asarray([0, n * width], dtype=xp.int64)
    c = group_sums(xp.reshape(P, (-1,)), flat, bounds, xp.arange(m, dtype=xp.int64), m)[0, :]
    count, raised, order, vals = _kept(xp, P, delta, cap)
    idx = xp.take_along_axis(safe, xp.astype(order, xp.int64), axis=1)
    return r, c, count, raised, xp.astype(idx, xp.int32), vals


def group_gram(data, indices, indptr, groups, k, w):
    """``Q^T diag(w) Q`` (k x k) for ``Q = group_sums(data, indices,
    indptr, groups, k)``."""
    xp = get_namespace(data)
    Q = group_sums(data, indices, indptr, groups, k)
    return xp.matrix_transpose(Q) @ (Q * w[:, None])


def row_max(count, vals, block=1024):
    """The largest of each row's first ``count`` entries of ``vals`` (0 for
    an empty row), by blocks of rows (bounded temporaries)."""
    xp = get_namespace(vals)
    n, width = vals.shape
    slots = xp.arange(width, dtype=count.dtype)[None, :]
    parts = []
    for lo in range(0, n, block):
        hi = min(lo + block, n)
        parts.append(xp.max(xp.where(slots < count[lo:hi, None], vals[lo:hi, ...], 0.0), axis=1))
    return xp.concat(parts)


def kept_csr(count, idx, vals, out=None):
    """The kept entries of :func:`sns_eval` as CSR arrays ``(data,
    indices, indptr)``: row ``i``'s first ``count[i]`` of ``idx`` and
    ``vals``, rows one after the other.  ``out``: arrays ``(data,
    indices)`` of that size that the compiled kernel writes them into
    (here new ones are made)."""
    xp = get_namespace(vals)
    cap = idx.shape[1]
    keep = xp.arange(cap, dtype=count.dtype)[None, :] < count[:, None]
    indptr = xp.concat([xp.zeros(1, dtype=count.dtype), xp.cumulative_sum(count)])
    return vals[keep], idx[keep], indptr


def group_sums(data, indices, indptr, groups, k):
    """``Q[i, a] = sum of the entries of row i whose column j has
    groups[j] == a``, an (n, k) array, for the sparse rows ``(data,
    indices, indptr)`` (CSR); columns with ``groups[j] < 0`` are left out.
    Each row's entries go into a segment of their own per group: a sorted
    key, a cumulative sum and its differences at the segments' bounds (the
    standard has no scatter-add)."""
    xp = get_namespace(data)
    n = indptr.shape[0] - 1
    nnz = data.shape[0]
    if nnz == 0:
        return xp.zeros((n, k), dtype=data.dtype)
    rows = xp.searchsorted(indptr[1:], xp.arange(nnz, dtype=indptr.dtype), side="right")
    g = xp.take(groups, xp.astype(indices, xp.int64))
    key = xp.astype(rows, xp.int64) * (k + 1) + xp.astype(xp.where(g < 0, k, g), xp.int64)
    order = xp.argsort(key, stable=True)
    sums = xp.concat([xp.zeros(1, dtype=data.dtype), xp.cumulative_sum(xp.take(data, order))])
    bounds = xp.searchsorted(xp.take(key, order), xp.arange(n * (k + 1) + 1, dtype=xp.int64))
    Q = xp.take(sums, bounds[1:]) - xp.take(sums, bounds[:-1])
    return xp.reshape(Q, (n, k + 1))[:, :k]


# Separable costs on a grid (:class:`~secondorder.ot.GridCost`).  A cell of an
# (h, w) grid is i = i1 * w + i2; the cost is C_ij = T1[i1, j1] + T2[i2, j2],
# so in log units, with N = -T / reg, P_ij = exp(F_i + G_j + N1[i1, j1] +
# N2[i2, j2]) (F = f / reg, G = g / reg).  A sum over j then runs over j2 for
# each j1 first and over j1 after: two passes of n * w and n * h terms instead
# of one of n * n.

# rows of the grid kernels' blocks in the generic code: bounds their temporaries
_BLOCK = 1 << 22


def lse_axis(X, N, out, out_max):
    """``out[a, p] = LSE_q(X[a, q] + N[p, q])`` and ``out_max[a, p] =
    max_q(X[a, q] + N[p, q])`` (-inf where every term is -inf)."""
    xp = get_namespace(X)
    A, Q = X.shape
    step = max(1, _BLOCK // max(1, N.shape[0] * Q))
    for lo in range(0, A, step):
        hi = min(lo + step, A)  # the standard leaves slices past the end unspecified
        t = X[lo:hi, None, :] + N[None, :, :]
        mx = xp.max(t, axis=2, keepdims=True)
        safe = xp.where(xp.isfinite(mx), mx, 0.0)
        out[lo:hi, ...] = xp.squeeze(safe, axis=2) + xp.log(xp.sum(xp.exp(t - safe), axis=2))
        out_max[lo:hi, ...] = xp.squeeze(mx, axis=2)
    return out, out_max


def _grid_rows(N1, N2, F, G, rows, cols):
    """exp(F_i + G_j + N1[i1, j1] + N2[i2, j2]) for the cells ``rows`` and
    ``cols`` (full-grid indices; F over ``rows``, G over ``cols``)."""
    xp = get_namespace(N1)
    w = N2.shape[0]
    i1, i2 = rows // w, rows % w
    j1, j2 = cols // w, cols % w
    t = F[:, None] + G[None, :] + xp.take(xp.take(N1, i1, axis=0), j1, axis=1)
    return _exp(xp, t + xp.take(xp.take(N2, i2, axis=0), j2, axis=1))


def grid_kept(N1, N2, F, G, Bmax, rowmax, rows, col_map, delta, cap):
    """The kept entries of :func:`sns_eval` (same contract: ``count``,
    ``raised``, ``idx``, ``vals``; columns are full-grid indices) for the
    cells ``rows`` of a grid cost, with ``F`` over ``rows`` and ``G`` over
    the whole grid (-inf off the support).  ``Bmax[j1, i2] = max_j2(G_j +
    N2[i2, j2])`` and ``rowmax[k] = max_j(G_j + N_{rows[k], j})`` let the
    compiled kernel skip the bands j1 that hold nothing to keep; this one
    computes each row whole."""
    xp = get_namespace(N1)
    n = G.shape[0]
    cols = xp.arange(n, dtype=rows.dtype)
    step = max(1, _BLOCK // n)
    n_rows = rows.shape[0]
    parts = [_kept(xp, _grid_rows(N1, N2, F[lo:min(lo + step, n_rows)], G, rows[lo:min(lo + step, n_rows)], cols),
                   delta, cap) for lo in range(0, n_rows, step)]
    count, raised, idx, vals = (xp.concat([p[k] for p in parts]) for k in range(4))
    places = xp.take(col_map, xp.reshape(xp.astype(idx, xp.int64), (-1,)))
    return count, raised, xp.astype(xp.reshape(places, idx.shape), xp.int32), vals


def grid_plan(N1, N2, F, G, rows, cols, out):
    """``out[k, l] = P[rows[k], cols[l]]``: the plan on the support."""
    xp = get_namespace(N1)
    step = max(1, _BLOCK // max(1, cols.shape[0]))
    for lo in range(0, rows.shape[0], step):
        hi = min(lo + step, rows.shape[0])
        out[lo:hi, ...] = xp.astype(_grid_rows(N1, N2, F[lo:hi], G, rows[lo:hi], cols), out.dtype)
    return out

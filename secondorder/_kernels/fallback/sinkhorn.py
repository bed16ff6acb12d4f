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


def scaled_kernel(M, f, g, reg, out):
    """``out = exp((f 1^T + 1 g^T - M)/reg)``: the plan, or the kernel of the
    scaling iterations after absorbing the potentials."""
    xp = get_namespace(M)
    out[...] = _exp(xp, (f[:, None] + g[None, :] - M) / reg)
    return out


def transport_cost(M, f, g, reg):
    """``sum_ij P_ij M_ij`` without storing ``P``."""
    xp = get_namespace(M)
    return float(xp.sum(_exp(xp, (f[:, None] + g[None, :] - M) / reg) * M))


def sns_eval(M, f, g, reg, delta, cap):
    """One pass over ``P``: its row sums ``r`` and column sums ``c``, and
    each row's large entries, those at least ``t_i = d * max_j P_ij`` with
    ``d = delta * 10**s`` for the first ``s <= RAISES`` (``s = raised[i]``)
    with ``d < 1`` that keeps at most ``cap <= m`` entries (else ``d = 1``,
    ``s = RAISES + 1``): ``count[i]`` of them, their columns
    ``idx[i, :count[i]]`` (ascending; int32) and values
    ``vals[i, :count[i]]``; beyond ``count[i]`` the contents are
    unspecified.  Where more than ``cap`` entries tie at the row's largest,
    the first ``cap`` columns."""
    xp = get_namespace(M)
    n, m = M.shape
    P = _exp(xp, (f[:, None] + g[None, :] - M) / reg)
    r = xp.sum(P, axis=1)
    c = xp.sum(P, axis=0)
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
    return r, c, count, raised, xp.astype(order, xp.int32), xp.take_along_axis(P, order, axis=1)

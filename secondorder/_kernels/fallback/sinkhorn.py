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


def sns_eval(M, f, g, reg, k):
    """One pass over ``P``: its row and column sums, the ``k`` largest entries
    of each row (values and column indices; the row's largest first, the
    others in any order) and the largest entry of each column (value, row
    index)."""
    xp = get_namespace(M)
    P = _exp(xp, (f[:, None] + g[None, :] - M) / reg)
    r = xp.sum(P, axis=1)
    c = xp.sum(P, axis=0)
    order = xp.argsort(-P, axis=1, stable=True)[:, :k]
    topv = xp.take_along_axis(P, order, axis=1)
    coli = xp.argmax(P, axis=0)
    colv = xp.max(P, axis=0)
    return r, c, topv, order, colv, coli

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
    return xp.exp(xp.clip(z, LOWER, UPPER))


def lse_rows(M, g, reg, out):
    """``out[i] = LSE_j((g_j - M_ij)/reg)``."""
    xp = get_namespace(M)
    t = (g[None, :] - M) / reg
    mx = t.max(axis=1)
    out[:] = mx + xp.log(xp.exp(t - mx[:, None]).sum(axis=1))
    return out


def lse_cols(M, f, reg, out):
    """``out[j] = LSE_i((f_i - M_ij)/reg)``."""
    xp = get_namespace(M)
    t = (f[:, None] - M) / reg
    mx = t.max(axis=0)
    out[:] = mx + xp.log(xp.exp(t - mx[None, :]).sum(axis=0))
    return out


def scaled_kernel(M, f, g, reg, out):
    """``out = exp((f 1^T + 1 g^T - M)/reg)``: the plan, or the kernel of the
    scaling iterations after absorbing the potentials."""
    xp = get_namespace(M)
    out[:] = _exp(xp, (f[:, None] + g[None, :] - M) / reg)
    return out


def transport_cost(M, f, g, reg):
    """``sum_ij P_ij M_ij`` without storing ``P``."""
    xp = get_namespace(M)
    return float((_exp(xp, (f[:, None] + g[None, :] - M) / reg) * M).sum())


def sns_eval(M, f, g, reg, k):
    """One pass over ``P``: its row and column sums, the ``k`` largest entries
    of each row (values and column indices; the row's largest first, the
    others in any order) and the largest entry of each column (value, row
    index)."""
    xp = get_namespace(M)
    P = _exp(xp, (f[:, None] + g[None, :] - M) / reg)
    r = P.sum(axis=1)
    c = P.sum(axis=0)
    order = xp.argsort(-P, axis=1, kind="stable")[:, :k]
    topv = xp.take_along_axis(P, order, axis=1)
    coli = P.argmax(axis=0)
    colv = P[coli, xp.arange(P.shape[1])]
    return r, c, topv, order, colv, coli

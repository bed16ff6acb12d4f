r"""The passes of the entropic OT solvers on a separable grid cost.

On an :math:`h \times w` grid (cell :math:`i = i_1 w + i_2`) with
:math:`C_{ij} = T_1[i_1, j_1] + T_2[i_2, j_2]` and, in units of ``reg``,
:math:`N_k = -T_k/\varepsilon`, a log-sum-exp over the cells factors into
two over the axes,

.. math::

    \operatorname{LSE}_j (V_j - C_{ij}/\varepsilon) =
    \operatorname{LSE}_{j_1} \Big( N_1[i_1, j_1] + \underbrace{
    \operatorname{LSE}_{j_2} (V_{j_1 j_2} + N_2[i_2, j_2])}_{B[j_1, i_2]}
    \Big),

each a pass of :math:`n w` (then :math:`n h`) terms: a Sinkhorn half-step
costs :math:`O(n^{1.5})` on a square grid where the dense cost costs
:math:`O(n^2)`, and no n x n array exists.  The same two stages with
:math:`\log T_k` added to :math:`N_k` give the transport cost
:math:`\sum_{ij} P_{ij} C_{ij}`, and with max in place of LSE each row's
largest entry and a bound for each band :math:`j_1` of the row, from which
the kept entries of SNS's Hessian are collected without visiting the bands
that hold none.  The tables are symmetric (:math:`|i - j|^p`), so the
column sums use the same stages as the row sums.
"""

import numpy as np

from .._array_api import copy, from_host
from .._backend import get_namespace, is_cupy, kernels
from ._utils import OTProblem, _given, check_range, marginals

__all__ = ["GridProblem", "prepare_grid"]


class GridProblem(OTProblem):
    """An :class:`~secondorder.ot._utils.OTProblem` whose cost is a
    :class:`~secondorder.ot.GridCost`: the same methods, made through the
    separable stages (``M`` is the GridCost)."""

    dense = False

    def __init__(self, a, b, cost, reg, rows, cols, row_map, col_map, xp, like):
        dtype = cost.dtype if xp is np else (xp.float32 if cost.dtype == np.float32 else xp.float64)
        super().__init__(a, b, cost, reg, rows, cols, row_map, col_map, cost.shape, dtype, xp)
        T1, T2 = cost.tables
        self.h, self.w = T1.shape[0], T2.shape[0]
        self.T = tuple(from_host(xp, t, like) for t in (T1, T2))
        with np.errstate(divide="ignore"):
            self.logT = tuple(from_host(xp, np.log(t), like) for t in (T1, T2))
        n = cost.shape[0]
        self.row_cells = xp.arange(n, dtype=xp.int64) if rows is None else xp.astype(rows, xp.int64)
        self.col_cells = xp.arange(n, dtype=xp.int64) if cols is None else xp.astype(cols, xp.int64)
        # each cell's place on the support of b (the kept entries' column indices)
        self.col_index = xp.arange(n, dtype=xp.int64) if cols is None else xp.astype(col_map, xp.int64)

    def _N(self):
        """(N1, N2) = -(T1, T2) / reg, made once per reg."""
        if getattr(self, "_N_reg", None) != self.reg:
            self._N_tables = tuple(-t / self.reg for t in self.T)
            self._N_reg = self.reg
        return self._N_tables

    def _t(self, X):
        """X transposed, C-contiguous (the kernels read rows)."""
        xp = self.xp
        if xp is np or is_cupy(xp):
            return xp.ascontiguousarray(X.T)
        return copy(xp, xp.permute_dims(X, (1, 0)))

    def _stage(self, X, N):
        """``(LSE_q(X[a, q] + N[p, q]), max_q(...))``, both (A, P)."""
        xp = self.xp
        shape = (X.shape[0], N.shape[0])
        return kernels(xp).lse_axis(X, N, xp.empty(shape, dtype=xp.float64), xp.empty(shape, dtype=xp.float64))

    def _cells(self, X):
        """An (h, w) array of the (i1, i2) values, as i2-major (w, h) stage
        output, back to one value per cell."""
        return self.xp.reshape(self._t(X), (self.h * self.w,))

    def _lse(self, V, N1, N2):
        """``LSE_j(V_j + N1[i1, j1] + N2[i2, j2])`` for every cell i, and the
        first stage's (B, Bmax)."""
        B, Bmax = self._stage(self.xp.reshape(V, (self.h, self.w)), N2)
        return self._cells(self._stage(self._t(B), N1)[0]), B, Bmax

    def _full(self, v, index_map):
        """A vector on a support, on the whole grid (-inf elsewhere)."""
        return self._expand(v, index_map, -np.inf, 0)

    def _on(self, v, cells):
        return v if cells is None else self.xp.take(v, cells)

    def lse_rows(self, g, out):
        N1, N2 = self._N()
        out[...] = self._on(self._lse(self._full(g / self.reg, self.col_map), N1, N2)[0], self.rows)
        return out

    def lse_cols(self, f, out):
        N1, N2 = self._N()
        out[...] = self._on(self._lse(self._full(f / self.reg, self.row_map), N1, N2)[0], self.cols)
        return out

    def sns_eval(self, f, g, threshold, cap, out=None):
        xp = self.xp
        N1, N2 = self._N()
        F, G = f / self.reg, self._full(g / self.reg, self.col_map)
        row_lse, _, Bmax = self._lse(G, N1, N2)
        rowmax = self._on(self._cells(self._stage(self._t(Bmax), N1)[1]), self.rows)
        col_lse = self._on(self._lse(self._full(F, self.row_map), N1, N2)[0], self.cols)
        with np.errstate(over="ignore"):  # a trial far out: inf sums, rejected by the caller
            r = xp.exp(F + self._on(row_lse, self.rows))
            c = xp.exp(g / self.reg + col_lse)
        count, raised, idx, vals = kernels(xp).grid_kept(N1, N2, F, G, Bmax, rowmax, self.row_cells, self.col_index,
                                                         threshold, cap)
        return r, c, count, raised, idx, vals

    def cost_rows(self, rows):
        xp = self.xp
        T1, T2 = self.T
        i = xp.take(self.row_cells, rows)
        j1, j2 = self.col_cells // self.w, self.col_cells % self.w
        first = xp.take(xp.take(T1, i // self.w, axis=0), j1, axis=1)
        return first + xp.take(xp.take(T2, i % self.w, axis=0), j2, axis=1)

    def plan(self, f, g):
        xp = self.xp
        N1, N2 = self._N()
        out = xp.empty((self.row_cells.shape[0], self.col_cells.shape[0]), dtype=self.dtype)
        P = kernels(xp).grid_plan(N1, N2, f / self.reg, g / self.reg, self.row_cells, self.col_cells, out)
        return self.full_plan(P)

    def transport_cost(self, f, g):
        r"""``sum_ij P_ij (T1[i1, j1] + T2[i2, j2])``: each term's table
        enters one stage as :math:`\log T` added to :math:`N`."""
        xp = self.xp
        N1, N2 = self._N()
        (L1, L2), F = self.logT, self._full(f / self.reg, self.row_map)
        G = xp.reshape(self._full(g / self.reg, self.col_map), (self.h, self.w))
        B, _ = self._stage(G, N2)
        B2, _ = self._stage(G, N2 + L2)
        total = 0.0
        for stage in (self._stage(self._t(B), N1 + L1)[0], self._stage(self._t(B2), N1)[0]):
            total += float(xp.sum(xp.exp(self._on(F + self._cells(stage), self.rows))))
        return total


def prepare_grid(a, b, cost, reg, numItermax, stopThr):
    """:func:`~secondorder.ot._utils.prepare` for a GridCost: the marginals
    on their supports, and the cost's tables in their library."""
    xp = get_namespace(a if _given(a) else None, b if _given(b) else None)
    reg = check_range(cost.max, 0.0, reg)
    n = cost.shape[0]
    a, b, rows, cols, row_map, col_map = marginals(a, b, n, n, numItermax, stopThr, xp)
    return GridProblem(a, b, cost, reg, rows, cols, row_map, col_map, xp, a)

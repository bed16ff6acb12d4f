r"""M-FAC: matrix-free inverse-Hessian-vector products with the empirical Fisher.

Both models use the Woodbury form of

.. math::

    F = \lambda I + \frac1m G^T G, \qquad G \in \mathbb R^{k \times d}
    \text{ (one gradient per row, } k \le m),

.. math::

    F^{-1} x = \frac{x}{\lambda} - \frac{1}{\lambda^2} G^T A^{-1} G x,
    \qquad A = m I + \frac1\lambda G G^T \in \mathbb R^{k \times k},

which equals the Sherman-Morrison recursion of Frantar et al. (their
``HInvSlow`` oracle) in closed form.  ``A`` is symmetric positive definite
with condition number about :math:`1 + \sigma_{\max}(GG^T)/(\lambda m)`; its
algebra runs in float64 whatever the dtype of the gradients.
"""

import math

import numpy as np

from .._array_api import (
    add_diagonal,
    asarray_like,
    astype,
    concat,
    copy,
    diagonal,
    is_real_floating,
    scatter_zeros,
    solve_triangular,
    take,
    trust_region_eig,
    zeros_like_shape,
)
from .._backend import get_namespace, kernels
from .._validation import check_int, check_output, check_positive, check_vector
from ._base import Curvature, NotPositiveDefiniteError, NotUpdatedError

__all__ = ["MFAC", "MFACStatic"]


def _solve_upper_transposed(xp, U, b):
    """``U^{-T} b`` for an upper-triangular ``U``."""
    return solve_triangular(xp, U, b, lower=False, trans=True)


def _solve_upper(xp, U, b):
    """``U^{-1} b`` for an upper-triangular ``U``."""
    return solve_triangular(xp, U, b, lower=False)


def _lower_factor(xp, A):
    """The lower Cholesky factor of the positive definite ``A``, as an
    error when ``A`` is not (non-finite gradients, in practice)."""
    try:
        L = xp.linalg.cholesky(A)
    except np.linalg.LinAlgError as exc:
        raise NotPositiveDefiniteError("M-FAC: the window's matrix is not positive definite.") from exc
    if not bool(xp.all(xp.isfinite(diagonal(xp, L)))):
        # cuSOLVER leaves NaNs instead of raising
        raise NotPositiveDefiniteError("M-FAC: the window's matrix is not positive definite.")
    return L


class MFAC(Curvature):
    r"""Sliding-window M-FAC model of the Fisher (dynamic algorithm).

    Keeps the last ``window`` gradients (a ring buffer ``G``), their Gram
    matrix :math:`K = G G^T` and the Cholesky factor :math:`A = U^T U` of
    :math:`A = m I + K/\lambda`, with the gradients in the order they came.

    * Adding a gradient: one GEMV for its row and column of ``K``
      (:math:`O(dm)`) and an :math:`O(m^2)` change of the factor.  Replacing
      the oldest gradient changes one row and column of ``A``; instead of
      the symmetric rank-2 up/down-date (whose downdate loses accuracy when
      :math:`\lambda` is small), the factor drops its first row and column
      -- a rank-one *update* of the trailing block,
      :math:`U_{22}^T U_{22} + u_{12} u_{12}^T` -- and appends the new one by
      a triangular solve, with a pivot equal to a Schur complement of
      :math:`A \succeq mI`, hence at least :math:`\sqrt m`.  Both steps are
      backward stable.
    * ``solve(v)`` (the IHVP): two GEMVs and two triangular solves,
      :math:`O(dm + m^2)`.  :meth:`update_and_ihvp` reuses the new
      gradient's GEMV, so a preconditioned step costs two passes over ``G``.
    * ``solve(v, shift)`` with ``shift > 0``: the shift only changes ``A``
      (:math:`\lambda \to \lambda + \text{shift}`); one eigendecomposition of
      ``K`` per window serves every shift in :math:`O(dm + m^2)`.
    * ``trust_step(g, radius)``: exact.  ``F`` has eigenvalues
      :math:`\lambda + \kappa_i/m` on span(G) (:math:`\kappa_i` the
      eigenvalues of ``K``) and :math:`\lambda` on its complement, so the
      subproblem reduces to a secular equation in :math:`k + 1` unknowns.

    While the window fills (``k < m`` gradients seen) the sum runs over the
    ``k`` gradients present and the scale stays :math:`1/m`, as in the
    reference implementation: early steps are more damped.

    Parameters
    ----------
    window : int
        Number of gradients kept, ``m`` >= 1.
    damp : float
        :math:`\lambda > 0`.

    References
    ----------
    .. [1] E. Frantar, E. Kurtic and D. Alistarh, "M-FAC: Efficient
       Matrix-Free Approximations of Second-Order Information", NeurIPS 2021.
    """

    def __init__(self, window=64, damp=1e-5):
        self.window = check_int(window, "window", minimum=1)
        self.damp = _check_damp(damp)
        self.nhev = 0
        self.nfact = 0
        self.ncg = 0
        self._G = None
        self._K = None
        self._U = None
        self._count = 0
        self._next = 0
        self._factored = False  # whether _U holds the factor of the current window
        self._eig = None
        self._last = None  # (slot, G g) of the newest gradient

    @property
    def n_grads(self):
        """Gradients currently in the window."""
        return min(self._count, self.window)

    def _check_gradient(self, g):
        xp = get_namespace(g)
        if self._G is None:
            g = xp.asarray(g)
            if g.ndim != 1 or g.shape[0] == 0:
                raise ValueError(f"MFAC: a gradient must be a non-empty 1-D array; got shape {g.shape}.")
            dtype = xp.float32 if g.dtype == xp.float32 else xp.float64
            self._xp = xp
            self._G = zeros_like_shape(xp, (self.window, g.shape[0]), dtype, g)
            self._K = zeros_like_shape(xp, (self.window, self.window), xp.float64, g)
            self._U = zeros_like_shape(xp, (self.window, self.window), xp.float64, g)
        d = self._G.shape[1]
        try:
            g = check_output(g, (d,), "g", self._xp, self._G.dtype)
        except ValueError as exc:
            raise ValueError(f"MFAC: gradients must have length {d} (the first one's); got {tuple(getattr(g, 'shape', ()))}.") from exc
        # One pass: ||g||^2 is NaN or inf when g holds NaN or inf, and overflows (alone or over damp, in
        # the float64 Gram matrix) when g is too large for the window's algebra.
        with np.errstate(over="ignore", invalid="ignore"):  # judged just below
            gg = float(g @ g)
        if not (math.isfinite(gg) and math.isfinite(gg / self.damp)):
            if not bool(self._xp.all(self._xp.isfinite(g))):
                raise ValueError("MFAC: the gradient holds NaN or inf; the window only takes finite gradients.")
            raise ValueError(
                f"MFAC: the gradient is too large for damp={self.damp:g} (|g|^2 / damp overflows): scale the "
                "loss or the gradients down, or raise `damp`."
            )
        return g

    def _order(self):
        """Slots of the window's gradients, oldest first."""
        k = self.n_grads
        xp = self._xp
        slots = asarray_like(xp, np.arange(k), self._G, dtype=xp.int64)
        if self._count < self.window:
            return slots
        return (slots + self._next) % self.window

    def add(self, g):
        """Put ``g`` in the window (dropping the oldest when full).

        Returns :math:`G g` over the new window (float64, by slot), which is
        also the new row of the Gram matrix.
        """
        g = self._check_gradient(g)
        xp = self._xp
        m = self.window
        slot = self._next
        if self._factored and self._count >= m:
            # Drop the oldest gradient, first in the factor's order.
            kernels(xp).chol_drop_first_upper(self._U, m)
        self._G[slot, :] = g
        self._count += 1
        self._next = (self._next + 1) % m
        k = self.n_grads
        col = astype(xp, self._G[:k, :] @ g, xp.float64)
        self._K[slot, :k] = col
        self._K[:k, slot] = col
        if self._factored:
            order = self._order()
            U = self._U
            a = take(xp, col, order[:-1]) / self.damp
            if k > 1:
                l = _solve_upper_transposed(xp, U[: k - 1, : k - 1], a)
                U[: k - 1, k - 1] = l
                U[k - 1, : k - 1] = 0.0
                pivot = m + float(col[slot]) / self.damp - float(l @ l)
            else:
                pivot = m + float(col[slot]) / self.damp
            U[k - 1, k - 1] = math.sqrt(max(pivot, m))
        self._eig = None
        self._last = (slot, col)  # G g of the newest gradient: solve(g) right after reuses it
        return col

    def fill(self, grads):
        """Replace the window by the last ``window`` rows of ``grads``.

        One GEMM builds the Gram matrix (:math:`O(m^2 d)`), much faster than
        adding the gradients one by one.
        """
        xp = get_namespace(grads)
        grads = xp.asarray(grads)
        if grads.ndim != 2 or grads.shape[0] == 0:
            raise ValueError(f"`grads` must be a non-empty (k, d) array; got shape {grads.shape}.")
        grads = grads[-self.window :]
        self._G = None
        self._count = self._next = 0
        self._check_gradient(grads[0])
        if not bool(self._xp.all(self._xp.isfinite(grads))):
            raise ValueError("MFAC: `grads` holds NaN or inf; the window only takes finite gradients.")
        k = grads.shape[0]
        self._G[:k, :] = grads
        self._K[:k, :k] = astype(self._xp, self._G[:k, :] @ self._G[:k, :].T, self._xp.float64)
        self._count = k
        self._next = k % self.window
        self._factored = False
        self._eig = None
        self._last = None

    def update(self, x, g=None, **data):
        """Curvature protocol: the gradient at the new point joins the window."""
        if g is None:
            raise ValueError("MFAC.update needs the gradient: update(x, g).")
        self.add(g)

    def _factor(self):
        """The upper factor of A (oldest gradient first), refactored only
        after ``fill``."""
        k = self.n_grads
        if not self._factored:
            xp = self._xp
            order = self._order()
            A = take(xp, take(xp, self._K, order, 0), order, 1) / self.damp
            L = _lower_factor(xp, add_diagonal(xp, A, float(self.window)))
            self._U[:k, :k] = L.T
            self._factored = True
            self.nfact += 1
        return self._U[:k, :k]

    def _eigh(self):
        if self._eig is None:
            k = self.n_grads
            kappa, U = self._xp.linalg.eigh(self._K[:k, :k])
            self._eig = (self._xp.where(kappa > 0.0, kappa, 0.0), U)
            self.nfact += 1
        return self._eig

    def _inverse_apply(self, v, Gv, lam, use_chol):
        """:math:`(\\lambda I + G^TG/m)^{-1} v` given :math:`G v`."""
        xp = self._xp
        if use_chol:
            U = self._factor()
            order = self._order()
            # solved in the factor's order (oldest first), returned by slot
            y = _solve_upper(xp, U, _solve_upper_transposed(xp, U, take(xp, Gv, order)))
            y = take(xp, y, xp.argsort(order))
        else:
            kappa, U = self._eigh()
            y = U @ ((U.T @ Gv) / (self.window + kappa / lam))
        k = self.n_grads
        corr = self._G[:k, :].T @ astype(xp, y, self._G.dtype)
        return astype(xp, v / lam - corr / (lam * lam), v.dtype)

    def solve(self, v, shift=0.0):
        r"""``(F + shift I)^{-1} v`` in :math:`O(dm + m^2)`."""
        lam = self.damp + float(shift)
        if not lam > 0.0:
            raise NotPositiveDefiniteError(f"F + {float(shift):g} I is not positive definite (damp {self.damp:g}).")
        v = self._vector(v)
        if self.n_grads == 0:
            return v / lam
        xp = self._xp
        vg = astype(xp, v, self._G.dtype)
        last = getattr(self, "_last", None)
        if last is not None and bool(xp.all(self._G[last[0], :] == vg)):
            # the gradient just added (update(x, g) then solve(g), as the drivers call them): its products
            # with the window are the Gram matrix's new row, so the pair costs two passes over G, not three
            Gv = last[1]
        else:
            Gv = astype(xp, self._G[: self.n_grads, :] @ vg, xp.float64)
        return self._inverse_apply(v, Gv, lam, use_chol=float(shift) == 0.0)

    def ihvp(self, v):
        """Inverse-Fisher-vector product :math:`F^{-1} v`."""
        return self.solve(v, 0.0)

    def update_and_ihvp(self, g):
        """Add ``g`` to the window and return :math:`F^{-1} g` with the new
        window, in two passes over ``G`` (the M-FAC optimiser's step)."""
        Gg = self.add(g)
        g = self._G[(self._next - 1) % self.window, :]
        return self._inverse_apply(g, Gg, self.damp, use_chol=True)

    def _vector(self, v, name="v"):
        return check_vector(v, None if self._G is None else self._G.shape[1], name, self._xp_of(v))

    def _xp_of(self, v):
        return self._xp if getattr(self, "_xp", None) is not None else get_namespace(v)

    def matvec(self, v):
        v = self._vector(v)
        k = self.n_grads
        if k == 0:
            return self.damp * v
        G, xp = self._G[:k, :], self._xp
        return astype(xp, self.damp * v + (G.T @ (G @ astype(xp, v, G.dtype))) / self.window, v.dtype)

    def diagonal(self):
        """:math:`\\lambda + \\frac1m \\sum_i g_i^2`, :math:`O(dm)`."""
        if self._G is None:
            raise NotUpdatedError("MFAC: add a gradient first (the dimension is not known yet).")
        G = self._G[: self.n_grads, :]
        return self.damp + self._xp.sum(G * G, axis=0) / self.window

    def trust_step(self, g, radius):
        r"""Exact minimiser of :math:`g^Ts + \frac12 s^T F s` over :math:`\|s\| \le \Delta`."""
        radius = check_positive(radius, "radius")
        g = self._vector(g, "g")
        xp = get_namespace(g)
        with np.errstate(over="ignore"):  # judged just below
            gnorm2 = float(g @ g)
        if not math.isfinite(gnorm2):
            raise ValueError("`g` is too large: its squared norm overflows float64; scale the problem down.")
        k = self.n_grads
        if k == 0:  # F = damp I: a steepest-descent step, cut at the boundary
            gnorm = math.sqrt(gnorm2)
            if gnorm == 0.0:
                return xp.zeros_like(g), False
            return -g * min(1.0 / self.damp, float(radius) / gnorm), float(radius) / gnorm <= 1.0 / self.damp
        kappa, U = self._eigh()
        keep = xp.nonzero(kappa > 1e-12 * max(float(xp.max(kappa)), 1e-300))[0]
        kappa, U = take(xp, kappa, keep), take(xp, U, keep, axis=1)
        root = xp.sqrt(kappa)
        Gg = astype(xp, self._G[:k, :] @ astype(xp, g, self._G.dtype), xp.float64)
        b1 = (U.T @ Gg) / root  # g's coordinates on the orthonormal basis G^T U / sqrt(kappa)
        perp = math.sqrt(max(gnorm2 - float(b1 @ b1), 0.0))
        w = concat(xp, [self.damp + kappa / self.window, asarray_like(xp, [self.damp], kappa, dtype=kappa.dtype)])
        b = concat(xp, [b1, asarray_like(xp, [perp], b1, dtype=b1.dtype)])
        c, hits_boundary = trust_region_eig(xp, w, b, radius)
        # s = Q1 c1 + t g_perp with g_perp = g - Q1 b1, so s = Q1 (c1 - t b1) + t g: one pass over G.
        t = float(c[-1]) / perp if perp > 0.0 else 0.0
        coef = U @ ((c[:-1] - t * b1) / root)
        s = self._G[:k, :].T @ astype(xp, coef, self._G.dtype) + t * g
        return astype(xp, s, g.dtype), hits_boundary


class MFACStatic(Curvature):
    r"""M-FAC over a fixed set of gradients (static algorithm, for pruning).

    Precomputes :math:`W = L^{-1} G` with :math:`A = L L^T`
    (:math:`O(dm^2)`), after which

    * :math:`F^{-1} x = x/\lambda - W^T W x / \lambda^2`, :math:`O(dm)`;
    * :math:`[F^{-1}]_{qq} = 1/\lambda - \|W_{:,q}\|^2/\lambda^2`, all of
      them in :math:`O(dm)`;
    * any single element :math:`[F^{-1}]_{jq} = \delta_{jq}/\lambda - W_{:,j}^T
      W_{:,q}/\lambda^2` in :math:`O(m)`.

    Parameters
    ----------
    grads : array, shape (m, d)
        One gradient per row.
    damp : float
        :math:`\lambda > 0`.

    References
    ----------
    .. [1] E. Frantar, E. Kurtic and D. Alistarh, "M-FAC: Efficient
       Matrix-Free Approximations of Second-Order Information", NeurIPS 2021.
    .. [2] B. Hassibi and D. G. Stork, "Second order derivatives for network
       pruning: Optimal Brain Surgeon", NeurIPS 1992.
    """

    def __init__(self, grads, damp=1e-5):
        xp = get_namespace(grads)
        G = xp.asarray(grads)
        if getattr(G.dtype, "kind", "f") not in "fiub" and not is_real_floating(xp, G.dtype):
            raise TypeError(f"`grads` must hold real numbers; got dtype {G.dtype}.")
        if G.ndim != 2 or G.shape[0] == 0 or G.shape[1] == 0:
            raise ValueError(f"`grads` must be a non-empty (m, d) array, one gradient per row; got shape {G.shape}.")
        if not bool(xp.all(xp.isfinite(G))):
            raise ValueError("`grads` holds NaN or inf; pass finite gradients.")
        self.damp = _check_damp(damp)
        self._xp = xp
        self.dtype = xp.float32 if G.dtype == xp.float32 else xp.float64
        m = G.shape[0]
        self.window = m
        with np.errstate(over="ignore", invalid="ignore"):  # judged just below
            A = astype(xp, G @ G.T, xp.float64) / self.damp
        if not bool(xp.all(xp.isfinite(A))):
            raise ValueError(
                "`grads` are too large for `damp` (G G^T / damp overflows float64): scale the gradients down "
                "or raise `damp`."
            )
        L = _lower_factor(xp, add_diagonal(xp, A, float(m)))
        self._W = astype(xp, solve_triangular(xp, L, astype(xp, G, xp.float64), lower=True), self.dtype)
        self.nhev = 0
        self.nfact = 1
        self.ncg = 0
        self._diag_inv = None

    def update(self, x, g=None, **data):
        """The gradients are fixed: nothing to do."""

    def solve(self, v, shift=0.0):
        if float(shift) != 0.0:
            raise NotImplementedError("MFACStatic solves with its own damping only; build it with damp + shift.")
        W = self._W
        lam = self.damp
        xp = self._xp
        v = check_vector(v, W.shape[1], "v", xp)
        return astype(xp, v / lam - W.T @ (W @ astype(xp, v, W.dtype)) / (lam * lam), v.dtype)

    def ihvp(self, v):
        """:math:`F^{-1} v`."""
        return self.solve(v)

    def matvec(self, v):
        raise NotImplementedError("MFACStatic stores the inverse; use MFAC for products with F.")

    def trust_step(self, g, radius):
        radius = check_positive(radius, "radius")
        raise NotImplementedError("MFACStatic is meant for pruning; use MFAC for trust-region steps.")

    def inverse_diagonal(self):
        """:math:`\\operatorname{diag}(F^{-1})`, :math:`O(dm)`."""
        if self._diag_inv is None:
            W = self._W
            self._diag_inv = 1.0 / self.damp - self._xp.sum(W * W, axis=0) / self.damp**2
        return self._diag_inv

    def inverse_element(self, j, q):
        """:math:`[F^{-1}]_{jq}` in :math:`O(m)`."""
        W = self._W
        return float(j == q) / self.damp - float(W[:, j] @ W[:, q]) / self.damp**2

    def inverse_columns(self, idx):
        """:math:`F^{-1}[:, idx]`, shape (d, len(idx)), :math:`O(dm\\,|idx|)`."""
        xp = self._xp
        idx = xp.asarray(idx)
        W = self._W
        cols = -(W.T @ take(xp, W, idx, axis=1)) / self.damp**2
        rows = asarray_like(xp, np.arange(W.shape[1]), idx, dtype=idx.dtype)
        return cols + astype(xp, rows[:, None] == idx[None, :], cols.dtype) / self.damp

    def obs_scores(self, w):
        r"""OBS saliencies :math:`\rho_q = w_q^2 / (2 [F^{-1}]_{qq})`: the
        increase of the quadratic model when weight ``q`` is removed and the
        others are corrected."""
        w = self._check_weights(w)
        return w * w / (2.0 * self.inverse_diagonal())

    def _check_weights(self, w):
        d = self._W.shape[1]
        w = check_output(w, (d,), "w", self._xp, self.dtype)
        if not bool(self._xp.all(self._xp.isfinite(w))):
            raise ValueError("`w` holds NaN or inf.")
        return w

    def prune(self, w, n_prune, joint=True):
        r"""Remove the ``n_prune`` weights of lowest OBS score and correct the rest.

        Parameters
        ----------
        w : array, shape (d,)
            Current weights.
        n_prune : int
            How many weights to remove (those with the lowest scores).
        joint : bool, optional
            ``True`` (default): the exact joint OBS correction
            :math:`\delta w = -F^{-1}_{:,Q} (F^{-1}_{QQ})^{-1} w_Q`, which
            minimises the quadratic model subject to :math:`w_Q = 0`
            (:math:`O(dm|Q| + |Q|^3)`).  ``False``: the sum of single-weight
            corrections :math:`-F^{-1} \sum_q (w_q/[F^{-1}]_{qq}) e_q`, one
            IHVP.

        Returns
        -------
        w_new : array, shape (d,)
            Corrected weights with ``w_new[Q] == 0``.
        pruned : array of int
            The indices ``Q``.
        scores : array, shape (d,)
            OBS scores of the input weights.
        """
        xp = self._xp
        w = self._check_weights(w)
        n_prune = check_int(n_prune, "n_prune", minimum=0)
        if n_prune > w.shape[0]:
            raise ValueError(f"`n_prune` = {n_prune} exceeds the number of weights ({w.shape[0]}).")
        scores = self.obs_scores(w)
        Q = xp.sort(xp.argsort(scores)[:n_prune])
        if n_prune == 0:
            return copy(xp, w), Q, scores
        wQ = take(xp, w, Q)
        if joint:
            cols = self.inverse_columns(Q)
            block = take(xp, cols, Q)
            step = xp.linalg.solve(astype(xp, block, xp.float64), astype(xp, wQ, xp.float64)[:, None])[:, 0]
            delta = -cols @ astype(xp, step, self.dtype)
        else:
            e = scatter_zeros(xp, Q, wQ / take(xp, self.inverse_diagonal(), Q), w.shape[0])
            delta = -self.solve(e)
        w_new = w + delta
        w_new = w_new - scatter_zeros(xp, Q, take(xp, w_new, Q), w.shape[0])  # exactly 0 at Q
        return w_new, Q, scores


def _check_damp(damp):
    if isinstance(damp, (str, bytes, bool)):
        raise TypeError(f"`damp` must be a positive number; got {damp!r}.")
    try:
        value = float(damp)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"`damp` must be a positive number; got {damp!r}.") from exc
    if not value > 0.0:
        raise ValueError(
            f"`damp` must be > 0 (it keeps the Fisher model invertible); got {damp!r}. Use e.g. damp=1e-5."
        )
    return check_positive(value, "damp")

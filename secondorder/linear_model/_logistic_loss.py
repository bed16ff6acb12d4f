"""Binary logistic loss with fused numba passes."""

import numpy as np

from .._array_api import astype
from ._base import GLMLoss, weighted_gram

__all__ = ["LogisticLoss"]

# Parameters up to which the gradient's pass also sums the dense Hessian for a dense model (_fuse_gram): measured
# on 62,500 rows, one thread, the fused pass costs 0.9x the two passes at 11 parameters, 0.97x at 21, 1.1x at 33.
_FUSED_GRAM_MAX = 24
# The kinds whose matrix is X^T diag(h) X with the h of the gradient's pass.
_H_KINDS = ("exact", "gauss-newton")


class LogisticLoss(GLMLoss):
    r"""L2-regularised binary logistic loss.

    .. math::

        f(w, b) = \frac{1}{S} \sum_i s_i \left[\log(1 + e^{z_i}) - y_i z_i
        \right] + \frac{\alpha}{2} \|w\|^2, \qquad z_i = x_i^T w + b,

    with labels :math:`y_i \in \{0, 1\}` (``-1`` is read as ``0``) and
    sample weights :math:`s_i`, :math:`S = \sum_i s_i`.  Gradient
    :math:`\frac1S X^T r + \alpha w`, :math:`r_i = s_i(\sigma(z_i) - y_i)`;
    Hessian :math:`\frac1S X^T D X + \alpha I`, :math:`D = \operatorname{diag}
    (s_i \sigma(z_i)(1 - \sigma(z_i)))` (with the intercept, ``X`` gains a
    column of ones).  This is scikit-learn's ``LogisticRegression`` objective
    with :math:`\alpha = 1 / (C S)`.

    The value and gradient come from one pass over ``X`` (each row's margin
    and its contribution to the gradient while the row is in cache), and so
    does each Hessian-vector product; margins of any size are safe (the loss
    uses ``log1p(exp(-|z|))``).  ``X`` may be dense (C- or F-ordered) or a
    ``scipy.sparse`` matrix (kept as CSR), float64 or float32.

    Parameters
    ----------
    X : array_like or sparse matrix, shape (n_samples, n_features)
    y : array_like, shape (n_samples,)
        Labels in {0, 1} or {-1, 1}.
    alpha : float
        L2 penalty on the coefficients (not on the intercept).
    fit_intercept : bool
        Whether the last parameter is an intercept.
    sample_weight : array_like, optional
        Non-negative weights, one per sample.
    check_input : bool
        Check ``X`` for NaN and inf when the loss is made (a pass over it).
        With False the check is put off until a pass over ``X`` gives a
        gradient that is not finite (a NaN or inf in ``X`` always does), so
        bad data still raises a ``ValueError`` naming ``X``, at the first
        evaluation, without a pass of its own.

    Notes
    -----
    Parameters are ``w = [coef, intercept]``; ``value``, ``grad``,
    ``value_and_grad``, ``hessp`` and ``hess`` take that vector, so the loss
    plugs into :func:`secondorder.minimize` as ``fun``/``jac``/``hessp``,
    and :meth:`curvature` gives the Hessian and its approximations as a
    curvature model.  The last two points evaluated are cached: a Hessian
    product at a point whose gradient was just computed costs no extra
    pass for the curvature weights.

    The passes run on numba threads.  OpenBLAS threads spin after each BLAS
    call and compete with them for the cores: when driving the loss with
    your own optimiser loop, limit BLAS to one thread around it
    (``threadpoolctl.threadpool_limits(1, "blas")``), as the estimators do.

    Examples
    --------
    >>> import numpy as np
    >>> from secondorder import minimize
    >>> from secondorder.linear_model import LogisticLoss
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((200, 5))
    >>> y = (X[:, 0] + 0.5 * rng.standard_normal(200) > 0).astype(float)
    >>> loss = LogisticLoss(X, y, alpha=1e-2)
    >>> res = minimize(loss.value_and_grad, loss.initial_params(), jac=True,
    ...                hess=loss.curvature(), method="gns")
    >>> bool(res.success)
    True
    """

    n_outputs = 1

    def _check_y(self, y, n):
        y = np.asarray(y)
        if y.ndim != 1 or y.shape[0] != n:
            raise ValueError(f"`y` must be 1-D with one label per sample ({n}); got shape {y.shape}.")
        y = y.astype(np.float64)
        # comparisons, not np.unique: a sort of y costs more than a small fit's setup
        ones = y == 1.0
        if not (ones | (y == 0.0)).all():
            if not (ones | (y == -1.0)).all():
                raise ValueError(f"`y` must hold binary labels 0/1 (or -1/1); got values {np.unique(y)[:5]}.")
            y = ones.astype(np.float64)
        return y

    def _evaluate(self, coef, b):
        xp, n = self.xp, self.n_samples
        r, h = self._empty(n), self._empty(n)
        c = self._as_kernel(coef[0, :])
        squares = None
        if self.sparse:
            if self._with_diagonal:  # the Hessian's diagonal sums from the same pass (hessian_diagonal)
                loss, g, squares = self._k.logistic_grad_squares_csr(*self._csr_args(), self.y, self.sample_weight,
                                                                     c, b[0], r, h)
            else:
                loss, g = self._k.logistic_grad_csr(*self._csr_args(), self.y, self.sample_weight, c, b[0], r, h)
        elif self._fuse_gram():
            # the Hessian sum from the same pass (see _fuse_gram), kept for _curvature_matrix
            loss, g, G = self._k.logistic_grad_gram(self.X, self.y, self.sample_weight, c, b[0], r, h)
            self._gram = (h, G if self.fit_intercept else G[:-1, :-1])  # the kernel sums the column of ones too
        elif self._with_diagonal:
            loss, g, squares = self._k.logistic_grad_squares(self.X, self.y, self.sample_weight, c, b[0], r, h)
        else:
            loss, g = self._k.logistic_grad(self.X, self.y, self.sample_weight, c, b[0], r, h)
        state = (r, h)
        if squares is not None:
            self._diagonal = (state, (xp.reshape(squares, (1, -1)), xp.reshape(xp.sum(h), (1,))))
        if xp is np:  # the kernels' float64 results, in fewer calls
            return loss, np.asarray(g, dtype=np.float64).reshape(1, -1), r.sum(keepdims=True), state
        g = astype(xp, xp.asarray(g), xp.float64)
        return loss, xp.reshape(g, (1, -1)), xp.reshape(xp.sum(r), (1,)), state

    def _compiled_lbfgs(self, root):
        data = self._compiled_data(root, 1)
        if data is None:
            return None
        from .._kernels.cpu import glm_lbfgs

        return glm_lbfgs.lbfgs_logistic_csr if self.sparse else glm_lbfgs.lbfgs_logistic, data, np.stack, tuple

    def _compiled_steihaug(self, kind, rows):
        if rows is not None or kind not in _H_KINDS or not self._compiles():
            return None
        from .._kernels.cpu import glm_cg

        routine = glm_cg.steihaug_logistic_csr if self.sparse else glm_cg.steihaug_logistic
        data = (self._compiled_X(), float(self.alpha), 1.0 / self._total, self.fit_intercept, self._blocks(1))
        return routine, data, _h_of

    def _sample_labels(self, state, rng):
        """Labels drawn from the model's probabilities (state of a pass)."""
        xp = self.xp
        r, _ = state
        sw = self.sample_weight
        p = self.y + xp.where(sw > 0, r / xp.where(sw > 0, sw, 1.0), 0.5)
        u = self._device(rng.random(p.shape[0]), self._like)
        return astype(xp, u < p, xp.float64)

    def _weights(self, state, kind):
        xp = self.xp
        r, h = state
        if kind == "fisher":
            sw = self.sample_weight
            return xp.where(sw > 0, r * r / xp.where(sw > 0, sw, 1.0), 0.0)
        return h  # exact, Gauss-Newton (the same for the binary loss), subsampled

    def _diagonal_sums(self, state):
        h = state[1]  # s_i p_i (1 - p_i)
        return self.xp.reshape(self._weighted_squares(h), (1, -1)), self.xp.reshape(self.xp.sum(h), (1,))

    def _curvature_product(self, state, V, vb, kind, rows):
        xp = self.xp
        w = self._weights(state, kind)
        X, total = self.X, self._total
        if rows is not None:
            X, total = self._rows(rows)
            w = self._take(w, rows)
        v = self._as_kernel(V[0, :])
        if self.sparse:
            out, s = self._k.gram_matvec_csr(X.data, X.indices, X.indptr, self.n_features, w, v, vb[0])
        else:
            out, s = self._k.gram_matvec(X, w, v, vb[0])
        out = astype(xp, xp.asarray(out), xp.float64)
        return xp.reshape(out, (1, -1)), self._device(np.array([s]), self._like), total

    def _fuses(self, kind):
        """Whether the gradient's pass can also sum the curvature matrix of
        ``kind``: the Hessian, on the numba kernels, with parameters few
        enough that the rank-one updates cost less than a second pass over
        ``X`` (beyond ``_FUSED_GRAM_MAX``, BLAS's rank-k update on a pass of
        its own is faster)."""
        return kind in _H_KINDS and self.fused and not self.sparse and self.n_params <= _FUSED_GRAM_MAX

    def _fuse_gram(self):
        """Whether the gradient's pass sums the Hessian: a dense model of it
        was made, and :meth:`_fuses` allows it."""
        return self._fuses(self._prefetch)

    def _curvature_matrix(self, state, kind, rows):
        if rows is None and kind in _H_KINDS and self._gram is not None and self._gram[0] is state[1]:
            return self._gram[1], self._total  # from the gradient's pass
        weights = self._weights(state, kind)
        X, total = self.X, self._total
        if rows is not None:
            X, total = self._rows(rows)
            weights = self._take(weights, rows)
        buffer = self._scratch() if self.xp is np else None
        return weighted_gram(X, weights, self.fit_intercept, self.xp, buffer), total


def _h_of(state):
    """The Hessian's per-sample weights in a pass's state ``(r, h)``."""
    return state[1]

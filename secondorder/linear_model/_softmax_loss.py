"""Multinomial (softmax) logistic loss with fused numba passes."""

import numpy as np

from .._array_api import astype, cumsum, one_hot, take
from .._validation import check_int
from ._base import GLMLoss, gram_add, gram_zeros, row_blocks, symmetrise

__all__ = ["SoftmaxLoss"]

_MODES = {"exact": 0, "subsampled": 0, "gauss-newton": 1, "fisher": 2}


class SoftmaxLoss(GLMLoss):
    r"""L2-regularised multinomial logistic (softmax cross-entropy) loss.

    .. math::

        f(W, b) = \frac{1}{S} \sum_i s_i \left[\operatorname{logsumexp}(z_i)
        - z_{i y_i}\right] + \frac{\alpha}{2} \|W\|_F^2, \qquad
        z_i = W x_i + b \in \mathbb{R}^K,

    with integer labels :math:`y_i \in \{0, \dots, K-1\}`.  With
    :math:`p_i = \operatorname{softmax}(z_i)` and :math:`r_i = s_i (p_i -
    e_{y_i})` the gradient is :math:`\frac1S R^T X + \alpha W`; each
    sample's Hessian in its margins is :math:`s_i(\operatorname{diag}(p_i) -
    p_i p_i^T)`.  Curvature kinds (:meth:`curvature`):

    * ``"exact"``: that Hessian;
    * ``"gauss-newton"``: the weighted Gauss-Newton matrix of Semenov,
      Jaggi and Doikov (2025), :math:`\operatorname{diag}(p_i)` per sample
      (block-diagonal over classes, positive semi-definite and above the
      Hessian, so regularised Newton keeps its global guarantees), projected
      onto the complement of the gauge directions :math:`(v, \dots, v)`
      (the same change of every class's weights leaves the loss unchanged):
      :math:`\Pi G \Pi`, :math:`\Pi = (I - \frac1K 11^T) \otimes I`.
      The projection keeps it above the Hessian, and without it the gauge
      directions, flat for the loss but not for :math:`G`, would converge
      at the rate of the L2 term alone;
    * ``"fisher"``: the empirical Fisher,
      :math:`s_i (p_i - e_{y_i})(p_i - e_{y_i})^T` per sample;
    * ``"subsampled"``: the Hessian over a fraction of the samples.

    Value and gradient take one pass over ``X``, and so does each curvature
    product; ``X`` may be dense or CSR, float64 or float32.  The parameter
    vector is ``[W.ravel(), b]`` with ``W`` of shape ``(K, n_features)``
    (scikit-learn's ``coef_``) and ``b`` of length ``K``; the model is
    over-parametrised as in scikit-learn, the L2 term making the minimiser
    unique (without it and with an intercept, fix the gauge yourself).

    Parameters
    ----------
    X : array_like or sparse matrix, shape (n_samples, n_features)
    y : array_like of int, shape (n_samples,)
        Class indices in ``0 .. n_classes - 1``.
    n_classes : int, optional
        ``K``; default ``max(y) + 1``.
    alpha, fit_intercept, sample_weight, check_input
        As in :class:`LogisticLoss`.
    """

    def __init__(self, X, y, n_classes=None, alpha=0.0, fit_intercept=True, sample_weight=None, check_input=True):
        self._n_classes = n_classes
        super().__init__(X, y, alpha=alpha, fit_intercept=fit_intercept, sample_weight=sample_weight, check_input=check_input)

    def _check_y(self, y, n):
        y = np.asarray(y)
        if y.ndim != 1 or y.shape[0] != n:
            raise ValueError(f"`y` must be 1-D with one label per sample ({n}); got shape {y.shape}.")
        if y.dtype.kind not in "iub" and not (y.dtype.kind == "f" and np.all(y == np.round(y))):
            raise ValueError("`y` must hold integer class indices 0 .. n_classes - 1; encode string labels first.")
        y = y.astype(np.int64)
        K = int(y.max()) + 1 if self._n_classes is None else check_int(self._n_classes, "n_classes", minimum=2)
        if y.min() < 0 or y.max() >= K:
            raise ValueError(f"`y` must hold class indices in 0 .. {K - 1}; got values from {y.min()} to {y.max()}.")
        if K < 2:
            raise ValueError("`n_classes` must be at least 2.")
        self.n_outputs = K
        return y

    @property
    def n_classes(self):
        return self.n_outputs

    def _evaluate(self, coef, b):
        xp = self.xp
        P = self._empty((self.n_samples, self.n_outputs))
        c = self._as_kernel(coef)
        if self.sparse:
            loss, g, gb = self._k.softmax_grad_csr(*self._csr_args(), self.y, self.sample_weight, c, b, P)
        else:
            loss, g, gb = self._k.softmax_grad(self.X, self.y, self.sample_weight, c, b, P)
        return loss, astype(xp, xp.asarray(g), xp.float64), astype(xp, xp.asarray(gb), xp.float64), P

    def _compiled_lbfgs(self, root):
        data = self._compiled_data(root, self.n_outputs)
        if data is None:
            return None
        from .._kernels.cpu import glm_lbfgs

        return glm_lbfgs.lbfgs_softmax_csr if self.sparse else glm_lbfgs.lbfgs_softmax, data, np.copy, _same

    def _compiled_steihaug(self, kind, rows):
        if rows is not None or _MODES[kind] != 0 or not self._compiles():
            return None
        from .._kernels.cpu import glm_cg

        routine = glm_cg.steihaug_softmax_csr if self.sparse else glm_cg.steihaug_softmax
        data = (self._compiled_X(), self.y, self.sample_weight, float(self.alpha), 1.0 / self._total,
                self.fit_intercept, self.n_outputs, self._blocks(self.n_outputs))
        return routine, data, _same

    def _sample_labels(self, P, rng):
        """Labels drawn from the model's class probabilities ``P``."""
        xp = self.xp
        u = self._device(rng.random(P.shape[0]), self._like)
        labels = xp.sum(astype(xp, cumsum(xp, P, 1) < u[:, None], xp.int64), axis=1)
        return xp.where(labels < self.n_outputs, labels, self.n_outputs - 1)

    def _diagonal_sums(self, P):
        weights = self.sample_weight[:, None] * P * (1.0 - P)
        return self._weighted_squares(weights).T, self.xp.sum(weights, axis=0)

    def _curvature_product(self, P, V, vb, kind, rows):
        xp = self.xp
        X, y, sw, total = self.X, self.y, self.sample_weight, self._total
        if rows is not None:
            X, total = self._rows(rows)
            y, sw, P = self._take(y, rows), self._take(sw, rows), self._take(P, rows)
        mode = _MODES[kind]
        if mode == 1:
            V, vb = V - xp.mean(V, axis=0), vb - xp.mean(vb)
        V = self._as_kernel(V)
        if self.sparse:
            out, out_b = self._k.softmax_hessp_csr(X.data, X.indices, X.indptr, self.n_features, y, sw, P, V, vb, mode)
        else:
            out, out_b = self._k.softmax_hessp(X, y, sw, P, V, vb, mode)
        out, out_b = astype(xp, xp.asarray(out), xp.float64), astype(xp, xp.asarray(out_b), xp.float64)
        if mode == 1:
            out, out_b = out - xp.mean(out, axis=0), out_b - xp.mean(out_b)
        return out, out_b, total

    def _curvature_matrix(self, P, kind, rows):
        r"""The matrix (a sum over the samples) from one pass over ``X`` in
        cached blocks, and the total weight it is to be divided by.

        With :math:`\tilde x_i = [x_i, 1]` and :math:`\otimes` the Kronecker
        product, the Hessian is :math:`\sum_i s_i \operatorname{diag}(p_i)
        \otimes \tilde x_i \tilde x_i^T - \sum_i s_i (p_i \otimes \tilde
        x_i)(p_i \otimes \tilde x_i)^T`: K weighted Gram matrices (the
        Gauss-Newton part) minus one rank-k update of width ``K q``; the
        Fisher is the rank-k update alone, with :math:`p_i - e_{y_i}`.
        """
        xp = self.xp
        X, y, sw, total = self.X, self.y, self.sample_weight, self._total
        if rows is not None:
            X, total = self._rows(rows)
            y, sw, P = self._take(y, rows), self._take(sw, rows), self._take(P, rows)
        K, d = self.n_outputs, self.n_features
        q = d + self.fit_intercept
        F = P - one_hot(xp, y, K, P.dtype) if kind == "fisher" else P
        H = gram_zeros(xp, K * q, P)  # class-major: [W_k, b_k] for each k
        diag = [gram_zeros(xp, q, P) for _ in range(K)] if kind != "fisher" else []
        root = xp.sqrt(sw)
        for lo, hi, block in row_blocks(X, self.fit_intercept, K * q, xp):
            for k in range(len(diag)):
                diag[k] = gram_add(xp, diag[k], block * xp.sqrt(sw[lo:hi] * P[lo:hi, k])[:, None])
            if kind in ("exact", "subsampled", "fisher"):
                outer = xp.reshape((root[lo:hi, None] * F[lo:hi, :])[:, :, None] * block[:, None, :], (hi - lo, K * q))
                H = gram_add(xp, H, outer, -1.0 if kind != "fisher" else 1.0)
        H = symmetrise(xp, H)
        for k, G in enumerate(diag):
            H[k * q : (k + 1) * q, k * q : (k + 1) * q] += symmetrise(xp, G)
        if kind == "gauss-newton":
            # Pi H Pi with Pi = (I - 11^T / K) (x) I_q, in the class-major layout
            H = xp.reshape(H, (K, q, K, q))
            H = H - xp.mean(H, axis=0, keepdims=True)
            H = xp.reshape(H - xp.mean(H, axis=2, keepdims=True), (K * q, K * q))
        # from the class-major layout to the parameter layout [W.ravel(), b]
        order = (np.arange(K)[:, None] * q + np.arange(d)[None, :]).ravel()
        if self.fit_intercept:
            order = np.concatenate([order, np.arange(K) * q + d])
        if xp is np:
            H = H[np.ix_(order, order)]
        else:
            order = self._device(order, self._like)
            H = take(xp, take(xp, H, order, axis=0), order, axis=1)
        return H, total


def _same(P):
    return P

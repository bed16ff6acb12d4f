"""Diagonal (empirical) Fisher model."""

from .._validation import check_output
from ._diagonal import DiagonalModel

__all__ = ["DiagonalFisher"]


class DiagonalFisher(DiagonalModel):
    r"""Diagonal of the empirical Fisher matrix, plus damping.

    For a loss :math:`f(x) = \frac1N \sum_i \ell_i(x)` with per-sample
    gradients :math:`g_i`, the empirical Fisher is
    :math:`F = \frac1N \sum_i g_i g_i^T` and its diagonal is
    :math:`d_j = \frac1N \sum_i g_{ij}^2`.  Two sources:

    * ``jac_samples(x, *args) -> (N, n)`` per-sample gradients, evaluated
      once per point given to :meth:`update`;
    * otherwise a running average of squared gradients over the points seen,
      :math:`v_t = \beta v_{t-1} + (1 - \beta) g_t^2`, bias-corrected by
      :math:`1 - \beta^t` (the second moment of Adam; Vo 2024 builds SOAA's
      diagonal Fisher from it).

    Parameters
    ----------
    jac_samples : callable, optional
        Per-sample gradients.
    args : tuple, optional
        Extra arguments for ``jac_samples``.
    damp : float, optional
        Added to the diagonal (default 1e-8): it keeps the model positive
        definite where every sample has a zero gradient.
    beta : float, optional
        Decay of the running average (default 0.999), used without
        ``jac_samples``.
    scale : {"mean", "sum"}, optional
        ``"mean"`` (default) matches a loss that averages over samples,
        ``"sum"`` one that sums.

    References
    ----------
    .. [1] J. Martens, "New insights and perspectives on the natural gradient
       method", JMLR 21(146), 2020.
    .. [2] J. Vo, "SecondOrderAdaptiveAdam (SOAA)", arXiv:2410.02293, 2024.
    """

    def __init__(self, jac_samples=None, args=(), damp=1e-8, beta=0.999, scale="mean"):
        super().__init__(damp)
        if jac_samples is not None and not callable(jac_samples):
            raise TypeError("`jac_samples` must be callable as jac_samples(x, *args) -> (n_samples, n).")
        if not 0.0 <= float(beta) < 1.0:
            raise ValueError(f"`beta` must be in [0, 1); got {beta!r}.")
        if scale not in ("mean", "sum"):
            raise ValueError(f"`scale` must be 'mean' or 'sum'; got {scale!r}.")
        self._jac_samples = jac_samples
        self.args = tuple(args)
        self.beta = float(beta)
        self.scale = scale
        self._v = None
        self._t = 0

    def update(self, x, g=None, **data):
        super().update(x, g, **data)
        if self._jac_samples is None:
            if g is None:
                raise ValueError("DiagonalFisher without `jac_samples` needs the gradient: update(x, g).")
            g = check_output(g, x.shape, "g", self._xp, x.dtype)
            if not bool(self._xp.all(self._xp.isfinite(g))):
                raise ValueError("DiagonalFisher.update: `g` holds NaN or inf; pass a finite gradient.")
            self._t += 1
            sq = g * g
            self._v = sq * (1.0 - self.beta) if self._v is None else self.beta * self._v + (1.0 - self.beta) * sq

    def _estimate(self):
        xp = self._xp
        x = self._x
        if self._jac_samples is None:
            return self._v / (1.0 - self.beta**self._t)
        J = xp.asarray(self._jac_samples(x.copy(), *self.args), dtype=x.dtype)
        self.nhev += 1
        if J.ndim != 2 or J.shape[1] != x.shape[0]:
            raise ValueError(
                f"`jac_samples` returned an array of shape {J.shape}, expected (n_samples, {x.shape[0]}): "
                "one row per sample, one column per variable."
            )
        sq = xp.einsum("ij,ij->j", J, J)
        return sq / J.shape[0] if self.scale == "mean" else sq

    def reset(self):
        """Forget the running average."""
        self._v = None
        self._t = 0

"""Hutchinson estimate of the Hessian diagonal."""

import numpy as np

from .._array_api import copy
from .._validation import check_int, check_output
from ._diagonal import DiagonalModel

__all__ = ["HutchinsonDiagonal", "rademacher", "block_average"]


def rademacher(rng, shape, xp, dtype, device=None):
    """A Rademacher probe (entries +1 and -1 with probability 1/2 each).

    Drawn with a NumPy ``Generator`` and moved to namespace ``xp`` (any
    array-API namespace: the standard has no random numbers), so a seed gives
    the same probes on every array library.
    """
    bits = rng.integers(0, 2, size=shape, dtype=np.int8)
    z = (2 * bits - 1).astype(np.float64)
    if xp is np:
        return z.astype(dtype, copy=False)
    if device is None:
        return xp.asarray(z, dtype=dtype)
    return xp.asarray(z, dtype=dtype, device=device)


def block_average(est, block_size, xp):
    """Average a 1-D estimate over consecutive blocks of ``block_size``
    entries, each entry taking its block's mean (the last, shorter block
    averaged on its own); written with array-API functions only."""
    b = int(block_size)
    n = est.shape[0]
    if b == 1 or n == 0:
        return est
    full = (n // b) * b
    parts = []
    if full:
        means = xp.mean(xp.reshape(est[:full], (full // b, b)), axis=1)
        parts.append(xp.repeat(means, b))
    if full < n:
        tail = est[full:]
        parts.append(xp.zeros_like(tail) + xp.mean(tail))
    return parts[0] if len(parts) == 1 else xp.concat(parts)


class HutchinsonDiagonal(DiagonalModel):
    r"""Hutchinson's estimate of :math:`\operatorname{diag}(H)` from products.

    With Rademacher probes :math:`z` (entries :math:`\pm 1`),
    :math:`\mathbb E[z \odot H z] = \operatorname{diag}(H)`; the estimate
    averages ``n_probes`` of them at each point, the estimator of AdaHessian
    and Sophia-H.

    Parameters
    ----------
    hessp : callable
        ``hessp(x, v, *args) -> H(x) v``.
    args : tuple, optional
        Extra arguments for ``hessp``.
    n_probes : int, optional
        Probes per point (default 1).
    block_size : int, optional
        Average the estimate over consecutive blocks of this many entries
        (AdaHessian's spatial averaging, which lowers the variance where
        neighbouring parameters share a scale); default 1 (none).
    beta : float, optional
        If given, keep a running average over points,
        :math:`D_t = \beta D_{t-1} + (1-\beta) \hat D_t`, bias-corrected.
    absolute : bool, optional
        Use :math:`|\hat D|` (AdaHessian) instead of the signed estimate.
        Default False: the signed estimate keeps negative curvature visible,
        and the exact trust step handles it.
    damp : float, optional
        Added to the diagonal.
    seed : int or numpy.random.Generator, optional
        Seed of the probes.

    References
    ----------
    .. [1] M. F. Hutchinson, "A stochastic estimator of the trace of the
       influence matrix for Laplacian smoothing splines", Commun. Stat.
       Simul. Comput. 19(2), 1990.
    .. [2] C. Bekas, E. Kokiopoulou and Y. Saad, "An estimator for the
       diagonal of a matrix", Appl. Numer. Math. 57, 2007.
    .. [3] Z. Yao et al., "ADAHESSIAN: An adaptive second order optimizer for
       machine learning", AAAI 2021.
    """

    def __init__(
        self, hessp, args=(), n_probes=1, block_size=1, beta=None, absolute=False, damp=0.0, seed=None
    ):
        super().__init__(damp)
        if not callable(hessp):
            raise TypeError("`hessp` must be callable as hessp(x, v, *args).")
        self._hessp = hessp
        self.args = tuple(args)
        self.n_probes = check_int(n_probes, "n_probes", minimum=1)
        self.block_size = check_int(block_size, "block_size", minimum=1)
        if beta is not None and not 0.0 <= float(beta) < 1.0:
            raise ValueError(f"`beta` must be in [0, 1) or None; got {beta!r}.")
        self.beta = None if beta is None else float(beta)
        self.absolute = bool(absolute)
        self._seed = seed
        self._rng = None
        self._avg = None
        self._t = 0

    def _probe(self, n, dtype):
        if self._rng is None:
            self._rng = np.random.default_rng(self._seed)
        return rademacher(self._rng, (n,), self._xp, dtype)

    def _estimate(self):
        xp = self._xp
        x = self._x
        est = xp.zeros_like(x)
        for _ in range(self.n_probes):
            z = self._probe(x.shape[0], x.dtype)
            Hz = check_output(self._hessp(copy(xp, x), z, *self.args), x.shape, "hessp", xp, x.dtype)
            self.nhev += 1
            est += z * Hz
        est /= self.n_probes
        est = block_average(est, self.block_size, xp)
        if self.absolute:
            est = xp.abs(est)
        if self.beta is None:
            return est
        self._t += 1
        self._avg = (1 - self.beta) * est if self._avg is None else self.beta * self._avg + (1 - self.beta) * est
        return self._avg / (1.0 - self.beta**self._t)

"""Hutchinson estimate of the Hessian diagonal."""

from .._backend import get_namespace
from .._validation import check_int, check_output
from ._diagonal import DiagonalModel

__all__ = ["HutchinsonDiagonal"]


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

    def _probe(self, xp, n, dtype):
        if self._rng is None:
            if hasattr(xp.random, "default_rng"):
                self._rng = xp.random.default_rng(self._seed)
            else:  # pragma: no cover - older CuPy
                self._rng = xp.random.RandomState(self._seed)
        bits = self._rng.integers(0, 2, size=n) if hasattr(self._rng, "integers") else self._rng.randint(0, 2, n)
        return (2 * bits - 1).astype(dtype)

    def _block_average(self, est):
        b = self.block_size
        if b == 1:
            return est
        xp = get_namespace(est)
        n = est.shape[0]
        full = (n // b) * b
        out = xp.empty_like(est)
        if full:
            out[:full] = xp.repeat(est[:full].reshape(-1, b).mean(axis=1), b)
        if full < n:
            out[full:] = est[full:].mean()
        return out

    def _estimate(self):
        xp = self._xp
        x = self._x
        est = xp.zeros_like(x)
        for _ in range(self.n_probes):
            z = self._probe(xp, x.shape[0], x.dtype)
            Hz = check_output(self._hessp(x.copy(), z, *self.args), x.shape, "hessp", xp, x.dtype)
            self.nhev += 1
            est += z * Hz
        est /= self.n_probes
        est = self._block_average(est)
        if self.absolute:
            est = xp.abs(est)
        if self.beta is None:
            return est
        self._t += 1
        self._avg = (1 - self.beta) * est if self._avg is None else self.beta * self._avg + (1 - self.beta) * est
        return self._avg / (1.0 - self.beta**self._t)

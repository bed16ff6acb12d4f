"""What the GLM losses share: input checks, the parameter layout, the cache
of per-sample curvature weights, and the curvature models built on them."""

import copy

import numpy as np
import scipy.sparse
from scipy.sparse.linalg import LinearOperator

from .._array_api import is_foreign, from_host, from_numpy, host_roundtrip, to_numpy
from .._backend import get_namespace, kernels
from .._validation import check_finite, check_nonnegative
from ..curvature import HessianCallable

__all__ = ["GLMLoss"]

_KINDS = ("exact", "gauss-newton", "fisher", "subsampled")


def check_X(X, name="X", check_finite_values=True):
    """``X`` as a finite 2-D float array (dense, any order) or CSR matrix;
    float32 stays float32, everything else becomes float64.  No copy when
    ``X`` already qualifies.  The finiteness test (a pass over ``X``) can be
    skipped by callers that made it already."""
    if scipy.sparse.issparse(X):
        X = X.tocsr()
        _check_csr_structure(X, name)
        dtype = np.float32 if X.dtype == np.float32 else np.float64
        if X.dtype != dtype:
            X = X.astype(dtype)
        if X.ndim != 2:
            raise ValueError(f"`{name}` must be 2-D (n_samples, n_features); got shape {X.shape}.")
        if check_finite_values:
            check_finite(X.data, name)
        if not X.has_sorted_indices:
            X = X.sorted_indices()
        return X
    X = np.asarray(X)
    if X.dtype == object or not (np.issubdtype(X.dtype, np.number) or X.dtype == np.bool_):
        raise TypeError(f"`{name}` must hold real numbers; got dtype {X.dtype}.")
    if np.issubdtype(X.dtype, np.complexfloating):
        raise TypeError(f"`{name}` must hold real numbers; got complex values.")
    if X.ndim != 2:
        raise ValueError(f"`{name}` must be 2-D (n_samples, n_features); got shape {X.shape}.")
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    if check_finite_values:
        check_finite(X, name)
    return X


def _check_csr_structure(X, name):
    """Raise ``ValueError`` on a malformed CSR matrix (SciPy does not check
    the arrays it is built from): the kernels index by these arrays, so an
    index out of range would read outside ``X``'s memory.  One O(nnz) pass,
    nothing changed."""
    n, d = X.shape
    indptr, indices = X.indptr, X.indices
    fix = "; build it from valid (data, indices, indptr) arrays, or from a dense array or COO triplets"
    if indptr.shape != (n + 1,) or indices.shape != X.data.shape:
        raise ValueError(f"`{name}` is a malformed CSR matrix: indptr must have n_samples + 1 = {n + 1} entries and "
                         f"indices one per stored value{fix}.")
    if indptr[0] != 0 or indptr[-1] != indices.shape[0] or bool(np.any(indptr[1:] < indptr[:-1])):
        raise ValueError(f"`{name}` is a malformed CSR matrix: indptr must start at 0, never decrease and end at "
                         f"the number of stored values ({indices.shape[0]}){fix}.")
    if indices.shape[0] and (int(indices.min()) < 0 or int(indices.max()) >= d):
        raise ValueError(f"`{name}` is a malformed CSR matrix: its column indices must lie in [0, {d}); they span "
                         f"{int(indices.min())} to {int(indices.max())}{fix}.")


def _float_dtype(a):
    """The dtype of a result computed for ``a``: its own when floating,
    float64 for integers and booleans (never truncated)."""
    dtype = np.asarray(a).dtype
    return dtype if np.issubdtype(dtype, np.floating) else np.dtype(np.float64)


def check_sample_weight(sample_weight, n):
    """Float64 weights of length ``n``: non-negative, finite, not all zero."""
    if sample_weight is None:
        return np.ones(n)
    sw = np.asarray(sample_weight, dtype=np.float64)
    if sw.ndim == 0:
        sw = np.full(n, float(sw))
    if sw.shape != (n,):
        raise ValueError(f"`sample_weight` must have one weight per sample ({n}); got shape {sw.shape}.")
    check_finite(sw, "sample_weight")
    if (sw < 0).any():
        raise ValueError("`sample_weight` must be non-negative; drop samples instead of giving negative weights.")
    if not sw.sum() > 0:
        raise ValueError("`sample_weight` sums to zero: at least one sample needs a positive weight.")
    return sw


class GLMLoss:
    r"""Base of the GLM losses

    .. math::

        f(w) = \frac{1}{S} \sum_i s_i \ell_i(x_i^T W + b)
               + \frac{\alpha}{2} \|W\|^2, \qquad S = \sum_i s_i,

    over the parameter vector ``w = [W.ravel(), b]`` (``b`` only with
    ``fit_intercept``; it is not penalised).  Subclasses set ``n_outputs``
    and implement ``_check_y``; ``_evaluate(coef, b)``, which makes one
    fused pass over ``X`` and returns the loss sum, the gradient sums and
    the per-sample state that curvature products need;
    ``_curvature_product(state, V, vb, kind, rows)``; and
    ``_dense(w, kind, rows)``, the curvature matrix of a kind.
    """

    n_outputs = 1

    def __init__(self, X, y, alpha=0.0, fit_intercept=True, sample_weight=None, check_input=True):
        # Arrays of another array-API library (PyTorch, JAX, array-api-strict) are copied to NumPy for
        # the kernels; the parameters and results then live in that library.
        self._caller = (get_namespace(X), X) if is_foreign(X) else None
        X, y, sample_weight = (to_numpy(a) if is_foreign(a) else a for a in (X, y, sample_weight))
        self.X = check_X(X, check_finite_values=check_input)
        n, self.n_features = self.X.shape
        if n == 0:
            raise ValueError("`X` has no samples.")
        self.sparse = scipy.sparse.issparse(self.X)
        self.dtype = self.X.dtype
        self.y = self._check_y(y, n)
        self.alpha = check_nonnegative(alpha, "alpha")
        self.fit_intercept = bool(fit_intercept)
        self.sample_weight = check_sample_weight(sample_weight, n)
        self._total = float(self.sample_weight.sum())
        self._k = kernels(np)
        self._cache = []  # (w, value, grad, state) of the two latest points
        self.n_passes = 0

    # -------------------------------------------------------------- layout
    @property
    def n_samples(self):
        return self.X.shape[0]

    @property
    def n_params(self):
        """Length of the parameter vector ``w``."""
        return self.n_outputs * (self.n_features + self.fit_intercept)

    def _split(self, w):
        d, K = self.n_features, self.n_outputs
        w = np.asarray(w)
        if w.shape != (self.n_params,):
            raise ValueError(f"`w` must have length n_params = {self.n_params}; got shape {w.shape}.")
        coef = w[: K * d].astype(np.float64).reshape(K, d)
        b = w[K * d :].astype(np.float64) if self.fit_intercept else np.zeros(K)
        return coef, b

    def _join(self, coef, b, dtype):
        parts = [np.asarray(coef, dtype=np.float64).reshape(-1)]
        if self.fit_intercept:
            parts.append(np.asarray(b, dtype=np.float64).reshape(-1))
        return np.concatenate(parts).astype(dtype, copy=False)

    def _as_kernel(self, a):
        """Parameters in ``X``'s precision, so that a float32 ``X`` runs the
        float32 specialisation of the kernels (float64 accumulation inside)."""
        return a.astype(np.float32) if self.dtype == np.float32 else a

    def _rows(self, rows):
        """``X`` restricted to a subsample's rows and their total weight,
        copied once and kept for the later products."""
        if getattr(self, "_sub", (None,))[0] is not rows:
            self._sub = (rows, self.X[rows], float(self.sample_weight[rows].sum()))
        return self._sub[1], self._sub[2]

    def _csr_args(self):
        X = self.X
        return X.data, X.indices, X.indptr, self.n_features

    @property
    def fused(self):
        """True when the passes over ``X`` run as numba kernels (dense
        C-ordered or CSR ``X``), so that BLAS does only vector work."""
        return self._k.__name__ == "cpu" and (self.sparse or self.X.flags.c_contiguous)

    def initial_params(self):
        """Zeros of the loss's dtype (and of ``X``'s array library): the
        usual starting point."""
        w = np.zeros(self.n_params, dtype=self.dtype)
        return w if self._caller is None else from_numpy(self._caller[0], w, self._caller[1])

    # ---------------------------------------------------------- evaluation
    def _point(self, w):
        """(value, grad, state) at ``w``, from the cache or one pass."""
        w = np.asarray(w)
        for entry in self._cache:
            if entry[0].shape == w.shape and np.array_equal(entry[0], w):
                return entry[1:]
        coef, b = self._split(w)
        loss, gcoef, gb, state = self._evaluate(coef, b)
        self.n_passes += 1
        inv = 1.0 / self._total
        value = loss * inv + 0.5 * self.alpha * float(np.sum(coef * coef))
        grad = self._join(gcoef * inv + self.alpha * coef, gb * inv, np.float64)
        self._cache = [(w.copy(), value, grad, state)] + self._cache[:1]
        return value, grad, state

    @host_roundtrip
    def value(self, w):
        """The loss :math:`f(w)`."""
        return self._point(w)[0]

    @host_roundtrip
    def grad(self, w):
        """The gradient :math:`\\nabla f(w)`, in ``w``'s dtype."""
        return self._point(w)[1].astype(_float_dtype(w), copy=True)

    @host_roundtrip
    def value_and_grad(self, w):
        """``(f(w), grad f(w))`` from one pass over ``X``: use as
        ``minimize(loss.value_and_grad, w0, jac=True, ...)``."""
        value, grad, _ = self._point(w)
        return value, grad.astype(_float_dtype(w), copy=True)

    def __call__(self, w):
        return self.value(w)

    @host_roundtrip
    def hessp(self, w, v):
        """The Hessian-vector product :math:`\\nabla^2 f(w) v` (one pass)."""
        return self._product(w, v, "exact", None)

    def _product(self, w, v, kind, rows):
        state = self._point(w)[2]
        v = np.asarray(v)
        if v.shape != (self.n_params,):
            raise ValueError(f"`v` must have length n_params = {self.n_params}; got shape {v.shape}.")
        V, vb = self._split(v)
        if not self.fit_intercept:
            vb = np.zeros(self.n_outputs)
        out, out_b, total = self._curvature_product(state, V, vb, kind, rows)
        self.n_passes += 1
        return self._join(out / total + self.alpha * V, out_b / total, _float_dtype(v))

    @host_roundtrip
    def hess(self, w):
        """The dense Hessian :math:`\\nabla^2 f(w)` (n_params x n_params)."""
        return self._dense(w, "exact", None)

    # ---------------------------------------------------------- minibatches
    def minibatch(self):
        """Minibatch callables for :func:`secondorder.stochastic.minimize`.

        Returns
        -------
        MinibatchOracles
            ``fun(w, rows)`` (loss and gradient over the rows), ``hessp(w,
            v, rows)``, ``sampled_jac(w, rows, rng)`` (the gradient of the
            data term at labels drawn from the model's own probabilities,
            Sophia-G's estimator; without the L2 term, whose curvature is
            known) and ``data``, the row indices to pass as ``data``; each
            minibatch loss is the weighted mean over its rows plus the full
            L2 term, an unbiased estimate of this loss.
        """
        return MinibatchOracles(self)

    def _subset(self, rows, y=None):
        """This loss over ``rows`` (and labels ``y`` if given), sharing
        every setting; no input check is repeated."""
        sub = copy.copy(self)
        sub.X = self.X[rows]
        sub.y = self.y[rows] if y is None else y
        sub.sample_weight = self.sample_weight[rows]
        sub._total = float(sub.sample_weight.sum())
        sub._cache = []
        sub.n_passes = 0
        if sub._total <= 0:
            sub._total = 1.0  # a batch of zero-weight rows: zero loss, zero gradient
        return sub

    # ----------------------------------------------------------- curvature
    def curvature(self, kind="exact", solver="auto", fraction=0.1, random_state=0, **model_options):
        """A curvature model of the loss for ``minimize`` (``hess=`` or
        ``options={"curvature": ...}``).

        Parameters
        ----------
        kind : {"exact", "gauss-newton", "fisher", "subsampled"}
            ``"exact"``: the Hessian.  ``"gauss-newton"``: the weighted
            Gauss-Newton matrix of the GNS paper (for softmax it drops the
            :math:`-pp^T` term of each sample's Hessian, so it dominates the
            Hessian; for the binary loss it is the Hessian).  ``"fisher"``:
            the empirical Fisher, :math:`\\frac1S\\sum_i s_i g_i g_i^T`
            over per-sample gradients.  ``"subsampled"``: the Hessian over a
            random ``fraction`` of the samples (fixed once, ``random_state``).
            The L2 term is exact in every kind.
        solver : {"auto", "dense", "cg"}
            ``"dense"`` builds the matrix at each point (Cholesky or
            eigendecomposition, any shift for the price of one); ``"cg"``
            gives products only (conjugate gradients).  ``"auto"``: dense
            for the binary loss with at most 1000 parameters and a dense
            ``X`` (the matrix costs about one pass of BLAS rank-k updates),
            products otherwise (a dense softmax Hessian costs ``K`` times
            more than its products save).
        **model_options
            Passed to the model (``DenseHessian`` or ``OperatorHessian``).

        Returns
        -------
        HessianCallable
            Evaluated lazily, once per accepted point, from the per-sample
            weights cached by the last gradient evaluation there.
        """
        if kind not in _KINDS:
            raise ValueError(f"`kind` must be one of {', '.join(_KINDS)}; got {kind!r}.")
        if solver not in ("auto", "dense", "cg"):
            raise ValueError(f"`solver` must be 'auto', 'dense' or 'cg'; got {solver!r}.")
        rows = None
        if kind == "subsampled":
            if not 0.0 < float(fraction) <= 1.0:
                raise ValueError(f"`fraction` must be in (0, 1]; got {fraction!r}.")
            rng = np.random.default_rng(random_state)
            n = self.n_samples
            rows = np.sort(rng.choice(n, size=max(1, int(round(fraction * n))), replace=False))
        if solver == "auto":
            solver = "dense" if self.n_outputs == 1 and self.n_params <= 64 and not self.sparse else "cg"
        n_params = self.n_params

        if solver == "dense":

            def hess(w):
                w = to_numpy(w)
                return self._dense(w, kind, rows).astype(w.dtype, copy=False)

        else:

            def hess(w):
                w = np.array(to_numpy(w), copy=True)
                dtype = w.dtype
                return LinearOperator(
                    (n_params, n_params), matvec=lambda v: self._product(w, np.ravel(v).astype(dtype), kind, rows), dtype=dtype
                )

        return HessianCallable(hess, **model_options)




def row_blocks(X, fit_intercept, width):
    """``(lo, hi, block)`` over blocks of rows of ``X``, each block dense,
    float64, with a column of ones appended when ``fit_intercept``; block
    sizes hold about 2**19 numbers of width ``width`` in cache.  A block
    may be a view of ``X``: read it, never write to it."""
    n = X.shape[0]
    step = max(64, (1 << 19) // max(width, 1))
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        block = X[lo:hi]
        block = block.toarray() if scipy.sparse.issparse(block) else block
        if fit_intercept:
            block = np.concatenate([block, np.ones((hi - lo, 1), dtype=block.dtype)], axis=1)
        yield lo, hi, np.asarray(block, dtype=np.float64)


def syrk_add(G, B, sign=1.0):
    """``G += sign * B^T B`` on the upper triangle of the F-ordered ``G``
    (BLAS syrk: half the flops of a product); returns ``G``."""
    from scipy.linalg import blas

    # B.T of a C-ordered B is F-ordered, so syrk reads it without a copy.
    return blas.dsyrk(sign, np.ascontiguousarray(B).T, beta=1.0, c=G, trans=0, lower=0, overwrite_c=1)


def symmetrise(G):
    """The full symmetric matrix from an upper triangle."""
    return np.triu(G) + np.triu(G, 1).T


def weighted_gram(X, w, fit_intercept):
    """``[X 1]^T diag(w) [X 1]`` (the ``1`` column only with
    ``fit_intercept``) for a dense or CSR ``X`` and ``w >= 0``: one pass
    over ``X`` in cached blocks, each scaled by ``sqrt(w)`` and added by a
    rank-k update."""
    q = X.shape[1] + bool(fit_intercept)
    G = np.zeros((q, q), order="F")
    root = np.sqrt(w)
    for lo, hi, block in row_blocks(X, fit_intercept, q):
        G = syrk_add(G, block * root[lo:hi, None])
    return symmetrise(G)


class MinibatchOracles:
    """The callables of a GLM loss over minibatches of its rows (see
    :meth:`GLMLoss.minibatch`); a batch is an array of row indices."""

    def __init__(self, loss):
        self.loss = loss
        self.data = np.arange(loss.n_samples)
        if loss._caller is not None:  # indices of the caller's library, as its parameters
            self.data = from_host(loss._caller[0], self.data, loss._caller[1])
        self._last = (None, None)

    def _sub(self, rows):
        # The gradient and the products of one step share the batch: keep its
        # subset (and the per-sample state cached at w) for the next calls.
        if self._last[0] is not rows:
            self._last = (rows, self.loss._subset(to_numpy(rows)))
        return self._last[1]

    def fun(self, w, rows):
        """``(loss, gradient)`` over ``rows``."""
        return self._sub(rows).value_and_grad(w)

    def hessp(self, w, v, rows):
        """The Hessian of the minibatch loss times ``v``."""
        return self._sub(rows).hessp(w, v)

    @host_roundtrip
    def sampled_jac(self, w, rows, rng):
        """The gradient of the data term at labels drawn from the model."""
        sub = self._sub(rows)
        labels = sub._sample_labels(sub._point(w)[2], rng)
        sampled = self.loss._subset(rows, y=labels)
        g = sampled._point(w)[1]
        coef, _ = sampled._split(w)
        K, d = coef.shape
        g = g.copy()
        g[: K * d] -= sampled.alpha * coef.reshape(-1)
        return g.astype(_float_dtype(w), copy=False)

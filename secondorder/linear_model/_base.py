"""What the GLM losses share: input checks, the parameter layout, the cache
of per-sample curvature weights, and the curvature models built on them.

The losses are written once against the array namespace of ``X``: NumPy
arrays and SciPy sparse matrices run the numba kernels, CuPy arrays (and
CuPy sparse matrices) the CUDA kernels with cuBLAS/cuSPARSE products, and
the arrays of any other array-API library (PyTorch, array-api-strict...) the
generic kernels in that library.  Labels and weights are checked on the
host (one vector each, once) and then live where ``X`` lives."""

import copy
import math

import numpy as np
import scipy.sparse

from .._array_api import all_true, asarray_like, astype, is_real_floating, take, to_numpy
from .._array_api import copy as copy_array
from .._backend import get_namespace, is_cupy, kernels
from .._validation import check_finite, check_nonnegative
from ..curvature import DiagonalModel, HessianCallable, NonFiniteCurvatureError, NotUpdatedError, OperatorHessian

__all__ = ["GLMLoss"]

_KINDS = ("exact", "gauss-newton", "fisher", "subsampled")


def _is_sparse(X):
    return scipy.sparse.issparse(X) or type(X).__module__.startswith("cupyx.scipy.sparse")


def check_X(X, name="X", check_finite_values=True):
    """``X`` as a finite 2-D float array (dense, any order) or CSR matrix of
    its own library; float32 stays float32, everything else becomes float64.
    No copy when ``X`` already qualifies.  The finiteness test (a pass over
    ``X``) can be skipped by callers that made it already."""
    if _is_sparse(X):
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
    xp = get_namespace(X)
    if xp is np or is_cupy(xp):
        X = xp.asarray(X)
        if X.dtype == object or not (np.issubdtype(X.dtype, np.number) or X.dtype == np.bool_):
            raise TypeError(f"`{name}` must hold real numbers; got dtype {X.dtype}.")
        complex_ = np.issubdtype(X.dtype, np.complexfloating)
    else:
        if getattr(X, "layout", None) is not None and "sparse" in str(X.layout):
            raise TypeError(f"`{name}` is a sparse tensor; pass it dense, or as a scipy.sparse CSR matrix.")
        if not xp.isdtype(X.dtype, ("bool", "numeric")):
            raise TypeError(f"`{name}` must hold real numbers; got dtype {X.dtype}.")
        complex_ = xp.isdtype(X.dtype, "complex floating")
    if complex_:
        raise TypeError(f"`{name}` must hold real numbers; got complex values.")
    if X.ndim != 2:
        raise ValueError(f"`{name}` must be 2-D (n_samples, n_features); got shape {tuple(X.shape)}.")
    if X.dtype not in (xp.float32, xp.float64):
        X = astype(xp, X, xp.float64)
    if check_finite_values:
        check_finite(X, name, xp=xp)
    return X


def _check_csr_structure(X, name):
    """Raise ``ValueError`` on a malformed CSR matrix (SciPy does not check
    the arrays it is built from): the kernels index by these arrays, so an
    index out of range would read outside ``X``'s memory.  One O(nnz) pass,
    nothing changed."""
    n, d = X.shape
    indptr, indices = X.indptr, X.indices
    xp = get_namespace(indptr)
    fix = "; build it from valid (data, indices, indptr) arrays, or from a dense array or COO triplets"
    if indptr.shape != (n + 1,) or indices.shape != X.data.shape:
        raise ValueError(f"`{name}` is a malformed CSR matrix: indptr must have n_samples + 1 = {n + 1} entries and "
                         f"indices one per stored value{fix}.")
    if int(indptr[0]) != 0 or int(indptr[-1]) != indices.shape[0] or bool(xp.any(indptr[1:] < indptr[:-1])):
        raise ValueError(f"`{name}` is a malformed CSR matrix: indptr must start at 0, never decrease and end at "
                         f"the number of stored values ({indices.shape[0]}){fix}.")
    if indices.shape[0] and (int(indices.min()) < 0 or int(indices.max()) >= d):
        raise ValueError(f"`{name}` is a malformed CSR matrix: its column indices must lie in [0, {d}); they span "
                         f"{int(indices.min())} to {int(indices.max())}{fix}.")


def _result_dtype(xp, a):
    """The dtype of a result computed for ``a``: its own when real floating,
    float64 for integers and booleans (never truncated)."""
    return a.dtype if is_real_floating(xp, a.dtype) else xp.float64


def check_classes(classes):
    """The number of classes, which must be at least 2."""
    if classes.shape[0] < 2:
        raise ValueError(
            "This solver needs samples of at least 2 classes in the data, but the data contains only one "
            f"class: {classes[0]!r}."
        )
    return int(classes.shape[0])


def check_sample_weight(sample_weight, n):
    """Float64 weights of length ``n`` (NumPy, on the host): non-negative,
    finite, not all zero."""
    if sample_weight is None:
        return np.ones(n)
    sw = np.asarray(to_numpy(sample_weight), dtype=np.float64)
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
    and implement ``_check_y`` (on the host, NumPy); ``_evaluate(coef,
    b)``, which makes one fused pass over ``X`` and returns the loss sum,
    the gradient sums and the per-sample state that curvature products
    need; ``_curvature_product(state, V, vb, kind, rows)``; and
    ``_curvature_matrix(state, kind, rows)``, the curvature matrix of a
    kind as a sum over the samples, with the total weight that divides it.

    Every array lives in ``xp``, the namespace of ``X``; parameters given to
    the methods must be arrays of that library too, and results come back
    in it.
    """

    n_outputs = 1

    def __init__(self, X, y, alpha=0.0, fit_intercept=True, sample_weight=None, check_input=True):
        self.X = check_X(X, check_finite_values=check_input)
        # Unchecked, X is tested when a pass first meets a value that is not finite: a NaN or inf in X makes the
        # gradient's sums NaN or inf, so a finite gradient vouches for X, and the caller saves a pass over it.
        self._finite_checked = bool(check_input)
        self.xp = xp = get_namespace(self.X)
        n, self.n_features = self.X.shape
        if n == 0:
            raise ValueError("`X` has no samples.")
        self.sparse = _is_sparse(self.X)
        self.dtype = self.X.dtype
        like = self.X.data if self.sparse else self.X
        # labels and weights: checked on the host, then moved to X's library and device once
        self.y = self._device(self._check_y(to_numpy(y), n), like)
        self.alpha = check_nonnegative(alpha, "alpha")
        self.fit_intercept = bool(fit_intercept)
        sw = check_sample_weight(sample_weight, n)
        self._total = float(sw.sum())
        self.sample_weight = self._device(sw, like)
        self._like = self.sample_weight  # a dense float64 array of xp on X's device
        self._k = kernels(xp)
        self._cache = []  # (w, value, grad, state) of the two latest points
        self.n_passes = 0

    # Whether each oracle call is a round of tasks on a cluster (the Dask losses), where a round costs the same
    # whatever it computes, not a pass over X here.
    distributed = False

    # The kind of curvature matrix a dense model will ask for at every evaluated point (None when no dense model
    # of all the samples was made), and the last matrix a loss summed in the gradient's own pass, with the state
    # it belongs to (LogisticLoss: (h, G)).
    _prefetch = None
    _gram = None
    # Whether the pass at a point not evaluated yet also sums the Hessian's diagonal (set by hessian_diagonal;
    # the losses whose kernels can honour it), and the state of the last pass that did, with those sums.
    _with_diagonal = False
    _diagonal = None

    def _device(self, a, like):
        return asarray_like(self.xp, a, like, dtype=getattr(self.xp, str(a.dtype)))

    def _zeros(self, shape):
        xp = self.xp
        if xp is np or is_cupy(xp):
            return xp.zeros(shape)
        return xp.zeros(shape, dtype=xp.float64, device=_device_of(self._like))

    def _empty(self, shape):
        xp = self.xp
        if xp is np or is_cupy(xp):
            return xp.empty(shape)
        return xp.empty(shape, dtype=xp.float64, device=_device_of(self._like))

    # -------------------------------------------------------------- layout
    @property
    def n_samples(self):
        return self.X.shape[0]

    @property
    def n_params(self):
        """Length of the parameter vector ``w``."""
        return self.n_outputs * (self.n_features + self.fit_intercept)

    def _vector(self, w, name):
        """``w`` as a 1-D array of the loss's library with ``n_params``
        entries."""
        xp = self.xp
        if xp is np:
            w = np.asarray(w)
        elif get_namespace(w) is not get_namespace(self._like):
            raise TypeError(
                f"`{name}` must be an array of X's library ({getattr(xp, '__name__', xp)}); got "
                f"{type(w).__module__}.{type(w).__name__}. Build it with loss.initial_params() or that library."
            )
        if tuple(w.shape) != (self.n_params,):
            raise ValueError(f"`{name}` must have length n_params = {self.n_params}; got shape {tuple(w.shape)}.")
        check_finite(w, name, xp=xp)
        return w

    def _split(self, w):
        xp, d, K = self.xp, self.n_features, self.n_outputs
        w = astype(xp, w, xp.float64)
        coef = w[: K * d].reshape(K, d) if xp is np else xp.reshape(w[: K * d], (K, d))
        b = w[K * d :] if self.fit_intercept else self._zeros(K)
        return coef, b

    def _join(self, coef, b, dtype):
        xp = self.xp
        if xp is np:  # the same, in fewer calls (small problems pay per call)
            if not self.fit_intercept:
                return np.ravel(coef).astype(dtype)
            return np.concatenate((np.ravel(coef), np.ravel(b))).astype(dtype, copy=False)
        parts = [xp.reshape(astype(xp, coef, xp.float64), (-1,))]
        if self.fit_intercept:
            parts.append(xp.reshape(astype(xp, b, xp.float64), (-1,)))
        joined = (np.concatenate if xp is np else xp.concat)(parts)
        return astype(xp, joined, dtype)

    def _as_kernel(self, a):
        """Parameters in ``X``'s precision, so that a float32 ``X`` runs the
        float32 specialisation of the kernels (float64 accumulation inside)."""
        return astype(self.xp, a, self.xp.float32) if self.dtype == self.xp.float32 else a

    def _index(self, rows):
        """Row indices (NumPy or of ``xp``) as an index array of ``xp``."""
        if self.xp is np:
            return np.asarray(rows)
        if get_namespace(rows) is np:
            return self._device(np.asarray(rows), self._like)
        return rows

    def _take(self, a, rows):
        return take(self.xp, a, rows)

    def _rows(self, rows):
        """``X`` restricted to a subsample's rows and their total weight,
        copied once and kept for the later products."""
        if getattr(self, "_sub", (None,))[0] is not rows:
            sw = self._take(self.sample_weight, rows)
            self._sub = (rows, self._take(self.X, rows), float(self.xp.sum(sw)))
        return self._sub[1], self._sub[2]

    def _csr_args(self):
        X = self.X
        return X.data, X.indices, X.indptr, self.n_features

    @property
    def fused(self):
        """True when the passes over ``X`` run as numba kernels (dense
        C-ordered or CSR ``X``), so that BLAS does only vector work."""
        return self._k.__name__ == "cpu" and self.xp is np and (self.sparse or self.X.flags.c_contiguous)

    def initial_params(self):
        """Zeros of the loss's dtype, in ``X``'s array library and on its
        device: the usual starting point."""
        return astype(self.xp, self._zeros(self.n_params), self.dtype)

    # ---------------------------------------------------------- evaluation
    def _point(self, w):
        """(value, grad, state) at ``w``, from the cache or one pass."""
        xp = self.xp
        w = self._vector(w, "w")
        for entry in self._cache:
            if all_true(xp, entry[0] == w):
                return entry[1:]
        coef, b = self._split(w)
        # an overflow, or a NaN from an unchecked X, is judged below
        with np.errstate(over="ignore", invalid="ignore"):
            loss, gcoef, gb, state = self._evaluate(coef, b)
            penalty = 0.0
            if self.alpha:
                flat = xp.reshape(coef, (-1,))
                penalty = 0.5 * self.alpha * float(flat @ flat)
            inv = 1.0 / self._total
            value = loss * inv + penalty
            grad = self._join(gcoef * inv + self.alpha * coef, gb * inv, xp.float64)
        self.n_passes += 1
        if not math.isfinite(value):
            # every term is >= 0: finite parameters whose loss is not finite overflowed, to +inf
            # (which minimize treats as a step to reject)
            value = math.inf
        if not all_true(xp, xp.isfinite(grad)):
            self._nonfinite_gradient()
        self._remember(copy_array(xp, w), value, grad, state)
        return value, grad, state

    def _remember(self, w, value, grad, state):
        """Cache the point ``w`` (an array no one else changes) with its
        value, gradient and the state of its pass, as the latest of two."""
        self._cache = [(w, value, grad, state)] + self._cache[:1]

    def _nonfinite_gradient(self):
        """Raise the error of a pass whose gradient is not finite: NaN or
        inf in an ``X`` not checked yet, else an overflow."""
        self._check_finite_X()
        raise ValueError(
            "`w` is too large: the loss's gradient overflows float64 there. Start from smaller parameters "
            "or scale the features."
        )

    def _check_finite_X(self):
        """The finiteness test of ``X`` that ``check_input=False`` put off
        (see ``__init__``): a ``ValueError`` naming ``X`` when it holds NaN
        or inf."""
        if not self._finite_checked:
            check_finite(self.X.data if self.sparse else self.X, "X", xp=self.xp)
            self._finite_checked = True

    def value(self, w):
        """The loss :math:`f(w)`."""
        return self._point(w)[0]

    def grad(self, w):
        """The gradient :math:`\\nabla f(w)`, in ``w``'s dtype."""
        g = self._point(w)[1]
        return astype(self.xp, g, _result_dtype(self.xp, self._vector(w, "w")), copy=True)

    def value_and_grad(self, w):
        """``(f(w), grad f(w))`` from one pass over ``X``: use as
        ``minimize(loss.value_and_grad, w0, jac=True, ...)``."""
        value, g, _ = self._point(w)
        return value, astype(self.xp, g, _result_dtype(self.xp, self._vector(w, "w")), copy=True)

    def __call__(self, w):
        return self.value(w)

    def hessp(self, w, v):
        """The Hessian-vector product :math:`\\nabla^2 f(w) v` (one pass)."""
        return self._product(w, v, "exact", None)

    def _product(self, w, v, kind, rows):
        return self._product_at(self._point(w)[2], self._vector(v, "v"), kind, rows)

    def _product_at(self, state, v, kind, rows):
        """The curvature product with the checked vector ``v`` at the point
        whose pass left ``state`` (one pass)."""
        V, vb = self._split(v)
        out, out_b, total = self._curvature_product(state, V, vb, kind, rows)
        self.n_passes += 1
        return self._join(out / total + self.alpha * V, out_b / total, _result_dtype(self.xp, v))

    def hess(self, w):
        """The dense Hessian :math:`\\nabla^2 f(w)` (n_params x n_params)."""
        return self._dense(self._vector(w, "w"), "exact", None)

    def _dense(self, w, kind, rows):
        """The curvature matrix of ``kind`` at ``w`` (one pass over ``X``)."""
        H, total = self._curvature_matrix(self._point(w)[2], kind, rows)
        if self._gram is None or H is not self._gram[1]:  # a matrix summed in the gradient's pass costs none
            self.n_passes += 1
        return self._add_penalty(H / total)

    def _weighted_squares(self, weights):
        """:math:`\\sum_i w_i x_{ij}^2` for every feature ``j``: shape ``(d,)``
        for weights of shape ``(n,)``, ``(d, K)`` for ``(n, K)``; one pass
        over ``X``."""
        xp, X = self.xp, self.X
        if self.sparse:
            # kept: the Newton phase of solver="auto" asks at every point
            if getattr(self, "_squares", None) is None or self._squares[0] is not X:
                self._squares = (X, X.multiply(X))
            squares = self._squares[1]
            return astype(xp, xp.asarray(squares.T @ astype(xp, weights, squares.dtype)), xp.float64)
        total = None
        buffer = self._scratch() if xp is np else None
        for lo, hi, block in row_blocks(X, False, self.n_features, xp, step=buffer.rows if buffer else None):
            squares = np.multiply(block, block, out=buffer.take(hi - lo)) if buffer else block * block
            part = squares.T @ weights[lo:hi]
            total = part if total is None else total + part
        return total

    def _scratch(self):
        """The scratch block of the passes that scale blocks of ``X``: one
        per loss, reused by every pass (see :class:`_Buffer`)."""
        if getattr(self, "_buffer", None) is None:
            self._buffer = _Buffer(self.n_features, rows=self.n_samples)
        return self._buffer

    def hessian_diagonal(self, w):
        r"""The diagonal of the Hessian :math:`\nabla^2 f(w)`: summed in the
        gradient's pass where ``w`` is a new point (binary loss), else one
        pass over ``X`` besides the gradient's.

        .. math::

            \frac{\partial^2 f}{\partial W_{kj}^2} = \frac1S \sum_i s_i\,
            p_{ik} (1 - p_{ik})\, x_{ij}^2 + \alpha, \qquad
            \frac{\partial^2 f}{\partial b_k^2} = \frac1S \sum_i s_i\,
            p_{ik} (1 - p_{ik}),

        with :math:`p_{ik}` the model's probability of class :math:`k` (of
        the positive class for the binary loss).  At :math:`w = 0` it carries
        the features' scales, the main source of ill-conditioning in
        unscaled data: the diagonal preconditioner and variable scaling of
        ``solver="auto"``.
        """
        xp = self.xp
        w = self._vector(w, "w")
        self._with_diagonal = True  # at a point not evaluated yet, the gradient's pass sums the diagonal too
        try:
            state = self._point(w)[2]
        finally:
            self._with_diagonal = False
        coef, b = self._diagonal_of(state)
        return self._join(coef / self._total + self.alpha, b / self._total, xp.float64)

    def _diagonal_of(self, state):
        """The Hessian diagonal's sums at the point of ``state``: from the
        pass that made ``state`` where it summed them, else from a pass of
        their own."""
        if self._diagonal is not None and self._diagonal[0] is state:
            return self._diagonal[1]
        self.n_passes += 1
        return self._diagonal_sums(state)

    def _compiled_lbfgs(self, root):
        """``(routine, data, pack, unpack)`` of :func:`~secondorder.
        linear_model._lbfgs.lbfgs_compiled` in the variables ``root * w``,
        where this loss's passes can run inside it (``X`` on the numba
        kernels; see
        :mod:`secondorder._kernels.cpu.glm_lbfgs`): ``pack`` copies a
        pass's state into the routine's array, ``unpack`` gives it back;
        else None."""
        return None

    def _compiles(self):
        """Whether the passes are numba's, in this process: the compiled
        runs can make them."""
        return not self.distributed and self.fused

    def _serial(self, width=1):
        """Whether the passes run on the numba kernels on the calling
        thread alone (``width`` times the stored entries of ``X`` a pass)."""
        return self._compiles() and self._blocks(width) == 1

    def _compiled_data(self, root, width):
        """The ``data`` tuple of the compiled L-BFGS run (see
        :mod:`secondorder._kernels.cpu.glm_lbfgs`), or None where the passes
        are not numba's (``width``: the classes a pass's entries meet)."""
        if not self._compiles():
            return None
        return (self._compiled_X(), self.y, self.sample_weight, root, float(self.alpha), 1.0 / self._total,
                self.fit_intercept, self.n_outputs, self._blocks(width))

    def _blocks(self, width):
        """The row blocks of a pass over ``X`` whose entries meet ``width``
        classes each (1: on the calling thread)."""
        from .._kernels.cpu.glm import _blocks

        return _blocks(self.n_samples, (self.X.nnz if self.sparse else self.X.size) * width)

    def _compiled_X(self):
        """``X`` as the compiled runs take it: the array, or where it is
        CSR the tuple ``(data, indices, indptr, n_features)`` with unsigned
        index arrays."""
        X = self.X
        if self.sparse:
            from .._kernels.cpu.glm import _unsigned

            X = (X.data, _unsigned(X.indices), _unsigned(X.indptr), self.n_features)
        return X

    def _compiled_steihaug(self, kind, rows):
        """``(routine, data, weights)`` of the compiled Steihaug-CG over
        this loss's curvature products of ``kind`` (see
        :mod:`secondorder._kernels.cpu.glm_cg`), ``weights`` giving the
        routine's per-sample weights from a pass's state; None where the
        products are not numba's, or over a subsample."""
        return None

    def _auto_solver(self):
        return _auto_solver_rule(self)

    def _add_penalty(self, H):
        """``H + alpha I`` on the coefficients' block (not the intercepts')."""
        xp, m = self.xp, self.n_outputs * self.n_features
        if xp is np or is_cupy(xp):
            H[xp.arange(m), xp.arange(m)] += self.alpha
            return H
        mask = astype(xp, xp.arange(H.shape[0], device=_device_of(H)) < m, H.dtype)
        return H + self.alpha * (xp.eye(H.shape[0], dtype=H.dtype, device=_device_of(H)) * mask)

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
            known) and ``data``, the row indices to pass as ``data`` (an
            integer array of ``X``'s library); each minibatch loss is the
            weighted mean over its rows plus the full L2 term, an unbiased
            estimate of this loss.
        """
        return MinibatchOracles(self)

    def _subset(self, rows, y=None):
        """This loss over ``rows`` (and labels ``y`` if given), sharing
        every setting; no input check is repeated."""
        rows = self._index(rows)
        sub = copy.copy(self)
        sub.X = self._take(self.X, rows)
        sub.y = self._take(self.y, rows) if y is None else y
        sub.sample_weight = self._take(self.sample_weight, rows)
        sub._like = sub.sample_weight
        sub._total = float(self.xp.sum(sub.sample_weight))
        sub._cache = []
        sub._prefetch = sub._gram = sub._diagonal = None  # a minibatch's passes sum no curvature matrix unless its own model asks
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
            for the binary loss with at most 64 parameters and a dense
            ``X`` (the matrix costs about one pass of BLAS rank-k updates;
            with at most 24 parameters, on the numba kernels, it is summed
            in the gradient's pass, as rank-one updates of each row while
            it is in cache, so a Newton iteration costs one pass), products
            otherwise (a dense softmax Hessian costs ``K`` times more than
            its products save).
        **model_options
            Passed to the model (``DenseHessian`` or ``OperatorHessian``).

        Returns
        -------
        HessianCallable or OperatorHessian
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
            rows = self._index(np.sort(rng.choice(n, size=max(1, int(round(fraction * n))), replace=False)))
        if solver == "auto":
            solver = self._auto_solver()
        if solver == "dense":
            self._prefetch = kind if rows is None else None

            def hess(w):
                return astype(self.xp, self._dense(self._vector(w, "w"), kind, rows), w.dtype)

            return HessianCallable(hess, **model_options)

        return _Products(self, kind, rows, **model_options)


class _Products(OperatorHessian):
    """A loss's curvature products as a matrix-free model (conjugate
    gradients): the state of the model's point (the per-sample weights of
    its gradient's pass) is looked up once per point, and each product is
    one pass of the loss's kernels.  What those return is the loss's own
    fresh array: no copy of the point or the vector goes in, and no copy or
    check of the product comes out, where a user's ``hessp`` needs both
    (in conjugate gradients they cost a quarter of a small product).
    ``hessp(x, v)`` stays the loss's product at any point."""

    def __init__(self, loss, kind, rows, **model_options):
        def hessp(w, v):
            return loss._product(w, v, kind, rows)

        super().__init__(hessp, **model_options)
        self._loss, self._kind, self._rows = loss, kind, rows
        self._state = None

    def update(self, x, g=None, **data):
        super().update(x, g, **data)
        self._state = None  # the point's state, at its first product

    def _matvec(self, v):
        if self._x is None:
            raise NotUpdatedError()
        if self._state is None:
            self._state = self._loss._point(self._x)[2]
        self.nhev += 1
        return self._loss._product_at(self._state, v, self._kind, self._rows)

    def _steihaug(self, g, radius, tol):
        """Steihaug's loop of :meth:`OperatorHessian.trust_step`, run whole
        by one compiled call where the loss's products are numba's and the
        preconditioner, if any, is diagonal (the same steps, without 20-30
        µs of Python an iteration)."""
        compiled = None
        if self.preconditioner is None or isinstance(self.preconditioner, DiagonalModel):
            compiled = self._loss._compiled_steihaug(self._kind, self._rows)
        if compiled is None or g.dtype != np.float64:
            return super()._steihaug(g, radius, tol)
        routine, data, weights = compiled
        if self._state is None:
            self._state = self._loss._point(self._x)[2]
        z, status, k, rnorm = routine(data, weights(self._state), g, radius, tol, self._diagonal(g),
                                      self._maxiter(g.shape[0]))
        self.ncg += k
        self.nhev += k
        self._loss.n_passes += k
        if status == 2:
            raise NonFiniteCurvatureError("the Hessian-vector product returned NaN or inf at the current point.")
        return z, status == 1, rnorm

    def _diagonal(self, like):
        """The diagonal preconditioner's entries, or ones where there is
        none or it is not positive definite (where the Python loop would go
        unpreconditioned)."""
        if self.preconditioner is not None:
            d = np.asarray(self.preconditioner.diagonal(), dtype=np.float64)
            if d.min() > 0.0:
                return d
        return np.ones_like(like)


def _auto_solver_rule(loss):
    """``curvature(solver="auto")``: the dense matrix for a binary loss of
    at most 64 parameters on dense ``X``, products otherwise."""
    return "dense" if loss.n_outputs == 1 and loss.n_params <= 64 and not loss.sparse else "cg"


def _device_of(a):
    from array_api_compat import device

    return device(a)


class _Buffer:
    """One scratch block of rows, reused by every block of a pass.

    A temporary of a block's size per block is allocated with ``mmap`` and
    returned to the system when freed (glibc does so above 128 KiB, or
    trims the heap), so each block's first writes page-fault: on 25,000 x
    40 that made a weighted Gram matrix 2.6x slower (6.6 ms against 2.5).
    About 2**17 numbers: cache-sized, and the faults of one such block per
    pass are negligible.  A block allocated afresh by each pass would fault
    its pages in at each pass again, so a loss keeps one
    (:meth:`GLMLoss._scratch`), no larger than ``X`` needs (``rows``)."""

    def __init__(self, width, numbers=1 << 17, rows=None):
        self.rows = max(64, numbers // max(width, 1))
        if rows is not None:
            self.rows = max(1, min(self.rows, rows))
        self.width = width
        self._array = None

    def take(self, rows):
        if self._array is None:
            self._array = np.empty((self.rows, self.width))
        return self._array[:rows]


def row_blocks(X, fit_intercept, width, xp=np, step=None):
    """``(lo, hi, block)`` over blocks of rows of ``X``, each block dense,
    float64, with a column of ones appended when ``fit_intercept``; block
    sizes hold about 2**19 numbers of width ``width`` in cache (or
    ``step`` rows).  A block may be a view of ``X``: read it, never write to
    it."""
    n = X.shape[0]
    step = step or max(64, (1 << 19) // max(width, 1))
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        block = X[lo:hi, :]
        block = block.toarray() if _is_sparse(block) else block
        block = astype(xp, block, xp.float64)
        if fit_intercept:
            if xp is np or is_cupy(xp):
                ones = xp.ones((hi - lo, 1))
            else:
                ones = xp.ones((hi - lo, 1), dtype=xp.float64, device=_device_of(block))
            block = (np.concatenate if xp is np else xp.concat)([block, ones], axis=1)
        yield lo, hi, block


def gram_add(xp, G, B, sign=1.0):
    """``G += sign * B^T B``; returns ``G``.  On NumPy only the upper
    triangle of the F-ordered ``G`` is written (BLAS syrk: half the flops
    of a product), and :func:`symmetrise` completes it."""
    if xp is not np:
        return G + sign * (B.T @ B)
    from scipy.linalg import blas

    # B.T of a C-ordered B is F-ordered, so syrk reads it without a copy.
    return blas.dsyrk(sign, np.ascontiguousarray(B).T, beta=1.0, c=G, trans=0, lower=0, overwrite_c=1)


def symmetrise(xp, G):
    """The full symmetric matrix from what :func:`gram_add` accumulated."""
    if xp is not np:
        return G
    return np.triu(G) + np.triu(G, 1).T


def gram_zeros(xp, q, like):
    """A q x q float64 accumulator for :func:`gram_add`."""
    if xp is np:
        return np.zeros((q, q), order="F")
    if is_cupy(xp):
        return xp.zeros((q, q))
    return xp.zeros((q, q), dtype=xp.float64, device=_device_of(like))


def weighted_gram(X, w, fit_intercept, xp=np, buffer=None):
    """``[X 1]^T diag(w) [X 1]`` (the ``1`` column only with
    ``fit_intercept``) for a dense or CSR ``X`` and ``w >= 0``: one pass
    over ``X`` in cached blocks, each scaled by ``sqrt(w)`` (into
    ``buffer``, a :class:`_Buffer` of ``X``'s width, on NumPy) and added by
    a rank-k update."""
    q = X.shape[1] + bool(fit_intercept)
    G = gram_zeros(xp, q, w)
    root = xp.sqrt(w)
    if xp is not np:
        for lo, hi, block in row_blocks(X, fit_intercept, q, xp):
            G = gram_add(xp, G, block * root[lo:hi, None])
        return symmetrise(xp, G)
    # NumPy: the column of ones is not materialised; its products with the scaled block are
    # B^T sqrt(w) (a GEMV) and sum(w), so each block is copied once (scaled), not twice
    d = X.shape[1]
    top = np.zeros((d, d), order="F")
    buffer = buffer or _Buffer(d, rows=X.shape[0])
    for lo, hi, block in row_blocks(X, False, q, step=buffer.rows):
        scaled = np.multiply(block, root[lo:hi, None], out=buffer.take(hi - lo))
        top = gram_add(np, top, scaled)
        if fit_intercept:
            G[:d, d] += scaled.T @ root[lo:hi]
    G[:d, :d] = top
    if fit_intercept:
        G[d, d] = float(np.sum(w))
    return symmetrise(np, G)


class MinibatchOracles:
    """The callables of a GLM loss over minibatches of its rows (see
    :meth:`GLMLoss.minibatch`); a batch is an array of row indices."""

    def __init__(self, loss):
        self.loss = loss
        self.data = loss._index(np.arange(loss.n_samples))
        self._last = (None, None)

    def _sub(self, rows):
        # The gradient and the products of one step share the batch: keep its
        # subset (and the per-sample state cached at w) for the next calls.
        if self._last[0] is not rows:
            self._last = (rows, self.loss._subset(rows))
        return self._last[1]

    def fun(self, w, rows):
        """``(loss, gradient)`` over ``rows``."""
        return self._sub(rows).value_and_grad(w)

    def hessp(self, w, v, rows):
        """The Hessian of the minibatch loss times ``v``."""
        return self._sub(rows).hessp(w, v)

    def sampled_jac(self, w, rows, rng):
        """The gradient of the data term at labels drawn from the model."""
        sub = self._sub(rows)
        labels = sub._sample_labels(sub._point(w)[2], rng)
        sampled = self.loss._subset(rows, y=labels)
        g = sampled._point(w)[1]
        coef, _ = sampled._split(sampled._vector(w, "w"))
        xp = self.loss.xp
        penalty = sampled._join(sampled.alpha * coef, sampled._zeros(coef.shape[0]), xp.float64)
        return astype(xp, g - penalty, _result_dtype(xp, w))

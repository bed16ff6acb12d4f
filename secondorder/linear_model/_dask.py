r"""The GLM losses over data partitioned on a Dask cluster.

A user whose ``X`` is a Dask array (dense, or with ``scipy.sparse`` chunks)
or a Dask DataFrame fits :class:`LogisticRegression` and
:class:`SoftmaxRegression` on it unchanged: ``fit`` sees a Dask collection
and builds one of the losses below, and the drivers (``gns``,
``trust-region``, ``lbfgs``) run on the client exactly as in memory, on
NumPy vectors.

Each partition of ``X`` (a block of rows), with its labels and weights,
becomes once, on the worker that holds it, the in-memory loss of its rows
(:class:`LogisticLoss` or :class:`SoftmaxLoss`, without the penalty).  An
oracle call is then one *round*: one task per partition, on that
partition's worker, running the fused numba pass over its rows and
returning sums (the loss, the gradient, a Hessian product or the Hessian
matrix), which the client adds in partition order, so results are
deterministic, and divides by the total weight :math:`S`, adding the
penalty:

.. math::

    f(w) = \frac1S \sum_p \sum_{i \in p} s_i \ell_i(w)
           + \frac{\alpha}{2}\|W\|^2 .

The per-sample curvature weights of the last gradient evaluated stay on the
workers, so a Hessian product at that point costs one pass, as in memory.
No task graph is built per round (the tasks refer to data already in
memory), and ``X`` never moves.

Data with lineage (built from ``dask.array.from_array``, ``from_zarr``,
``read_parquet``...) survives a lost worker: Dask recomputes its partitions
elsewhere and the fit is unchanged, bit for bit.  Data scattered by hand has
no lineage, and losing it is an error that says so.
"""

import functools
import operator

import numpy as np

from ._base import GLMLoss
from ._logistic_loss import LogisticLoss
from ._softmax_loss import SoftmaxLoss

__all__ = ["DaskLogisticLoss", "DaskSoftmaxLoss", "LostPartitionError", "is_dask_collection"]


class LostPartitionError(RuntimeError):
    """A worker holding partitions that Dask cannot recompute was lost."""


def is_dask_collection(obj):
    """Whether ``obj`` is a Dask collection (array, DataFrame, Series);
    False when Dask is not installed."""
    try:
        import dask
    except ImportError:
        return False
    return dask.is_dask_collection(obj)


def _dask_modules():
    try:
        import dask.array as da
        import distributed
    except ImportError as exc:  # pragma: no cover - the extra is installed in the tests
        raise ImportError(
            "Fitting on Dask collections needs dask and distributed: pip install 'secondorder[dask]'."
        ) from exc
    return da, distributed


# ------------------------------------------------------------ worker side
def _make_part(cls, X, y, sample_weight, n_classes, fit_intercept):
    """The in-memory loss of one partition, on the worker that holds it;
    no penalty (the client adds it once)."""
    if hasattr(X, "to_numpy"):  # a pandas partition
        X = X.to_numpy(dtype=np.float64)
    kwargs = {"n_classes": n_classes} if cls is SoftmaxLoss else {}
    part = cls(X, y, alpha=0.0, fit_intercept=fit_intercept, sample_weight=sample_weight, **kwargs)
    part.state_at = None  # (parameters, per-sample state) of the last evaluation here
    return part


def _evaluate_part(part, coef, b):
    loss, g, gb, state = part._evaluate(coef, b)
    part.state_at = (coef.tobytes() + b.tobytes(), state)
    return loss, g, gb


def _state_of(part, coef, b):
    # After a lost worker the partition is rebuilt without its state: one more pass restores it.
    if part.state_at is None or part.state_at[0] != coef.tobytes() + b.tobytes():
        _evaluate_part(part, coef, b)
    return part.state_at[1]


def _product_part(part, coef, b, V, vb, kind):
    out, out_b, _ = part._curvature_product(_state_of(part, coef, b), V, vb, kind, None)
    return out, out_b


def _matrix_part(part, coef, b, kind):
    return part._curvature_matrix(_state_of(part, coef, b), kind, None)[0]


def _total_part(part):
    return part._total


def _warm_up():
    """Load (or compile) the numba kernels in a worker process once."""
    X = np.ones((2, 2))
    for loss in (LogisticLoss(X, [0, 1]), SoftmaxLoss(X, [0, 1])):
        w = loss.initial_params()
        loss.hessp(w, w)
    return True


def _encode(block, classes):
    """Labels as class indices (``classes`` sorted)."""
    index = np.searchsorted(classes, block)
    bad = (index >= classes.shape[0]) | (classes[np.minimum(index, classes.shape[0] - 1)] != block)
    if bad.any():  # pragma: no cover - classes come from the labels themselves
        raise ValueError("`y` holds a label outside the classes found in it.")
    return index.astype(np.int64)


# ------------------------------------------------------------ client side
def _as_dask_array(da, obj, name):
    """A Dask array from a Dask array, DataFrame or Series (partition
    lengths computed when unknown), or a NumPy array."""
    if obj is None:
        return None
    if hasattr(obj, "to_dask_array"):  # DataFrame, Series
        return obj.to_dask_array(lengths=True)
    if is_dask_collection(obj):
        if not hasattr(obj, "chunks"):
            raise TypeError(f"`{name}` must be a Dask array, DataFrame or Series; got {type(obj).__name__}.")
        return obj
    return None


def _in_order(distributed, collection):
    """The futures of a persisted Dask array, one per row block, in order."""
    by_key = {f.key: f for f in distributed.futures_of(collection)}
    keys = collection.__dask_keys__()
    flat = [k[0] if isinstance(k, list) else k for k in keys]
    return [by_key[k] for k in flat]


def partition(X, y, sample_weight=None, client=None):
    """``X``, ``y`` and ``sample_weight`` as Dask arrays with the same row
    blocks and one column block, persisted on the cluster.

    Returns ``(client, X, y, sample_weight)``; ``y`` and ``sample_weight``
    may be NumPy arrays or Dask collections, ``sample_weight`` None.
    """
    da, distributed = _dask_modules()
    client = client or distributed.default_client()
    Xd = _as_dask_array(da, X, "X")
    if Xd is None:
        raise TypeError(f"`X` must be a Dask array or DataFrame; got {type(X).__name__}.")
    if Xd.ndim != 2:
        raise ValueError(f"`X` must be 2-D (n_samples, n_features); got {Xd.ndim} dimensions.")
    Xd = Xd.rechunk({1: -1}) if len(Xd.chunks[1]) > 1 else Xd
    rows = Xd.chunks[0]

    def aligned(v, name):
        if v is None:
            return None
        vd = _as_dask_array(da, v, name)
        if vd is None:
            v = np.asarray(v)
            if v.ndim != 1 or v.shape[0] != Xd.shape[0]:
                raise ValueError(f"`{name}` must be 1-D with one entry per sample ({Xd.shape[0]}); got shape {v.shape}.")
            return da.from_array(v, chunks=(rows,))
        if vd.ndim != 1 or vd.shape[0] != Xd.shape[0]:
            raise ValueError(f"`{name}` must be 1-D with one entry per sample ({Xd.shape[0]}); got shape {vd.shape}.")
        return vd.rechunk((rows,)) if vd.chunks[0] != rows else vd

    yd = aligned(y, "y")
    swd = aligned(sample_weight, "sample_weight")
    return client, Xd, yd, swd


class _DaskGLM:
    """The round machinery shared by the two Dask losses; mixed in before
    the in-memory class, whose layout, penalty and curvature models it
    keeps."""

    _local = None  # the in-memory loss class of one partition

    def __init__(self, X, y, alpha=0.0, fit_intercept=True, sample_weight=None, n_classes=None, client=None):
        from .._validation import check_nonnegative

        _, distributed = _dask_modules()
        client, Xd, yd, swd = partition(X, y, sample_weight, client)
        if swd is None:
            persisted = client.persist([Xd, yd])
        else:
            persisted = client.persist([Xd, yd, swd])
        self.client = client
        self._data = persisted  # kept: the partitions' lineage and their memory
        columns = [_in_order(distributed, c) for c in persisted]
        if swd is None:
            columns.append([None] * len(columns[0]))
        client.run(_warm_up)  # every worker loads the numba kernels from its cache once
        self._parts = [
            client.submit(_make_part, self._local, xf, yf, sf, n_classes, fit_intercept)
            for xf, yf, sf in zip(*columns)
        ]
        self.n_rounds = 0
        self.n_tasks = 0
        totals = self._round(_total_part)
        self._total = float(functools.reduce(operator.add, totals))
        if not self._total > 0:
            raise ValueError("`sample_weight` sums to zero: at least one sample needs a positive weight.")
        self.n_features = int(Xd.shape[1])
        self._n_samples = int(Xd.shape[0])
        self.n_outputs = 1 if self._local is LogisticLoss else int(n_classes)
        self.alpha = check_nonnegative(alpha, "alpha")
        self.fit_intercept = bool(fit_intercept)
        self.dtype = np.float32 if Xd.dtype == np.float32 else np.float64
        self.xp = np
        self.sparse = False  # on the client: vectors only
        self._like = np.zeros(1)
        self._k = None
        self._cache = []
        self.n_passes = 0

    @property
    def n_samples(self):
        return self._n_samples

    @property
    def n_partitions(self):
        """Partitions of the data: tasks per round."""
        return len(self._parts)

    @property
    def fused(self):
        return False  # the passes run on the workers

    def _round(self, func, *args):
        """One task per partition, on its worker; the results in partition
        order."""
        futures = [self.client.submit(func, part, *args, pure=False) for part in self._parts]
        try:
            results = self.client.gather(futures)
        except Exception as exc:
            if "scattered" in str(exc) or type(exc).__name__ in ("FutureCancelledError", "CancelledError"):
                raise LostPartitionError(
                    "A worker holding partitions of the data was lost, and Dask cannot recompute them: the data "
                    "were scattered by hand (client.scatter), without lineage. Build X and y from a source Dask can "
                    "read again (dask.array.from_array, from_zarr, read_parquet...), or persist them with replicas "
                    f"(client.replicate). Dask said: {exc}"
                ) from exc
            raise
        self.n_rounds += 1
        self.n_tasks += len(futures)
        return results

    def _evaluate(self, coef, b):
        coef, b = np.ascontiguousarray(coef), np.ascontiguousarray(b)
        results = self._round(_evaluate_part, coef, b)
        loss = functools.reduce(operator.add, (r[0] for r in results))
        g = functools.reduce(operator.add, (np.asarray(r[1], dtype=np.float64) for r in results))
        gb = functools.reduce(operator.add, (np.asarray(r[2], dtype=np.float64) for r in results))
        return loss, g, gb, (coef.copy(), b.copy())

    def _curvature_product(self, state, V, vb, kind, rows):
        coef, b = state
        results = self._round(_product_part, coef, b, np.ascontiguousarray(V), np.ascontiguousarray(vb), kind)
        out = functools.reduce(operator.add, (np.asarray(r[0], dtype=np.float64) for r in results))
        out_b = functools.reduce(operator.add, (np.asarray(r[1], dtype=np.float64) for r in results))
        return out, out_b, self._total

    def _curvature_matrix(self, state, kind, rows):
        coef, b = state
        H = functools.reduce(operator.add, self._round(_matrix_part, coef, b, kind))
        return np.asarray(H, dtype=np.float64), self._total

    def curvature(self, kind="exact", solver="auto", **model_options):
        """As the in-memory loss's, without ``"subsampled"`` (a subsample of
        partitioned data is a partition of its own: pass it as ``X``)."""
        if kind == "subsampled":
            raise ValueError("`kind='subsampled'` is not available on Dask data; subsample the partitions instead.")
        return GLMLoss.curvature(self, kind, solver, **model_options)

    def minibatch(self):
        raise NotImplementedError("Minibatches of Dask data are not supported: persist a sample in memory instead.")


class DaskLogisticLoss(_DaskGLM, LogisticLoss):
    """:class:`LogisticLoss` over a Dask array or DataFrame ``X`` (see the
    module notes): the same ``value``, ``grad``, ``value_and_grad``,
    ``hessp``, ``hess`` and ``curvature``, each one round of one task per
    partition.  ``n_rounds`` and ``n_tasks`` count them.

    Parameters
    ----------
    X : dask array or DataFrame, shape (n_samples, n_features)
        Dense, or with ``scipy.sparse`` CSR chunks.  Persisted once.
    y, sample_weight : dask array or Series, or array
        Labels in {0, 1}; weights.
    alpha, fit_intercept
        As :class:`LogisticLoss`.
    client : distributed.Client, optional
        Default: the current client.
    """

    _local = LogisticLoss

    def __init__(self, X, y, alpha=0.0, fit_intercept=True, sample_weight=None, client=None):
        super().__init__(X, y, alpha=alpha, fit_intercept=fit_intercept, sample_weight=sample_weight, client=client)


class DaskSoftmaxLoss(_DaskGLM, SoftmaxLoss):
    """:class:`SoftmaxLoss` over a Dask array or DataFrame ``X``, as
    :class:`DaskLogisticLoss`; ``n_classes`` is required (it cannot be read
    from the labels without a pass over them)."""

    _local = SoftmaxLoss

    def __init__(self, X, y, n_classes, alpha=0.0, fit_intercept=True, sample_weight=None, client=None):
        from .._validation import check_int

        n_classes = check_int(n_classes, "n_classes", minimum=2)
        super().__init__(
            X, y, alpha=alpha, fit_intercept=fit_intercept, sample_weight=sample_weight, n_classes=n_classes,
            client=client,
        )


# ------------------------------------------------------------- estimators
def fit(estimator, X, y, sample_weight=None):
    """``estimator.fit`` on Dask collections: the classes and the class
    weights from one pass over ``y``, the labels encoded on the workers,
    then the estimator's own solver on a Dask loss.  The objective is the
    in-memory one (no hidden rescaling of ``X``)."""
    da, _ = _dask_modules()
    from sklearn.utils.multiclass import check_classification_targets

    estimator._check_params()
    _, Xd, yd, swd = partition(X, y, sample_weight)
    if yd is None:
        raise ValueError("`y` is required.")
    classes = np.unique(np.asarray(da.unique(yd).compute()))
    check_classification_targets(classes)
    K = classes.shape[0]
    if K < 2:
        raise ValueError(
            "This solver needs samples of at least 2 classes in the data, but the data contains only one "
            f"class: {classes[0]!r}."
        )
    y_index = yd.map_blocks(_encode, classes, dtype=np.int64)
    if estimator.class_weight is not None:
        if estimator.class_weight == "balanced":
            counts = np.asarray(da.bincount(y_index, minlength=K).compute(), dtype=np.float64)
            cw = counts.sum() / (K * np.maximum(counts, 1.0))
        elif isinstance(estimator.class_weight, dict):
            cw = np.array([float(estimator.class_weight.get(c, 1.0)) for c in classes])
        else:
            raise ValueError(f"`class_weight` must be None, 'balanced' or a dict; got {estimator.class_weight!r}.")
        per_sample = y_index.map_blocks(lambda block: cw[block], dtype=np.float64)
        swd = per_sample if swd is None else swd * per_sample
    binary = K == 2 and not estimator._multinomial_always
    if binary:
        loss = DaskLogisticLoss(Xd, y_index, fit_intercept=estimator.fit_intercept, sample_weight=swd)
    else:
        loss = DaskSoftmaxLoss(Xd, y_index, n_classes=K, fit_intercept=estimator.fit_intercept, sample_weight=swd)
    loss.alpha = 1.0 / (estimator.C * loss._total)  # scikit-learn's scaling, known after the weights are summed
    res = estimator._solve(loss)
    estimator.classes_ = classes
    estimator.n_features_in_ = loss.n_features
    estimator._set_coefficients(loss, res, np.float32 if Xd.dtype == np.float32 else np.float64)
    estimator.n_iter_ = np.array([res.nit], dtype=np.int32)
    estimator.n_rounds_ = loss.n_rounds
    return estimator


def _scores(block, coef, intercept):
    if hasattr(block, "to_numpy"):
        block = block.to_numpy(dtype=np.float64)
    scores = np.asarray(block @ coef.T) + intercept
    return scores[:, 0] if scores.shape[1] == 1 else scores


def decision_function(estimator, X):
    """Lazy scores: a Dask array with ``X``'s row blocks."""
    da, _ = _dask_modules()
    Xd = X.to_dask_array() if hasattr(X, "to_dask_array") else X
    if Xd.ndim != 2 or Xd.shape[1] != estimator.n_features_in_:
        raise ValueError(
            f"`X` has {Xd.shape[1] if Xd.ndim == 2 else Xd.shape} features, but the model was fitted with "
            f"{estimator.n_features_in_}."
        )
    Xd = Xd.rechunk({1: -1}) if len(Xd.chunks[1]) > 1 else Xd
    K = estimator.coef_.shape[0]
    if K == 1:
        return Xd.map_blocks(_scores, estimator.coef_, estimator.intercept_, drop_axis=1, dtype=np.float64)
    return Xd.map_blocks(_scores, estimator.coef_, estimator.intercept_, chunks=(Xd.chunks[0], (K,)), dtype=np.float64)


def _log_proba(scores):
    if scores.ndim == 1:
        scores = np.stack([np.zeros_like(scores), scores], axis=1)
    top = scores.max(axis=1, keepdims=True)
    return scores - top - np.log(np.exp(scores - top).sum(axis=1, keepdims=True))


def predict_log_proba(estimator, X):
    scores = decision_function(estimator, X)
    K = max(2, estimator.coef_.shape[0])
    if scores.ndim == 1:
        return scores.map_blocks(_log_proba, new_axis=1, chunks=(scores.chunks[0], (K,)), dtype=np.float64)
    return scores.map_blocks(_log_proba, dtype=np.float64)


def predict_proba(estimator, X):
    return predict_log_proba(estimator, X).map_blocks(np.exp, dtype=np.float64)


def _labels(scores, classes):
    index = (scores > 0).astype(np.int64) if scores.ndim == 1 else scores.argmax(axis=1)
    return classes[index]


def predict(estimator, X):
    scores = decision_function(estimator, X)
    classes = estimator.classes_
    drop = {} if scores.ndim == 1 else {"drop_axis": 1}
    return scores.map_blocks(_labels, classes, dtype=classes.dtype, **drop)

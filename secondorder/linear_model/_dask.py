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
import os

import numpy as np

from ._base import GLMLoss, check_classes
from ._logistic_loss import LogisticLoss
from ._softmax_loss import SoftmaxLoss

__all__ = ["DaskLogisticLoss", "DaskSoftmaxLoss", "LostPartitionError", "is_dask_collection"]


class LostPartitionError(RuntimeError):
    """A worker holding partitions that Dask cannot recompute was lost."""


def is_dask_collection(obj):
    """Whether ``obj`` is a Dask collection (array, DataFrame, Series);
    False when Dask is not installed."""
    if isinstance(obj, np.ndarray):  # the usual input, without Dask's own test
        return False
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
def _make_part(X, y, sample_weight, cls, n_classes, fit_intercept):
    """The in-memory loss of one partition, on the worker that holds it;
    no penalty (the client adds it once)."""
    _threads()
    if hasattr(X, "to_numpy"):  # a pandas partition
        X = X.to_numpy(dtype=np.float64)
    kwargs = {"n_classes": n_classes} if cls is SoftmaxLoss else {}
    part = cls(X, y, alpha=0.0, fit_intercept=fit_intercept, sample_weight=sample_weight, **kwargs)
    part.state_at = None  # (parameters, per-sample state) of the last evaluation here
    _register_sizeof()
    return part


def _register_sizeof():
    """Tell Dask a partition's loss weighs what its arrays do: the scheduler
    weighs moving a task (work stealing, placement) against the size of its
    data, and by default took a loss for an object of a few bytes, cheap to
    copy to another worker."""
    from dask.sizeof import sizeof

    @sizeof.register(GLMLoss)
    def _sizeof_loss(loss):
        X = loss.X
        arrays = (X.data, X.indices, X.indptr) if loss.sparse else (X,)
        return sum(sizeof(a) for a in arrays) + sizeof(loss.y) + sizeof(loss.sample_weight)


def _evaluate_part(part, coef, b, matrix=None, diagonal=False):
    """Loss and gradient sums at ``(coef, b)``, and there, when asked, the
    curvature matrix of kind ``matrix`` (a dense Newton step needs it at
    every accepted point) and the Hessian diagonal's sums (``solver="auto"``
    scales by it at the start): one round instead of two."""
    _threads()
    part._prefetch = matrix  # the binary loss sums a small matrix in the gradient's pass
    part._with_diagonal = diagonal  # and the diagonal
    try:
        loss, g, gb, state = part._evaluate(coef, b)
    finally:
        part._with_diagonal = False
    part.state_at = (coef.tobytes() + b.tobytes(), state)
    H = part._curvature_matrix(state, matrix, None)[0] if matrix is not None else None
    D = part._diagonal_of(state) if diagonal else None
    return loss, g, gb, H, D


def _state_of(part, coef, b):
    # After a lost worker the partition is rebuilt without its state: one more pass restores it.
    if part.state_at is None or part.state_at[0] != coef.tobytes() + b.tobytes():
        _evaluate_part(part, coef, b)
    return part.state_at[1]


def _product_part(part, coef, b, V, vb, kind):
    """The curvature product's sums at ``(coef, b)``."""
    _threads()
    out, out_b, _ = part._curvature_product(_state_of(part, coef, b), V, vb, kind, None)
    return out, out_b


def _matrix_part(part, coef, b, kind):
    """The curvature matrix's sum at ``(coef, b)``."""
    _threads()
    return part._curvature_matrix(_state_of(part, coef, b), kind, None)[0]


def _diagonal_part(part, coef, b):
    """The Hessian diagonal's sums at ``(coef, b)``."""
    _threads()
    return part._diagonal_sums(_state_of(part, coef, b))


def _total_part(part):
    return part._total


_THREADS = {"numba": None}  # on a worker: numba threads per task (None: numba's default)


def _threads():
    """Give the calling task the worker's share of numba threads (numba's
    setting is per thread)."""
    if _THREADS["numba"] is not None:
        import numba

        numba.set_num_threads(_THREADS["numba"])


def _warm_up(numba_threads=None):
    """Load (or compile) the numba kernels in a worker process once, and
    set its share of the machine's cores for numba's threads: worker
    processes that together run as many threads as there are cores would
    otherwise each start a numba thread per core and fight over them."""
    _THREADS["numba"] = numba_threads
    _threads()
    X = np.ones((2, 2))
    for loss in (LogisticLoss(X, [0, 1]), SoftmaxLoss(X, [0, 1])):
        w = loss.initial_params()
        loss.hessp(w, w)
    return True


def _encode(block, classes):
    """Labels as class indices (``classes`` sorted)."""
    # the classes are the labels' own unique values: every label is found
    return np.searchsorted(classes, block).astype(np.int64)


# ------------------------------------------------------------ client side
def _as_dask_array(obj, name):
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


class Partitions:
    """The data of a fit as futures on the cluster, one per row block and in
    order: ``X`` blocks, labels, weights (None when all are 1)."""

    def __init__(self, client, X, y, weights, shape, dtype, sparse, keep):
        self.client, self.X, self.y, self.weights = client, X, y, weights
        self.shape, self.dtype, self.sparse = shape, dtype, sparse
        self._keep = keep  # the persisted collections: their memory and lineage

    def map(self, func, *columns, **kwargs):
        """``func`` on every partition (one task each, batched), futures in
        order."""
        return self.client.map(func, *columns, pure=False, batch_size=len(self.X), **kwargs)


def partition(X, y, sample_weight=None, client=None):
    """``X``, ``y`` and ``sample_weight`` persisted on the cluster with the
    same row blocks and one column block, as :class:`Partitions`; ``y``
    and ``sample_weight`` may be NumPy arrays or Dask collections,
    ``sample_weight`` None."""
    da, distributed = _dask_modules()
    client = client or distributed.default_client()
    Xd = _as_dask_array(X, "X")
    if Xd is None:
        raise TypeError(f"`X` must be a Dask array or DataFrame; got {type(X).__name__}.")
    if Xd.ndim != 2:
        raise ValueError(f"`X` must be 2-D (n_samples, n_features); got {Xd.ndim} dimensions.")
    Xd = Xd.rechunk({1: -1}) if len(Xd.chunks[1]) > 1 else Xd
    rows = Xd.chunks[0]

    def aligned(v, name):
        if v is None:
            return None
        vd = _as_dask_array(v, name)
        if vd is None:
            v = np.asarray(v)
            if v.ndim != 1 or v.shape[0] != Xd.shape[0]:
                raise ValueError(f"`{name}` must be 1-D with one entry per sample ({Xd.shape[0]}); got shape {v.shape}.")
            return da.from_array(v, chunks=(rows,))
        if vd.ndim != 1 or vd.shape[0] != Xd.shape[0]:
            raise ValueError(f"`{name}` must be 1-D with one entry per sample ({Xd.shape[0]}); got shape {vd.shape}.")
        return vd.rechunk((rows,)) if vd.chunks[0] != rows else vd

    if y is None:
        raise ValueError("`y` is required.")
    collections = [Xd, aligned(y, "y")]
    swd = aligned(sample_weight, "sample_weight")
    if swd is not None:
        collections.append(swd)
    persisted = client.persist(collections)
    columns = [_in_order(distributed, c) for c in persisted]
    weights = columns[2] if swd is not None else None
    meta = getattr(Xd, "_meta", None)
    sparse = meta is not None and hasattr(meta, "tocsr")
    dtype = np.float32 if Xd.dtype == np.float32 else np.float64
    return Partitions(client, columns[0], columns[1], weights, (int(Xd.shape[0]), int(Xd.shape[1])), dtype, sparse,
                      persisted)


_warmed = set()  # (scheduler, worker) pairs whose numba kernels are loaded


def _warm_workers(client):
    """Every worker loads the numba kernels from its cache once (not in
    the first round's time, and once per worker process), with its share
    of its machine's cores for numba's threads."""
    import inspect

    # scheduler_info lists only some workers unless asked for all (newer distributed)
    every = {"n_workers": -1} if "n_workers" in inspect.signature(client.scheduler_info).parameters else {}
    workers = client.scheduler_info(**every)["workers"]
    scheduler = client.scheduler.address
    if {(scheduler, w) for w in workers} <= _warmed:
        return
    cores = client.run(os.cpu_count)
    per_host = {}
    for worker in workers.values():
        per_host[worker["host"]] = per_host.get(worker["host"], 0) + worker["nthreads"]
    for address, worker in workers.items():
        share = max(1, (cores.get(address) or 1) // max(1, per_host[worker["host"]]))
        client.run(_warm_up, share, workers=[address])
    _warmed.update((scheduler, w) for w in workers)


def _sum(arrays):
    """The sum of the partitions' arrays, in partition order (deterministic), in float64."""
    return functools.reduce(operator.add, (np.asarray(a, dtype=np.float64) for a in arrays))


class _DaskGLM:
    """The round machinery shared by the two Dask losses; mixed in before
    the in-memory class, whose layout, penalty and curvature models it
    keeps."""

    _local = None  # the in-memory loss class of one partition
    distributed = True

    def __init__(self, X, y, alpha=0.0, fit_intercept=True, sample_weight=None, n_classes=None, client=None):
        from .._validation import check_nonnegative

        data = X if isinstance(X, Partitions) else partition(X, y, sample_weight, client)
        self.client = client = data.client
        self._data = data
        _warm_workers(client)
        weights = data.weights if data.weights is not None else [None] * len(data.X)
        self._parts = data.map(_make_part, data.X, data.y, weights, cls=self._local, n_classes=n_classes,
                               fit_intercept=fit_intercept)
        self.n_rounds = 0
        self.n_tasks = 0
        self._prefetch = None  # the curvature matrix to compute with every gradient (dense models)
        self._with_diagonal = False  # the Hessian diagonal too (hessian_diagonal at a new point)
        self._holders = None  # the partitions' indices by worker address
        if data.weights is None:
            self._total = float(data.shape[0])
        else:
            self._total = float(functools.reduce(operator.add, self._round(_total_part)))
        if not self._total > 0:
            raise ValueError("`sample_weight` sums to zero: at least one sample needs a positive weight.")
        self._n_samples, self.n_features = data.shape
        self.n_outputs = 1 if self._local is LogisticLoss else int(n_classes)
        self.alpha = check_nonnegative(alpha, "alpha")
        self.fit_intercept = bool(fit_intercept)
        self.dtype = data.dtype
        self.xp = np
        self.sparse = data.sparse
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

    def _placement(self):
        """The partitions' indices by the worker that holds them, asked of
        the scheduler once (after the first round, when they exist)."""
        if self._holders is None:
            who_has = self.client.who_has(self._parts)
            self._holders = {}
            for i, f in enumerate(self._parts):
                holders = who_has.get(f.key) or [None]
                self._holders.setdefault(holders[0], []).append(i)
        return self._holders

    def _round(self, func, **kwargs):
        """One task per partition, on its worker; the results in partition
        order."""
        if self.n_rounds == 0:
            futures = self._data.map(func, self._parts, **kwargs)
        else:
            # Each task is pinned (loosely) to the worker holding its partition. Unpinned, a round's tasks can
            # count as "root-ish" to the scheduler (a task group larger than twice the cluster's threads, with
            # few dependencies: the rounds' tasks share one group), and it then places them without regard to
            # where their data are, copying partitions between workers. A loose pin still lets a task run
            # elsewhere when its worker is gone (Dask then rebuilds the partition there).
            futures = [None] * len(self._parts)
            for address, index in self._placement().items():
                pinned = {} if address is None else {"workers": [address], "allow_other_workers": True}
                for i, f in zip(index, self._data.map(func, [self._parts[i] for i in index], **pinned, **kwargs)):
                    futures[i] = f
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
        results = self._round(_evaluate_part, coef=coef, b=b, matrix=self._prefetch, diagonal=self._with_diagonal)
        loss = functools.reduce(operator.add, (r[0] for r in results))
        g = _sum(r[1] for r in results)
        gb = _sum(r[2] for r in results)
        matrices = {}
        if self._prefetch is not None:
            matrices[self._prefetch] = _sum(r[3] for r in results)
        if self._with_diagonal:
            matrices["diagonal"] = tuple(_sum(r[4][i] for r in results) for i in (0, 1))
        return loss, g, gb, (coef.copy(), b.copy(), matrices)

    def _curvature_product(self, state, V, vb, kind, rows):
        coef, b, _ = state
        results = self._round(
            _product_part, coef=coef, b=b, V=np.ascontiguousarray(V), vb=np.ascontiguousarray(vb), kind=kind
        )
        return _sum(r[0] for r in results), _sum(r[1] for r in results), self._total

    def _curvature_matrix(self, state, kind, rows):
        coef, b, matrices = state
        if kind in matrices:  # computed in the gradient's round
            return matrices[kind], self._total
        return _sum(self._round(_matrix_part, coef=coef, b=b, kind=kind)), self._total

    def _diagonal_sums(self, state):
        coef, b, matrices = state
        if "diagonal" in matrices:  # computed in the gradient's round
            return matrices["diagonal"]
        results = self._round(_diagonal_part, coef=coef, b=b)
        return tuple(_sum(r[i] for r in results) for i in (0, 1))

    def curvature(self, kind="exact", solver="auto", **model_options):
        """As the in-memory loss's, without ``"subsampled"`` (a subsample of
        partitioned data is a partition of its own: pass it as ``X``)."""
        if kind == "subsampled":
            raise ValueError("`kind='subsampled'` is not available on Dask data; subsample the partitions instead.")
        model = GLMLoss.curvature(self, kind, solver, **model_options)
        if self._prefetch is not None:
            # a dense model: its matrix comes in the gradient's round (_evaluate), so points cached without it go
            self._cache = []
        return model

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
def _unique(labels):
    return np.unique(np.asarray(labels))


def _bincount(index, minlength):
    return np.bincount(index, minlength=minlength)


def _class_weighted(index, weights, per_class):
    w = per_class[index]
    return w if weights is None else np.asarray(weights, dtype=np.float64) * w


def fit(estimator, X, y, sample_weight=None):
    """``estimator.fit`` on Dask collections: the classes (and the class
    counts for ``class_weight="balanced"``) from one round over the labels,
    the labels encoded on the workers, then the estimator's own solver on
    a Dask loss.  The objective is the in-memory one (no hidden rescaling
    of ``X``)."""
    from sklearn.utils.multiclass import check_classification_targets

    estimator._check_params()
    data = partition(X, y, sample_weight)
    client = data.client
    classes = np.unique(np.concatenate(client.gather(data.map(_unique, data.y))))
    check_classification_targets(classes)
    K = check_classes(classes)
    data.y = data.map(_encode, data.y, classes=classes)
    if estimator.class_weight is not None:
        if isinstance(estimator.class_weight, str) and estimator.class_weight == "balanced":
            counts = functools.reduce(operator.add, client.gather(data.map(_bincount, data.y, minlength=K)))
            per_class = counts.sum() / (K * np.maximum(counts, 1).astype(np.float64))
        elif isinstance(estimator.class_weight, dict):
            per_class = np.array([float(estimator.class_weight.get(c, 1.0)) for c in classes])
        else:
            raise ValueError(f"`class_weight` must be None, 'balanced' or a dict; got {estimator.class_weight!r}.")
        weights = data.weights if data.weights is not None else [None] * len(data.y)
        data.weights = data.map(_class_weighted, data.y, weights, per_class=per_class)
    if K == 2 and not estimator._multinomial_always:
        loss = DaskLogisticLoss(data, None, fit_intercept=estimator.fit_intercept)
    else:
        loss = DaskSoftmaxLoss(data, None, n_classes=K, fit_intercept=estimator.fit_intercept)
    loss.alpha = 1.0 / (estimator.C * loss._total)  # scikit-learn's scaling, known after the weights are summed
    res = estimator._solve(loss)
    estimator.classes_ = classes
    estimator.n_features_in_ = loss.n_features
    estimator._set_coefficients(loss, res, data.dtype)
    estimator.n_iter_ = np.array([res.nit], dtype=np.int32)
    estimator.solver_ = getattr(res, "solver", estimator.solver)
    estimator.n_rounds_ = loss.n_rounds
    return estimator


def _scores(block, coef, intercept):
    if hasattr(block, "to_numpy"):
        block = block.to_numpy(dtype=np.float64)
    scores = np.asarray(block @ coef.T) + intercept
    return scores[:, 0] if scores.shape[1] == 1 else scores


def decision_function(estimator, X):
    """Lazy scores: a Dask array with ``X``'s row blocks."""
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

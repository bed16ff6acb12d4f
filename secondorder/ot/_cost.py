"""Ground costs: between point clouds, and between the cells of a grid."""

import math

import numpy as np

from .._array_api import from_host, immutable_on_host, to_numpy
from .._validation import check_finite, check_positive
from .._backend import get_namespace

__all__ = ["dist", "grid_cost", "GridCost"]


@immutable_on_host
def dist(x1, x2=None, metric="sqeuclidean", p=2, w=None, backend="auto", nx=None, use_tensor=False):
    r"""Cost matrix between two point clouds, as POT's ``ot.dist``.

    Parameters
    ----------
    x1 : array, shape (n, d)
    x2 : array, shape (m, d), optional
        Defaults to ``x1``.
    metric : str
        ``"sqeuclidean"`` (default), ``"euclidean"``, or any metric of
        :func:`scipy.spatial.distance.cdist` (``"cityblock"``,
        ``"minkowski"`` with ``p``, ...).
    p : float
        Exponent of the Minkowski metric.
    w : array, optional
        Weights of the coordinates, for the metrics of
        :func:`~scipy.spatial.distance.cdist` that take them, the Euclidean
        ones included (POT ignores ``w`` for those).
    backend, nx, use_tensor
        POT's backend arguments, accepted for compatibility: the result is
        always in the arrays' own library.

    Returns
    -------
    M : ndarray, shape (n, m)
    """
    xp = get_namespace(x1, x2)
    same = x2 is None or x2 is x1
    x1 = xp.asarray(x1)
    x2 = x1 if same else xp.asarray(x2)
    for x, name in ((x1, "x1"), (x2, "x2")):
        if getattr(x.dtype, "kind", "f") in "OUSV":
            raise TypeError(f"`{name}` must hold real coordinates; got dtype {x.dtype}.")
    if x1.ndim == 1:
        x1 = x1[:, None]
    if x2.ndim == 1:
        x2 = x2[:, None]
    if x1.ndim != 2 or x2.ndim != 2 or x1.shape[1] != x2.shape[1]:
        raise ValueError(
            f"`x1` and `x2` must be (n, d) and (m, d) arrays of points; got shapes {x1.shape} and {x2.shape}."
        )
    for x, name in ((x1, "x1"), (x2, "x2")):
        if getattr(x.dtype, "kind", "") == "c":
            raise TypeError(f"`{name}` must hold real coordinates; got complex values.")

        check_finite(x, name, xp=xp)
    if metric in ("sqeuclidean", "euclidean") and w is None:
        # ||x||^2 + ||y||^2 - 2 x.y with one GEMM; clipped at 0 against rounding.  Coordinates beyond 1e150
        # are scaled first, so that their squares do not overflow.
        scale = max(float(xp.max(xp.abs(x1))) if x1.shape[0] else 0.0, float(xp.max(xp.abs(x2))) if x2.shape[0] else 0.0)
        scale = scale if scale > 1e150 else 1.0
        y1, y2 = (x1 / scale, x2 / scale) if scale != 1.0 else (x1, x2)
        M = xp.sum(y1 * y1, axis=1)[:, None] + xp.sum(y2 * y2, axis=1)[None, :] - 2.0 * (y1 @ y2.T)
        M = xp.clip(M, min=0.0)
        if same:  # a point's distance to itself is 0, not the formula's rounding error
            if xp is np:
                np.fill_diagonal(M, 0.0)  # in place, no second n x n array
            else:
                M = xp.where(xp.eye(M.shape[0], dtype=xp.bool), 0.0, M)
        if metric == "euclidean":
            return xp.sqrt(M) * scale if scale != 1.0 else xp.sqrt(M)
        if scale != 1.0:
            if not math.isfinite(float(xp.max(M)) * scale * scale):
                raise ValueError("squared distances between these points overflow float64: scale the points down "
                                 "(or use metric='euclidean').")
            M = M * (scale * scale)
        return M
    from scipy.spatial.distance import cdist

    # the other metrics are SciPy's, on the host
    kwargs = {"p": p} if metric == "minkowski" else {}
    if w is not None:
        kwargs["w"] = to_numpy(xp.asarray(w))
    try:
        M = cdist(to_numpy(x1), to_numpy(x2), metric=metric, **kwargs)
    except ValueError as exc:
        if "metric" in str(exc).lower():
            raise ValueError(
                f"`metric` must be 'sqeuclidean', 'euclidean' or a metric of scipy.spatial.distance.cdist "
                f"('cityblock', 'minkowski', ...); got {metric!r}."
            ) from exc
        raise
    if not np.all(np.isfinite(M)):
        raise ValueError(
            f"`metric` {metric!r} is undefined between some of these points (it gave NaN or inf; e.g. 'cosine' "
            "at the zero vector): choose another metric or drop those points."
        )
    return M if xp is np else from_host(xp, M, x1)


def _grid_shape(shape):
    given = shape
    shape = (shape,) if np.isscalar(shape) else tuple(shape)
    if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in shape):
        raise TypeError(f"`shape` must be an int or a tuple of one or two ints; got {given!r}.")
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (1, 2) or min(shape) < 1:
        raise ValueError(f"`shape` must describe a 1-D or 2-D grid with positive sizes; got {shape}.")
    return shape


def _grid_axes(shape, spacing):
    if spacing is None:
        spacing = (1.0 / max(shape),) * len(shape)
    else:
        spacing = (spacing,) * len(shape) if np.isscalar(spacing) else tuple(spacing)
        if len(spacing) != len(shape):
            raise ValueError(f"`spacing` must have one entry per axis of the grid ({len(shape)}); got {len(spacing)}.")
        spacing = tuple(check_positive(h, "spacing") for h in spacing)
    return [np.arange(s) * h for s, h in zip(shape, spacing)]


def grid_cost(shape, metric="sqeuclidean", spacing=None):
    r"""Cost between the cells of a regular 1-D or 2-D grid.

    With ``a = img1.ravel() / img1.sum()`` and ``b`` alike,
    ``sinkhorn2(a, b, grid_cost(img1.shape), reg)`` is the entropic
    :math:`W_2^2` between the images (``metric="euclidean"``: :math:`W_1`).
    :class:`GridCost` is the same cost without the n x n matrix.

    Parameters
    ----------
    shape : int or tuple of one or two ints
        Grid shape (an image's ``shape``); cells are numbered in C order, as
        ``ravel`` does.
    metric : str
        As in :func:`dist`.
    spacing : float or tuple, optional
        Distance between neighbouring cells along each axis.  Default
        ``1 / max(shape)``: the grid fills the unit square, so costs are at
        most 1 (squared Euclidean: 2).

    Returns
    -------
    M : ndarray, shape (prod(shape), prod(shape))

    Notes
    -----
    The squared Euclidean, Euclidean and cityblock costs are sums of one
    term per axis; they are written in one pass from the per-axis tables,
    exactly symmetric with zeros on the diagonal.  Other metrics go through
    :func:`dist`.
    """
    shape = _grid_shape(shape)
    axes = _grid_axes(shape, spacing)
    if metric in _SEPARABLE:
        # The cost between cells (i1, i2) and (j1, j2) is a sum of one term per axis, f(i1 - j1) + f(i2 - j2):
        # written from the per-axis tables in one pass over the n x n output, with no n x n temporaries and
        # exact zeros and symmetry (dist's GEMM formula would round, and take several n x n passes).
        power = _SEPARABLE[metric]
        tables = [np.abs(np.subtract.outer(x, x)) ** power for x in axes]
        n = int(np.prod(shape))
        M = np.empty((n, n))
        if len(shape) == 1:
            M[...] = tables[0]
        else:
            view = M.reshape(shape[0], shape[1], shape[0], shape[1])
            np.add(tables[0][:, None, :, None], tables[1][None, :, None, :], out=view)
        if metric == "euclidean":
            np.sqrt(M, out=M)
        return M
    points = np.stack([c.ravel() for c in np.meshgrid(*axes, indexing="ij")], axis=1)
    return dist(points, points, metric=metric)


# Metrics whose grid cost is a sum over the axes of |difference| ** power (Euclidean: the root of the
# squared one).
_SEPARABLE = {"sqeuclidean": 2, "euclidean": 2, "cityblock": 1}


class GridCost:
    r"""The cost between the cells of a regular grid, kept as its per-axis
    tables: the solvers' passes cost :math:`O(n^{1.5})`, not :math:`O(n^2)`.

    On an :math:`h \times w` grid (cell :math:`i = i_1 w + i_2`, C order as
    ``ravel``), the squared Euclidean and cityblock costs are sums of one
    term per axis, :math:`C_{ij} = T_1[i_1, j_1] + T_2[i_2, j_2]`, so the
    Gibbs kernel is a product of two 1-D kernels, and a log-sum-exp over
    the :math:`n = hw` cells runs over :math:`j_2` for each :math:`j_1`
    first, then over :math:`j_1`: :math:`n (h + w)` terms instead of
    :math:`n^2`, and no n x n matrix in memory.  Pass it as ``M`` to
    :func:`~secondorder.ot.sinkhorn`, :func:`~secondorder.ot.sinkhorn2`
    (methods ``"sns"``, ``"sinkhorn_log"``, ``"sinkhorn_epsilon_scaling"``),
    :func:`~secondorder.ot.sinkhorn_newton_sparse`,
    :func:`~secondorder.ot.sinkhorn_log` or
    :func:`~secondorder.ot.sinkhorn_epsilon_scaling`; the other methods
    (scaling iterations, Greenkhorn) use :meth:`toarray`.  NumPy's
    ``np.asarray(cost)`` also gives the dense matrix, so any function that
    takes a cost matrix (``ot.emd``) takes it.

    Parameters
    ----------
    shape : int or tuple of one or two ints
        Grid shape (an image's ``shape``).
    metric : {"sqeuclidean", "cityblock"}
        The separable metrics (``"euclidean"`` is not a sum over the axes:
        use :func:`grid_cost` for its matrix).
    spacing : float or tuple, optional
        As in :func:`grid_cost`: by default ``1 / max(shape)``.
    dtype : {numpy.float64, numpy.float32}
        The plan's dtype (the solvers compute in float64).

    Attributes
    ----------
    shape : tuple
        ``(n, n)``, as a cost matrix's.
    grid : tuple
        The grid's shape.
    tables : tuple of ndarray
        :math:`T_1` (h x h) and :math:`T_2` (w x w); a 1-D grid has
        :math:`h = 1`.

    Examples
    --------
    >>> import numpy as np
    >>> from secondorder.ot import GridCost, grid_cost, sinkhorn2
    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.random(64), rng.random(64)
    >>> a, b = a / a.sum(), b / b.sum()
    >>> lazy = sinkhorn2(a, b, GridCost((8, 8)), 1e-2)
    >>> dense = sinkhorn2(a, b, grid_cost((8, 8)), 1e-2)
    >>> bool(abs(lazy - dense) < 1e-10)
    True
    """

    ndim = 2

    def __init__(self, shape, metric="sqeuclidean", spacing=None, dtype=np.float64):
        grid = _grid_shape(shape)
        if metric not in _SUM_OF_AXES:
            raise ValueError(
                f"`metric` must be one of {', '.join(map(repr, _SUM_OF_AXES))} (a sum of one term per axis); got "
                f"{metric!r}. Use grid_cost(shape, metric) for the dense matrix of another metric."
            )
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"`dtype` must be float32 or float64; got {dtype}.")
        axes = _grid_axes(grid, spacing)
        power = _SUM_OF_AXES[metric]
        tables = [np.abs(np.subtract.outer(x, x)) ** power for x in axes]
        if len(grid) == 1:
            tables = [np.zeros((1, 1))] + tables
        self.grid = grid
        self.metric = metric
        self.tables = tuple(tables)
        self.dtype = dtype
        n = int(np.prod(grid))
        self.shape = (n, n)

    def __repr__(self):
        return f"GridCost(shape={self.grid}, metric={self.metric!r}, dtype={self.dtype.name})"

    @property
    def max(self):
        """The largest cost (between opposite corners)."""
        return float(sum(t.max() for t in self.tables))

    def toarray(self):
        """The dense n x n cost matrix, in :attr:`dtype`."""
        T1, T2 = self.tables
        h, w = T1.shape[0], T2.shape[0]
        M = np.empty(self.shape, dtype=self.dtype)
        np.add(T1[:, None, :, None], T2[None, :, None, :], out=M.reshape(h, w, h, w))
        return M

    def __array__(self, dtype=None, copy=None):
        M = self.toarray()
        return M if dtype is None else M.astype(dtype, copy=False)


# The metrics GridCost takes: sums over the axes of |difference| ** power.
_SUM_OF_AXES = {"sqeuclidean": 2, "cityblock": 1}

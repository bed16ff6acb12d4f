"""Ground costs: between point clouds, and between the cells of a grid."""

import math

import numpy as np

from .._array_api import from_host, immutable_on_host, to_numpy
from .._validation import check_finite, check_positive
from .._backend import get_namespace

__all__ = ["dist", "grid_cost"]


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


def grid_cost(shape, metric="sqeuclidean", spacing=None):
    r"""Cost between the cells of a regular 1-D or 2-D grid.

    With ``a = img1.ravel() / img1.sum()`` and ``b`` alike,
    ``sinkhorn2(a, b, grid_cost(img1.shape), reg)`` is the entropic
    :math:`W_2^2` between the images (``metric="euclidean"``: :math:`W_1`).

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
    given = shape
    shape = (shape,) if np.isscalar(shape) else tuple(shape)
    if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in shape):
        raise TypeError(f"`shape` must be an int or a tuple of one or two ints; got {given!r}.")
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (1, 2) or min(shape) < 1:
        raise ValueError(f"`shape` must describe a 1-D or 2-D grid with positive sizes; got {shape}.")
    if spacing is None:
        spacing = (1.0 / max(shape),) * len(shape)
    else:
        spacing = (spacing,) * len(shape) if np.isscalar(spacing) else tuple(spacing)
        if len(spacing) != len(shape):
            raise ValueError(f"`spacing` must have one entry per axis of the grid ({len(shape)}); got {len(spacing)}.")
        spacing = tuple(check_positive(h, "spacing") for h in spacing)
    axes = [np.arange(s) * h for s, h in zip(shape, spacing)]
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

"""``minimize``: the front door, shaped like :func:`scipy.optimize.minimize`."""

import warnings

from .._backend import get_namespace
from .._validation import as_float_vector
from ..curvature._callable import as_curvature
from ..curvature import DiagonalFisher, HutchinsonDiagonal, MFAC, OperatorHessian, is_curvature
from ._gns import _minimize_gns
from ._objective import Callback, Objective
from ._trust_region import _minimize_trust_region

__all__ = ["minimize", "MINIMIZE_METHODS"]

# Method name -> solver.  A solver takes (objective, x0, curvature model,
# callback, **options) and returns an OptimizeResult.
_METHODS = {
    "gns": _minimize_gns,
    "trust-region": _minimize_trust_region,
}
CURVATURES = ("exact", "diag-fisher", "hutchinson", "mfac")
MINIMIZE_METHODS = sorted(_METHODS)


def minimize(fun, x0, args=(), method="gns", jac=None, hess=None, hessp=None, callback=None, tol=None, options=None):
    r"""Minimise a scalar function of one or more variables.

    The signature and the result are those of :func:`scipy.optimize.minimize`,
    so code written for scipy's Newton-type methods runs unchanged.

    Parameters
    ----------
    fun : callable
        ``fun(x, *args) -> float``; with ``jac=True``, ``fun(x, *args) ->
        (float, ndarray)``.  ``x`` is a 1-D array (NumPy, or CuPy when ``x0``
        is one).
    x0 : array_like, shape (n,)
        Initial guess; must be finite.  Its dtype sets the working precision
        (float32 stays float32; anything else becomes float64).
    args : tuple, optional
        Extra arguments passed to ``fun``, ``jac``, ``hess`` and ``hessp``.
    method : str or callable, optional
        ``"gns"`` (default): regularised Newton with gradient-normalised
        smoothness; ``"trust-region"``: a trust-region method over the
        curvature model.  A callable is called as ``method(fun, x0, args=args,
        jac=jac, hess=hess, hessp=hessp, callback=callback, **options)``.
    jac : callable or True
        Gradient ``jac(x, *args) -> ndarray (n,)``, or ``True`` when ``fun``
        returns the gradient too.  Required.
    hess : callable, array, LinearOperator or curvature model, optional
        The Hessian or an approximation of it: ``hess(x, *args)`` returning a
        dense ``(n, n)`` array, a :class:`scipy.sparse.linalg.LinearOperator`
        (or sparse matrix), or a curvature model; a constant matrix; or a
        curvature model from :mod:`secondorder.curvature` (Gauss-Newton,
        Fisher, ... ) updated at each accepted point.
    hessp : callable, optional
        ``hessp(x, p, *args) -> H(x) p``.  Ignored (with a warning) when
        ``hess`` is given.
    callback : callable, optional
        Called after each iteration, as scipy >= 1.11 does: a callable whose
        only parameter is named ``intermediate_result`` receives an
        :class:`~scipy.optimize.OptimizeResult` with ``x``, ``fun``, ``jac``,
        ``nit`` and the method's own fields; any other callable receives a
        copy of ``x``.  Raising :class:`StopIteration` stops the solver with
        ``status = 99``.
    tol : float, optional
        Tolerance for termination; sets the method's ``gtol`` unless
        ``options`` gives it.
    options : dict, optional
        Method options (see the method's documentation).  Unknown options
        raise an :class:`~scipy.optimize.OptimizeWarning`.  Every method also
        takes ``curvature``: ``"exact"`` (default; ``hess``/``hessp`` as
        given), ``"diag-fisher"`` (:class:`~secondorder.curvature.DiagonalFisher`),
        ``"hutchinson"`` (:class:`~secondorder.curvature.HutchinsonDiagonal`
        over ``hessp``), ``"mfac"`` (:class:`~secondorder.curvature.MFAC` over
        the gradients of the accepted points) or a curvature model; and
        ``curvature_options``, the keyword arguments of the named model (with
        ``"exact"`` and ``hessp``: ``preconditioner``, a model or one of these
        names, for preconditioned CG and Steihaug-CG).

    Returns
    -------
    res : scipy.optimize.OptimizeResult
        ``x, fun, jac, nit, nfev, njev, nhev, status, success, message`` and
        the method's own fields (``nfact``, ``ncg``, ``gamma`` for "gns").
        ``status``: 0 success, 1 ``maxiter`` reached, 2 precision loss (no
        acceptable step), 3 the Hessian was NaN or inf, 99 stopped by the
        callback.

    Raises
    ------
    ValueError
        Unknown method; ``x0`` not finite; no ``jac``; no curvature for a
        method that needs it; ``fun`` or ``jac`` not finite at ``x0``;
        ``jac``/``hess``/``hessp`` returning arrays of the wrong shape.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.optimize import rosen, rosen_der, rosen_hess
    >>> import secondorder as so
    >>> res = so.minimize(rosen, [-1.2, 1.0], jac=rosen_der, hess=rosen_hess, tol=1e-10)
    >>> res.success, np.allclose(res.x, 1.0)
    (True, True)
    """
    if not isinstance(args, tuple):
        args = (args,)
    options = dict(options or {})
    if callable(method):
        return method(fun, x0, args=args, jac=jac, hess=hess, hessp=hessp, callback=callback, **options)
    if not isinstance(method, str):
        raise TypeError(f"`method` must be a string or a callable; got {type(method).__name__}.")
    key = method.lower()
    if key not in _METHODS:
        raise ValueError(f"Unknown method {method!r}; choose one of {', '.join(MINIMIZE_METHODS)}.")
    if tol is not None:
        options.setdefault("gtol", tol)
    if hess is not None and hessp is not None:
        warnings.warn("`hessp` is ignored because `hess` is given.", RuntimeWarning, stacklevel=2)
        hessp = None
    xp = get_namespace(x0)
    x0 = as_float_vector(x0, "x0", xp=xp)
    obj = Objective(fun, jac, args, x0, xp)
    model = _build_curvature(options.pop("curvature", None), options.pop("curvature_options", None), hess, hessp, args, x0)
    return _METHODS[key](obj, x0, model, Callback(callback), **options)


def _hessp_from(hess, hessp):
    if hessp is not None:
        return hessp
    if callable(hess) and not is_curvature(hess):
        return lambda x, v, *a: hess(x, *a) @ v
    raise ValueError("curvature='hutchinson' needs `hessp` (or a `hess` callable) to probe the Hessian.")


def _build_curvature(curvature, curvature_options, hess, hessp, args, x0):
    """The model a method works with, from ``options["curvature"]`` and
    ``hess``/``hessp``."""
    opts = dict(curvature_options or {})
    if curvature is not None and is_curvature(curvature):
        if opts:
            raise ValueError("`curvature_options` apply to a curvature named by a string, not to a model object.")
        return curvature
    name = "exact" if curvature is None else curvature
    if not isinstance(name, str) or name.lower() not in CURVATURES:
        raise ValueError(
            f"`curvature` must be one of {', '.join(CURVATURES)} or a curvature model; got {curvature!r}."
        )
    name = name.lower()
    precond = opts.pop("preconditioner", None)
    if isinstance(precond, str):
        precond = _build_curvature(precond, None, hess, hessp, args, x0)
    if name == "exact":
        if precond is not None:
            if hessp is None:
                raise ValueError("a `preconditioner` applies to the operator model: pass `hessp`.")
            return OperatorHessian(hessp, args, preconditioner=precond, **opts)
        if opts:
            raise ValueError(f"curvature 'exact' takes no curvature_options except 'preconditioner'; got {sorted(opts)}.")
        return as_curvature(hess, hessp, args)
    if name == "diag-fisher":
        return DiagonalFisher(**opts)
    if name == "hutchinson":
        return HutchinsonDiagonal(_hessp_from(hess, hessp), args, **opts)
    opts.setdefault("window", min(x0.shape[0], 64))
    return MFAC(**opts)

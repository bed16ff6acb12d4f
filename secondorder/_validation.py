"""Shared input checks, with one wording everywhere.

Every message names the argument, says what was wrong and what to do.
"""

import math
import numbers

import numpy as np

from ._array_api import all_true as _all_true
from ._array_api import copy as _copy
from ._array_api import is_real_floating as _is_real_floating
from ._backend import get_namespace

__all__ = [
    "as_float_vector",
    "check_finite",
    "check_positive",
    "check_nonnegative",
    "check_int",
    "float_dtype",
    "check_output",
    "check_real",
]


def _numpy_like(xp):
    return hasattr(xp, "issubdtype")  # NumPy and CuPy; other namespaces keep to the standard


def float_dtype(xp, a):
    """The floating dtype a computation on ``a`` runs in: float32 stays
    float32, every other real dtype (ints, bools, float16) becomes float64."""
    dtype = getattr(a, "dtype", None)
    if dtype is not None and dtype == xp.float32:
        return xp.float32
    if dtype is not None:
        complex_ = (
            xp.issubdtype(dtype, xp.complexfloating) if _numpy_like(xp) else xp.isdtype(dtype, "complex floating")
        )
        if complex_:
            raise TypeError("complex input is not supported; pass a real array.")
    return xp.float64


def as_float_vector(a, name, xp=None, dtype=None, copy=True):
    """``a`` as a finite 1-D floating array (a copy, so the caller's is never
    modified).  Scalars and n-d arrays are flattened, as scipy does for x0."""
    xp = xp or get_namespace(a)
    try:
        arr = xp.asarray(a)
    except Exception as exc:
        raise TypeError(f"`{name}` must be an array of real numbers; got {type(a).__name__}.") from exc
    if _numpy_like(xp):
        numeric = arr.dtype != object and (xp.issubdtype(arr.dtype, xp.number) or arr.dtype == xp.bool_)
    else:
        numeric = xp.isdtype(arr.dtype, ("bool", "numeric"))
    if not numeric:
        raise TypeError(f"`{name}` must be an array of real numbers; got dtype {arr.dtype}.")
    dtype = dtype or float_dtype(xp, arr)
    if _numpy_like(xp):
        arr = xp.array(arr, dtype=dtype, copy=True) if copy else xp.asarray(arr, dtype=dtype)
        arr = arr.reshape(-1)
    else:
        arr = xp.reshape(xp.astype(arr, dtype, copy=copy), (-1,))
    check_finite(arr, name, xp=xp)
    return arr


def check_finite(a, name, xp=None):
    """Raise ``ValueError`` when ``a`` holds NaN or inf."""
    xp = xp or get_namespace(a)
    if not _all_true(xp, xp.isfinite(a)):
        n_nan = int(xp.sum(xp.isnan(a)))
        n_inf = int(xp.sum(xp.isinf(a)))
        raise ValueError(
            f"`{name}` must be finite but holds {n_nan} NaN and {n_inf} inf values; "
            "clean or impute them before calling."
        )
    return a


def _not_text(value, name, what):
    # float("1e-3") and float(True) succeed, but neither is a number a user meant to pass
    if isinstance(value, (str, bytes, bool)):
        raise TypeError(f"`{name}` must be {what}; got {value!r}.")


def _as_float(value, name, what):
    """``value`` as a Python float; text, booleans and what ``float``
    refuses are a ``TypeError`` saying ``name`` must be ``what``."""
    _not_text(value, name, what)
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"`{name}` must be {what}; got {value!r}.") from exc


def check_positive(value, name, allow_inf=False):
    """``value`` as a float that must be > 0."""
    v = _as_float(value, name, "a positive number")
    if not (v > 0) or (np.isinf(v) and not allow_inf):
        raise ValueError(f"`{name}` must be a positive finite number; got {value!r}.")
    return v


def check_real(value, name):
    """``value`` as a finite float of any sign (a shift, say)."""
    v = _as_float(value, name, "a finite number")
    if not math.isfinite(v):
        raise ValueError(f"`{name}` must be a finite number; got {value!r}.")
    return v


def check_nonnegative(value, name):
    """``value`` as a finite float that must be >= 0."""
    v = _as_float(value, name, "a non-negative number")
    if not (v >= 0) or np.isinf(v):
        raise ValueError(f"`{name}` must be a non-negative finite number; got {value!r}.")
    return v


def check_int(value, name, minimum=0):
    """``value`` as an int that must be >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer >= {minimum}; got {value!r}.")
    if value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def check_vector(v, size, name, xp, dtype=None):
    """A vector argument of a model's products: shape ``(size,)`` (any
    length when ``size`` is None), finite, real; integers and booleans become
    ``dtype`` (float64 by default) instead of truncating the result."""
    kind = getattr(getattr(v, "dtype", None), "kind", None)
    if kind == "c":
        raise TypeError(f"`{name}` must be real; got complex values.")
    v = xp.asarray(v)
    if not _is_real_floating(xp, v.dtype):
        try:
            v = xp.asarray(v, dtype=dtype or xp.float64)
        except Exception as exc:
            raise TypeError(f"`{name}` must be a vector of real numbers; got dtype {v.dtype}.") from exc
    if v.ndim != 1 or (size is not None and v.shape[0] != size):
        expected = f"({size},)" if size is not None else "a 1-D vector"
        raise ValueError(f"`{name}` must have shape {expected}, one entry per variable; got shape {tuple(v.shape)}.")
    check_finite(v, name, xp=xp)
    return v


def check_output(value, shape, name, xp, dtype):
    """The array a user callable returned, as ``dtype``, with shape ``shape``.

    ``name`` names the callable (``"jac"``, ``"hessp"``, ...) so the message
    points at the culprit.
    """
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    if kind == "c" or isinstance(value, (complex, str, bytes)):
        raise TypeError(f"`{name}` must return real numbers; got {getattr(value, 'dtype', type(value).__name__)}.")
    try:
        arr = xp.asarray(value, dtype=dtype)
    except Exception as exc:
        raise TypeError(
            f"`{name}` must return an array of shape {shape}; got {type(value).__name__}."
        ) from exc
    if tuple(arr.shape) != tuple(shape):
        what = "one entry per variable of x0" if len(shape) == 1 else "one row and column per variable of x0"
        raise ValueError(
            f"`{name}` returned an array of shape {tuple(arr.shape)}, expected {tuple(shape)} ({what})."
        )
    if arr is value:
        # the solver keeps what it is given: a callable that reuses one buffer must not change it later
        arr = _copy(xp, arr)
    return arr

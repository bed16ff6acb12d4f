"""The user's objective: counted, checked, never handed our own arrays."""

import inspect

from scipy.optimize import OptimizeResult

from .._array_api import copy
from .._validation import check_output

__all__ = ["Objective", "Callback"]


class Objective:
    """``fun`` and ``jac`` as :func:`scipy.optimize.minimize` takes them.

    ``jac=True`` means ``fun`` returns ``(f, g)``; the gradient of the last
    point is then kept, so asking for it costs nothing.  Each call receives a
    copy of ``x`` (a user function that writes into its argument cannot
    corrupt the iterate).  Values are returned as Python floats; the gradient
    is checked for shape and cast to the working dtype.  Non-finite values
    are returned as they are: the solver decides what they mean.
    """

    def __init__(self, fun, jac, args, x0, xp):
        if not callable(fun):
            raise TypeError(f"`fun` must be callable as fun(x, *args); got {type(fun).__name__}.")
        if jac is None or jac is False:
            raise ValueError(
                "`jac` is required: pass a callable jac(x, *args) returning the gradient, "
                "or jac=True when fun returns (value, gradient)."
            )
        if isinstance(jac, str):
            raise ValueError(
                f"`jac={jac!r}` (finite differences) is not supported: second-order methods "
                "need an accurate gradient; pass a callable or jac=True."
            )
        if jac is not True and not callable(jac):
            raise TypeError(f"`jac` must be callable or True; got {type(jac).__name__}.")
        self._fun = fun
        self._jac = jac
        self.args = tuple(args)
        self.xp = xp
        self.dtype = x0.dtype
        self.shape = x0.shape
        self.nfev = 0
        self.njev = 0
        self._memo = None  # (x, g) from a fun returning both

    def _value(self, f):
        kind = getattr(getattr(f, "dtype", None), "kind", None)
        if isinstance(f, (str, bytes, complex)) or kind == "c":
            raise TypeError(f"`fun` must return a real number; got {f!r:.60}.")
        try:
            f = float(f)
        except (TypeError, ValueError) as exc:
            size = getattr(f, "size", None)
            if size == 1:
                return float(self.xp.reshape(self.xp.asarray(f), ()))
            raise ValueError(
                f"`fun` must return a scalar; got {type(f).__name__}"
                + (f" of shape {getattr(f, 'shape', None)}" if hasattr(f, "shape") else "")
                + ". With jac=True it must return (value, gradient)."
            ) from exc
        return f

    def _unpack(self, out):
        if not isinstance(out, tuple) or len(out) != 2:
            raise ValueError("with jac=True, `fun` must return a tuple (value, gradient).")
        return out

    def fun(self, x):
        """f(x)."""
        if self._jac is True:
            return self.fun_and_grad(x)[0]
        self.nfev += 1
        return self._value(self._fun(copy(self.xp, x), *self.args))

    def grad(self, x):
        """The gradient at x, checked for shape."""
        if self._jac is True:
            if self._memo is not None and self._memo[0] is x:
                return self._memo[1]
            return self.fun_and_grad(x)[1]
        self.njev += 1
        return check_output(self._jac(copy(self.xp, x), *self.args), self.shape, "jac", self.xp, self.dtype)

    def fun_and_grad(self, x):
        """(f(x), gradient at x)."""
        if self._jac is True:
            self.nfev += 1
            self.njev += 1
            f, g = self._unpack(self._fun(copy(self.xp, x), *self.args))
            g = check_output(g, self.shape, "fun (gradient part)", self.xp, self.dtype)
            self._memo = (x, g)
            return self._value(f), g
        return self.fun(x), self.grad(x)

    @property
    def cheap_value(self):
        """Whether f alone is cheaper than f and g together (so a trial point
        that does not decrease f is rejected before its gradient is taken)."""
        return self._jac is not True


class Callback:
    """A user callback, called as scipy >= 1.11 calls it.

    A callback whose only parameter is named ``intermediate_result`` gets an
    :class:`~scipy.optimize.OptimizeResult`; any other gets a copy of ``x``.
    Raising :class:`StopIteration` asks the solver to stop (status 99).
    """

    def __init__(self, callback):
        if callback is not None and not callable(callback):
            raise TypeError(f"`callback` must be callable; got {type(callback).__name__}.")
        self._callback = callback
        self._new_style = False
        if callback is not None:
            try:
                params = set(inspect.signature(callback).parameters)
            except (TypeError, ValueError):
                params = set()
            self._new_style = params == {"intermediate_result"}

    def __call__(self, **fields):
        """Call the user callback; return True when it asked to stop."""
        if self._callback is None:
            return False
        try:
            if self._new_style:
                self._callback(intermediate_result=OptimizeResult(**fields))
            else:
                self._callback(fields["x"])
        except StopIteration:
            return True
        return False

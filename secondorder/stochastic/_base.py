"""The functional core shared by every stochastic optimiser.

A method is an object holding its hyperparameters, with two pure functions
in the style of optax:

``init(params) -> state``
    the state (moments, counters) for a list of parameter arrays;
``update(grads, state, params, **oracles) -> (updates, state)``
    the step to add to each parameter, and the new state.

``needs(state)`` says which oracles beyond the minibatch gradient the next
call to ``update`` requires, so that a driver computes exactly those and
counts them:

``"loss"``
    the minibatch loss at ``params`` (SOAA's radius);
``"hvp"``
    Hessian-vector products ``hvp[i] = (H z)_i`` with the Rademacher probes
    ``probes`` (AdaHessian, Sophia-H); the driver draws the probes;
``"sampled_grad"``
    the gradient of the loss at labels sampled from the model's own
    predictive distribution (Sophia-G's Gauss-Newton-Bartlett estimator).

Everything is written against the Python array API standard: the namespace
comes from :func:`array_api_compat.array_namespace`, so the same code runs on
NumPy, CuPy, PyTorch, JAX and array-api-strict arrays, and returns arrays of
the namespace it was given.  No array is modified in place (JAX arrays
cannot be), and the state holds Python scalars and arrays only.
"""

import math
import numbers

import numpy as np
from array_api_compat import array_namespace

from .._validation import check_nonnegative, check_positive

__all__ = ["StochasticMethod", "ORACLES", "apply_updates", "all_finite", "NonFiniteStepError"]

ORACLES = ("loss", "hvp", "sampled_grad")


class NonFiniteStepError(FloatingPointError):
    """A gradient, an oracle or the step itself holds NaN or inf."""


def namespace(*arrays):
    """The array-API namespace of ``arrays`` (one library, or a clear error).

    Unlike :func:`secondorder._backend.get_namespace`, which hands NumPy and
    CuPy arrays their own modules for the numba and CUDA kernels, this is
    always the standard's namespace (``array_api_compat.numpy`` for NumPy):
    the methods use only the standard's functions.
    """
    try:
        return array_namespace(*arrays)
    except TypeError as exc:
        raise TypeError(
            f"the parameters, gradients and oracles must all be arrays of one array library: {exc}"
        ) from exc


def all_finite(xp, arrays):
    """Whether every array in ``arrays`` is free of NaN and inf.

    One reduction per array and a single test: a NaN or inf anywhere makes
    the sum of the sums non-finite.  Only when that sum is not finite (or
    finite values overflowed it) are the arrays checked element by element.
    """
    arrays = [a for a in arrays if a is not None]
    if not arrays:
        return True
    total = xp.sum(arrays[0])
    for a in arrays[1:]:
        total = total + xp.sum(a)
    if bool(xp.isfinite(total)):
        return True
    return all(bool(xp.all(xp.isfinite(a))) for a in arrays)


def apply_updates(params, updates):
    """``[p + u for p, u in zip(params, updates)]``, new arrays."""
    return [p + u for p, u in zip(params, updates)]


def _as_list(arrays, name):
    if isinstance(arrays, (list, tuple)):
        return list(arrays)
    raise TypeError(f"`{name}` must be a list of arrays (one per parameter); got {type(arrays).__name__}.")


def check_unit_interval(value, name):
    """``value`` as a float in [0, 1)."""
    v = _real(value, name)
    if not 0.0 <= v < 1.0:
        raise ValueError(f"`{name}` must be in [0, 1); got {value!r}.")
    return v


def check_betas(value, name="betas"):
    """A pair of floats in [0, 1)."""
    try:
        b1, b2 = value
    except (TypeError, ValueError) as exc:
        raise TypeError(f"`{name}` must be a pair (beta1, beta2) of numbers in [0, 1); got {value!r}.") from exc
    return (check_unit_interval(b1, f"{name}[0]"), check_unit_interval(b2, f"{name}[1]"))


def check_choice(value, name, choices):
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {', '.join(map(repr, choices))}; got {value!r}.")
    return value


def _real(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        try:
            # 0-d arrays and tensors (a learning-rate tensor) are numbers too.
            value = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"`{name}` must be a real number; got {value!r}.") from None
    v = float(value)
    if math.isnan(v):
        raise ValueError(f"`{name}` must be a number, not NaN.")
    return v


# The hyperparameters most methods share, with one check (and message) each.
_COMMON_CHECKS = {
    "lr": check_nonnegative,
    "betas": check_betas,
    "eps": check_positive,
    "weight_decay": check_nonnegative,
    "momentum": check_unit_interval,
}


class StochasticMethod:
    """Base of the stochastic optimisers.

    Subclasses set ``defaults`` (every hyperparameter and its default: the
    official code's; those named in ``_COMMON_CHECKS`` are validated here),
    ``per_param`` (the names of the state entries that
    hold one array per parameter) and implement ``_check`` (validate the
    hyperparameters), ``_init(xp, params)`` and
    ``_update(xp, t, grads, state, params, oracles)`` with ``t`` the 1-based
    number of this step; ``needs(state)`` where a step needs more than the
    gradient.

    Parameters
    ----------
    **hyper
        Hyperparameters; unknown names are a ``TypeError`` listing the known
        ones.
    """

    defaults = {}
    per_param = ()

    def __init__(self, **hyper):
        unknown = sorted(set(hyper) - set(self.defaults))
        if unknown:
            raise TypeError(
                f"{type(self).__name__}: unknown option(s) {', '.join(unknown)}; "
                f"the options are {', '.join(self.defaults)}."
            )
        values = dict(self.defaults)
        values.update(hyper)
        for key, check in _COMMON_CHECKS.items():
            if key in values:
                values[key] = check(values[key], key)
        self.hyper = self._check(values)
        for key, value in self.hyper.items():
            setattr(self, key, value)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyper.items())
        return f"{type(self).__name__}({args})"

    def _check(self, hyper):
        """Validate the method's own hyperparameters (the common ones,
        ``_COMMON_CHECKS``, are checked already)."""
        return hyper

    def needs(self, state):
        """The oracles (a subset of ``ORACLES``) the next ``update`` needs."""
        return frozenset()

    #: Whether the update is ``step - lr * weight_decay * params`` with a
    #: ``step`` that does not read the parameters (decoupled weight decay):
    #: ``update(..., decay=False)`` then needs no ``params``, and the caller
    #: scales the parameters by :meth:`decay_factor` itself.
    decoupled_decay = False

    def decay_factor(self):
        """:math:`1 - \\eta\\lambda`, the factor of decoupled weight decay."""
        return 1.0 - self.lr * self.weight_decay

    #: Whether the update treats every entry alike, whatever tensor it is in,
    #: so that running it on the concatenation of the tensors gives the same
    #: numbers (front ends then make one call per group).
    elementwise = False

    def elementwise_for(self, params):
        """``elementwise`` for this configuration and these parameters (a
        method may depend on its options and on the tensors' shapes)."""
        return self.elementwise

    def init(self, params):
        """The initial state for ``params``, a list of arrays."""
        params = _as_list(params, "params")
        if not params:
            raise ValueError("`params` is empty: pass at least one parameter array.")
        xp = namespace(*params)
        for i, p in enumerate(params):
            if not xp.isdtype(p.dtype, "real floating"):
                raise TypeError(f"`params[{i}]` must be a real floating array; got dtype {p.dtype}.")
        state = self._init(xp, params)
        state["step"] = 0
        return state

    def update(self, grads, state, params=None, *, loss=None, hvp=None, probes=None, sampled_grad=None, decay=True):
        """One step: ``(updates, new_state)``; ``params + updates`` are the
        new parameters.

        Parameters
        ----------
        grads : list of arrays
            The minibatch gradient, one array per parameter (same shapes).
        state : dict
            From :meth:`init` or the previous ``update``; not modified.
        params : list of arrays, optional
            The current parameters; not modified.  Needed unless
            ``decay=False`` for a method with decoupled weight decay (as in
            optax, where ``params`` is optional for the same reason).
        loss : float, optional
            The minibatch loss at ``params``, where ``needs`` asks for it.
        hvp, probes : lists of arrays, optional
            Hessian-vector products with the Rademacher ``probes``, where
            ``needs`` asks for ``"hvp"``.
        sampled_grad : list of arrays, optional
            The gradient at labels sampled from the model, where ``needs``
            asks for it.
        decay : bool, default True
            ``False``: leave the decoupled weight decay out of the updates
            (methods with ``decoupled_decay`` only); the caller then
            multiplies the parameters by :meth:`decay_factor` before adding
            them, in place, without the step reading the parameters.
        """
        grads = _as_list(grads, "grads")
        if not decay and not self.decoupled_decay:
            raise ValueError(f"{type(self).__name__} has no decoupled weight decay to leave out: pass decay=True.")
        if params is None:
            if decay or not self.decoupled_decay:
                raise ValueError(f"{type(self).__name__}.update needs `params` (unless decay=False where the method "
                                 "has decoupled weight decay).")
            params = grads  # only for their shapes: the step of such a method does not read the parameters
        else:
            params = _as_list(params, "params")
            _check_like(grads, params, "grads")
        needs = self.needs(state)
        oracles = {"loss": loss, "hvp": hvp, "probes": probes, "sampled_grad": sampled_grad}
        for need in needs:
            if oracles[need] is None:
                raise ValueError(
                    f"{type(self).__name__}: step {state['step'] + 1} needs `{need}` "
                    f"(needs(state) = {sorted(needs)}); pass it to update()."
                )
        if "hvp" in needs:
            oracles["hvp"] = _as_list(hvp, "hvp")
            oracles["probes"] = _as_list(probes, "probes") if probes is not None else None
            _check_like(oracles["hvp"], params, "hvp")
            if oracles["probes"] is None:
                raise ValueError(f"{type(self).__name__}: `hvp` was given without the `probes` it was computed with.")
            _check_like(oracles["probes"], params, "probes")
        if "sampled_grad" in needs:
            oracles["sampled_grad"] = _as_list(sampled_grad, "sampled_grad")
            _check_like(oracles["sampled_grad"], params, "sampled_grad")
        if "loss" in needs:
            oracles["loss"] = _real(loss, "loss")
        xp = namespace(*params, *grads)
        t = state["step"] + 1
        # A NaN or inf input gives a non-finite step, which the drivers skip (or raise on); NumPy's
        # warnings on the way would only repeat that.
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            updates, new_state = self._update(xp, t, grads, dict(state), params, oracles)
            if self.decoupled_decay and decay and self.weight_decay:
                rate = self.lr * self.weight_decay
                updates = [u - rate * p for u, p in zip(updates, params)]
        new_state["step"] = t
        return updates, new_state


def _check_like(arrays, params, name):
    if len(arrays) != len(params):
        raise ValueError(f"`{name}` has {len(arrays)} arrays but there are {len(params)} parameters; pass one per parameter.")
    for i, (a, p) in enumerate(zip(arrays, params)):
        if tuple(a.shape) != tuple(p.shape):
            raise ValueError(
                f"`{name}[{i}]` has shape {tuple(a.shape)} but its parameter has shape {tuple(p.shape)}."
            )


def adam_moments(m, v, g, d2, beta1, beta2):
    """Adam's moment EMAs: ``m <- b1 m + (1-b1) g``, ``v <- b2 v + (1-b2) d2``
    (``d2`` is ``g*g`` for Adam, the squared Hessian diagonal for AdaHessian)."""
    return beta1 * m + (1.0 - beta1) * g, beta2 * v + (1.0 - beta2) * d2


def as_matrix(xp, a):
    """A parameter as the matrix that Muon-type methods orthogonalise:
    2-D as it is, higher-dimensional (convolution kernels) as
    ``(shape[0], -1)``."""
    return a if a.ndim == 2 else xp.reshape(a, (a.shape[0], -1))

"""``minimize`` over minibatches: the stochastic methods for callables."""

import math
import warnings

import numpy as np
from array_api_compat import array_namespace, device, is_array_api_obj
from scipy.optimize import OptimizeResult

from .._validation import check_int, check_output
from ..curvature._hutchinson import rademacher
from ..optimize._objective import Callback
from ._adahessian import AdaHessian
from ._adamw import AdamW
from ._base import NonFiniteStepError, StochasticMethod, all_finite
from ._mfac import MFAC
from ._muon import Muon
from ._namo import NAMO, NAMOD
from ._soaa import SOAA
from ._sophia import SophiaG, SophiaH

__all__ = ["minimize", "get_method", "METHODS"]

METHODS = {
    "adamw": AdamW,
    "adahessian": AdaHessian,
    "sophia-g": SophiaG,
    "sophia-h": SophiaH,
    "soaa": SOAA,
    "muon": Muon,
    "namo": NAMO,
    "namo-d": NAMOD,
    "mfac": MFAC,
}
_ALIASES = {"sophiag": "sophia-g", "sophiah": "sophia-h", "namod": "namo-d", "m-fac": "mfac"}
_DRIVER_OPTIONS = ("shapes", "on_nonfinite", "schedule")


def get_method(method, options=None):
    """A method object from its name (``METHODS``, case-insensitive) and its
    hyperparameters, or ``method`` itself when it is one already."""
    options = dict(options or {})
    if isinstance(method, StochasticMethod):
        if options:
            raise TypeError("pass the hyperparameters to the method object, not in `options`, when `method` is one.")
        return method
    if not isinstance(method, str):
        raise TypeError(f"`method` must be a name ({', '.join(METHODS)}) or a StochasticMethod; got {method!r}.")
    key = method.lower()
    key = _ALIASES.get(key, key)
    if key not in METHODS:
        raise ValueError(f"`method` must be one of {', '.join(METHODS)}; got {method!r}.")
    return METHODS[key](**options)


def minimize(
    fun,
    x0,
    data,
    method="adamw",
    jac=True,
    hessp=None,
    sampled_jac=None,
    batch_size=32,
    epochs=1,
    maxiter=None,
    seed=None,
    options=None,
    callback=None,
):
    r"""Minimise an expected loss by a stochastic method over minibatches.

    The loss is :math:`f(x) = \mathbb E_{\text{batch}} f(x, \text{batch})`,
    seen through minibatches of ``data`` in a new random order each epoch.
    Every step computes the minibatch gradient and only the oracles the
    method asks for at that step (``StochasticMethod.needs``).

    Parameters
    ----------
    fun : callable
        ``fun(x, batch)``: the minibatch loss, or ``(loss, gradient)`` with
        ``jac=True``.  ``x`` is a 1-D array of ``x0``'s namespace; ``batch``
        a tuple of slices of the arrays in ``data`` (a single array where
        ``data`` is one).
    x0 : array
        Initial parameters, of any array-API library (NumPy, CuPy,
        PyTorch, JAX, array-api-strict); the result has its namespace.
        Flattened for ``fun``; its shape (or ``options["shapes"]``) tells the
        methods that treat matrices apart (Muon, NAMO) where they are.
    data : array, tuple of arrays or iterable
        Arrays are cut along axis 0 into shuffled minibatches of
        ``batch_size`` (the last may be shorter); any other iterable yields
        the batches itself (each epoch iterates it again).
    method : str or StochasticMethod
        ``"adamw"`` (default), ``"adahessian"``, ``"sophia-g"``,
        ``"sophia-h"``, ``"soaa"``, ``"muon"``, ``"namo"``, ``"namo-d"``,
        ``"mfac"``, or a method object.
    jac : True or callable
        ``True``: ``fun`` returns the gradient too; else ``jac(x, batch)``.
    hessp : callable, optional
        ``hessp(x, v, batch) -> H(x) v`` on the minibatch: needed by
        AdaHessian and Sophia-H.
    sampled_jac : callable, optional
        ``sampled_jac(x, batch, rng)``: the minibatch gradient of the loss
        at labels drawn from the model's predictive distribution (``rng`` a
        NumPy ``Generator``): needed by Sophia-G.
    batch_size : int, default 32
    epochs : int, default 1
    maxiter : int, optional
        Stop after this many steps (default: ``epochs`` passes).
    seed : int or numpy.random.Generator, optional
        Seeds the shuffling, the probes and the sampled labels.
    options : dict, optional
        The method's hyperparameters (its class documents them; unknown
        names are an error), plus ``shapes`` (a list of shapes whose sizes
        add up to ``x0.size``: the parameter tensors) and ``on_nonfinite``
        (``"skip"``, default: a step whose gradient, oracles or update holds
        NaN or inf is skipped, counted in ``nskip`` and reported by a
        warning at the end; ``"raise"``: :class:`NonFiniteStepError`) and
        ``schedule`` (``None``, a constant learning rate; ``"cosine"``,
        :math:`\eta_t = \eta\,(1 + \cos(\pi t / T))/2` over the run's
        ``T`` steps; or a callable ``schedule(t, T)`` giving the factor).
        SOAA's ``total_steps`` defaults to the number of steps of the run
        and Sophia-G's ``bs`` to ``batch_size``.
    callback : callable, optional
        ``callback(intermediate_result)`` after each step, with ``x``,
        ``fun`` (the minibatch loss) and ``nit``; raising
        :class:`StopIteration` stops with ``status = 99``.

    Returns
    -------
    OptimizeResult
        ``x`` (``x0``'s namespace, 1-D), ``fun`` (the last epoch's mean
        minibatch loss), ``loss_history`` (every minibatch loss, a NumPy
        array), ``nit``, ``nfev`` and ``njev`` (loss and gradient
        evaluations), ``nhvp`` (Hessian-vector products), ``nsjev``
        (sampled-label gradients), ``nskip``, ``status``, ``success``,
        ``message``, ``method``.

    Examples
    --------
    >>> import numpy as np
    >>> from secondorder.stochastic import minimize
    >>> rng = np.random.default_rng(0)
    >>> A, b = rng.standard_normal((256, 5)), rng.standard_normal(256)
    >>> def fun(x, batch):
    ...     Ab, bb = batch
    ...     r = Ab @ x - bb
    ...     return 0.5 * np.mean(r * r), Ab.T @ r / len(bb)
    >>> res = minimize(fun, np.zeros(5), (A, b), method="adamw", epochs=20, options={"lr": 0.05})
    >>> bool(res.success)
    True
    """
    if not callable(fun):
        raise TypeError("`fun` must be callable as fun(x, batch).")
    if jac is not True and not callable(jac):
        raise TypeError("`jac` must be True (fun returns the gradient too) or a callable jac(x, batch).")
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    epochs = check_int(epochs, "epochs", minimum=1)
    if maxiter is not None:
        maxiter = check_int(maxiter, "maxiter", minimum=1)
    options = dict(options or {})
    driver = {k: options.pop(k) for k in _DRIVER_OPTIONS if k in options}
    on_nonfinite = driver.get("on_nonfinite", "skip")
    if on_nonfinite not in ("skip", "raise"):
        raise ValueError(f"`options['on_nonfinite']` must be 'skip' or 'raise'; got {on_nonfinite!r}.")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    xp, x, shapes, dtype = _initial_point(x0, driver.get("shapes"))
    batches, n_per_epoch = _batcher(data, batch_size, rng)
    total = n_per_epoch * epochs if n_per_epoch is not None else None
    if maxiter is not None:
        total = maxiter if total is None else min(total, maxiter)
    if not isinstance(method, StochasticMethod):
        name = _ALIASES.get(str(method).lower(), str(method).lower())
        if name == "soaa" and total is not None:
            options.setdefault("total_steps", total)
        if name == "sophia-g":
            options.setdefault("bs", batch_size)
    method = get_method(method, options)
    if isinstance(method, (AdaHessian, SophiaH)) and hessp is None:
        raise ValueError(f"{type(method).__name__} needs Hessian-vector products: pass hessp(x, v, batch).")
    if isinstance(method, SophiaG) and sampled_jac is None:
        raise ValueError(
            "SophiaG needs gradients at labels sampled from the model: pass sampled_jac(x, batch, rng) "
            "(LogisticLoss/SoftmaxLoss.minibatch() provides one), or use method='sophia-h' with hessp."
        )
    if hessp is not None and not callable(hessp):
        raise TypeError("`hessp` must be callable as hessp(x, v, batch).")
    if sampled_jac is not None and not callable(sampled_jac):
        raise TypeError("`sampled_jac` must be callable as sampled_jac(x, batch, rng).")

    schedule = _schedule(driver.get("schedule"), total)
    base_lr = method.lr
    base_aux = getattr(method, "adamw_lr", None)  # Muon and NAMO's AdamW rate follows the schedule too
    sizes = [math.prod(s) for s in shapes]
    params = _split(xp, x, shapes, sizes)
    state = method.init(params)
    counts = {"nfev": 0, "njev": 0, "nhvp": 0, "nsjev": 0, "nskip": 0}
    history, epoch_losses = [], []
    status, message, nit = 0, "reached the step budget", 0
    last_skipped = False
    callback = Callback(callback)
    stop = False
    for _ in range(epochs):
        losses = []
        for batch in batches():
            if maxiter is not None and nit >= maxiter:
                stop = True
                break
            if schedule is not None:
                factor = schedule(nit, total)
                method.lr = base_lr * factor
                if base_aux is not None:
                    method.adamw_lr = base_aux * factor
            needs = method.needs(state)
            value, g = _loss_and_grad(fun, jac, x, batch, xp, dtype, counts)
            oracles = {}
            if "hvp" in needs:
                probes = [rademacher(rng, s, xp, dtype, device(x)) for s in shapes]
                flat = _concat(xp, probes)
                hv = _checked(xp, hessp(x, flat, batch), x.shape[0], dtype, "hessp")
                counts["nhvp"] += 1
                oracles["probes"], oracles["hvp"] = probes, _split(xp, hv, shapes, sizes)
            if "sampled_grad" in needs:
                sg = _checked(xp, sampled_jac(x, batch, rng), x.shape[0], dtype, "sampled_jac")
                counts["nsjev"] += 1
                oracles["sampled_grad"] = _split(xp, sg, shapes, sizes)
            if "loss" in needs:
                oracles["loss"] = value
            grads = _split(xp, g, shapes, sizes)
            finite = math.isfinite(value)
            if finite:
                updates, new_state = method.update(grads, state, params, **oracles)
                step = _concat(xp, updates)
                # the update and the inputs in one test (an inf gradient may be clipped out of the step
                # but would poison the state, which is then not kept)
                finite = all_finite(xp, [step, g] + [a for v in oracles.values() if isinstance(v, list) for a in v])
            if not finite:
                if on_nonfinite == "raise":
                    raise NonFiniteStepError(
                        f"step {nit + 1}: the loss, gradient, oracles or the update holds NaN or inf "
                        "(lower the learning rate, or set options['on_nonfinite']='skip' to skip such steps)."
                    )
                counts["nskip"] += 1
                last_skipped = True
            else:
                last_skipped = False
                x = x + step
                params = _split(xp, x, shapes, sizes)
                state = new_state
            nit += 1
            history.append(value)
            losses.append(value)
            if callback(x=x, fun=value, nit=nit):
                status, message, stop = 99, "`callback` raised StopIteration", True
            if stop:
                break
        if losses:
            epoch_losses.append(float(np.mean([v for v in losses if math.isfinite(v)] or [np.nan])))
        if stop:
            break
    method.lr = base_lr
    if base_aux is not None:
        method.adamw_lr = base_aux
    if nit == 0:
        raise ValueError("`data` gave no batch: pass a non-empty array, tuple of arrays or iterable of batches.")
    if last_skipped and counts["nskip"] < nit and status == 0:
        status, message = 2, (
            "the iterates diverged: the loss, gradient or update was NaN or inf at the last step, so the final "
            "x is not a usable point. Lower the learning rate."
        )
    elif counts["nskip"] == nit and status == 0:
        status, message = 2, (
            "every step was skipped: the loss, gradient, oracles or update held NaN or inf at each one, "
            "so x did not move. Check the model at x0 or lower the learning rate."
        )
    elif counts["nskip"]:
        warnings.warn(
            f"{counts['nskip']} of {nit} steps were skipped: their loss, gradient, oracles or update held NaN or "
            "inf. Lower the learning rate or check the model.",
            RuntimeWarning,
            stacklevel=2,
        )
    return OptimizeResult(
        x=x,
        fun=epoch_losses[-1],
        loss_history=np.asarray(history, dtype=float),
        epoch_loss=np.asarray(epoch_losses, dtype=float),
        nit=nit,
        status=status,
        success=status == 0,
        message=message,
        method=method,
        **counts,
    )


def _schedule(schedule, total):
    if schedule is None:
        return None
    if schedule == "cosine":
        if total is None:
            raise ValueError("options['schedule']='cosine' needs the number of steps: give `maxiter` or sized `data`.")
        return lambda t, T: 0.5 * (1.0 + math.cos(math.pi * t / T))
    if callable(schedule):
        return schedule
    raise ValueError(f"`options['schedule']` must be None, 'cosine' or a callable schedule(t, T); got {schedule!r}.")


def _initial_point(x0, shapes):
    if not is_array_api_obj(x0):
        x0 = np.asarray(x0)
    xp = array_namespace(x0)
    if xp.isdtype(x0.dtype, "complex floating") or not xp.isdtype(x0.dtype, ("real floating", "integral", "bool")):
        raise TypeError(f"`x0` must be an array of real numbers; got dtype {x0.dtype}.")
    dtype = x0.dtype if xp.isdtype(x0.dtype, "real floating") else xp.float64
    if dtype not in (xp.float32, xp.float64):
        dtype = xp.float64
    x = xp.reshape(xp.astype(x0, dtype, copy=True), (-1,))
    if x.shape[0] == 0:
        raise ValueError("`x0` is empty.")
    if not all_finite(xp, [x]):
        raise ValueError("`x0` must be finite; it holds NaN or inf.")
    if shapes is None:
        shapes = [tuple(x0.shape) or (1,)]
    else:
        try:
            shapes = [tuple(int(d) for d in s) for s in shapes]
        except TypeError as exc:
            raise TypeError("`options['shapes']` must be a list of shapes (tuples of ints).") from exc
        if sum(math.prod(s) for s in shapes) != x.shape[0]:
            raise ValueError(
                f"`options['shapes']` {shapes} hold {sum(math.prod(s) for s in shapes)} entries, "
                f"but `x0` has {x.shape[0]}; their sizes must add up to x0.size."
            )
    return xp, x, shapes, dtype


def _batcher(data, batch_size, rng):
    """A function giving one epoch's batches, and the number of batches."""
    arrays = None
    if is_array_api_obj(data):
        arrays, single = [data], True
    elif isinstance(data, tuple) and data and all(is_array_api_obj(a) for a in data):
        arrays, single = list(data), False
    if arrays is None:
        if isinstance(data, (str, bytes)) or not hasattr(data, "__iter__"):
            raise TypeError("`data` must be an array, a tuple of arrays or an iterable of batches.")
        return (lambda: iter(data)), (len(data) if hasattr(data, "__len__") else None)
    n = arrays[0].shape[0] if arrays[0].ndim else 0
    for i, a in enumerate(arrays):
        if a.ndim == 0 or a.shape[0] != n:
            raise ValueError(f"the arrays of `data` must have the same length along axis 0; data[{i}] has shape {a.shape}.")
    if n == 0:
        raise ValueError("`data` has no samples.")
    spaces = [array_namespace(a) for a in arrays]

    def epoch():
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            parts = tuple(_take(sp, a, idx) for sp, a in zip(spaces, arrays))
            yield parts[0] if single else parts

    return epoch, -(-n // batch_size)


def _take(xp, a, idx):
    if isinstance(a, np.ndarray):
        return a[idx]
    return xp.take(a, xp.asarray(idx, device=device(a)), axis=0)


def _concat(xp, arrays):
    flat = [xp.reshape(a, (-1,)) for a in arrays]
    return flat[0] if len(flat) == 1 else xp.concat(flat)


def _split(xp, x, shapes, sizes):
    out, start = [], 0
    for shape, size in zip(shapes, sizes):
        out.append(xp.reshape(x[start : start + size], shape))
        start += size
    return out


def _checked(xp, value, n, dtype, name):
    """A user callable's vector: any shape holding ``n`` entries is flattened."""
    shape = getattr(value, "shape", None)
    if shape is not None and len(shape) != 1 and math.prod(shape) == n:
        value = xp.reshape(xp.asarray(value), (-1,))
    return check_output(value, (n,), name, xp, dtype)


def _loss_and_grad(fun, jac, x, batch, xp, dtype, counts):
    if jac is True:
        out = fun(x, batch)
        if not isinstance(out, tuple) or len(out) != 2:
            raise TypeError("with jac=True, `fun` must return (loss, gradient).")
        value, g = out
    else:
        value, g = fun(x, batch), jac(x, batch)
    counts["nfev"] += 1
    counts["njev"] += 1
    try:
        value = float(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"`fun` must return a real scalar loss; got {type(value).__name__}.") from exc
    return value, _checked(xp, g, x.shape[0], dtype, "jac" if jac is not True else "fun's gradient")

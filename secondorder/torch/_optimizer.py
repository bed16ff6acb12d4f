"""``torch.optim.Optimizer`` front ends over the functional core.

Each class keeps PyTorch's conventions (param groups, ``state_dict``,
``zero_grad``, ``step(closure)``) and calls the array-API core of
:mod:`secondorder.stochastic` on the parameters' tensors, so the maths is
the same code as in the NumPy driver.
"""

import math

import torch

from .._validation import check_nonnegative
from ..stochastic import MFAC as _MFAC
from ..stochastic import NAMO as _NAMO
from ..stochastic import NAMOD as _NAMOD
from ..stochastic import SOAA as _SOAA
from ..stochastic import AdaHessian as _AdaHessian
from ..stochastic import AdamW as _AdamW
from ..stochastic import Muon as _Muon
from ..stochastic import SophiaG as _SophiaG
from ..stochastic import SophiaH as _SophiaH
from ..stochastic._base import NonFiniteStepError
from . import _sophia_foreach

__all__ = ["AdaHessian", "SophiaG", "SophiaH", "SOAA", "NAMO", "NAMOD", "Muon", "MFAC", "AdamW"]

_GROUP = "group:"


def _finite(tensors):
    """Whether no tensor of ``tensors`` holds NaN or inf.

    One call of the Euclidean norms (PyTorch's max-norm is several times
    slower on the CPU): a NaN or inf makes its tensor's norm non-finite.
    Only where a norm is not finite, which huge finite entries can also
    cause, are that tensor's entries tested one by one.
    """
    if not tensors:
        return True
    norms = torch._foreach_norm(tensors)
    try:
        if bool(torch.isfinite(torch.stack(norms)).all()):
            return True
    except RuntimeError:  # norms on several devices
        pass
    return all(bool(torch.isfinite(n)) or bool(torch.isfinite(t).all()) for n, t in zip(norms, tensors))


class _CoreOptimizer(torch.optim.Optimizer):
    """Base of the front ends: a ``torch.optim.Optimizer`` whose step is the
    core method's ``update``.

    Per-parameter state entries live in ``self.state[p]``; the group-wide
    ones (step count, SOAA's radius, M-FAC's window) in the state of the
    group's first parameter under ``"group:<name>"``, so ``state_dict``
    saves and restores everything.  ``on_nonfinite``: ``"skip"`` (default)
    leaves the parameters unchanged for a step whose gradient, oracles or
    update holds NaN or inf, counting it in ``self.n_skipped``; ``"raise"``
    raises :class:`~secondorder.stochastic.NonFiniteStepError`.
    """

    _core = None

    def __init__(self, params, on_nonfinite="skip", **hyper):
        self._core(**hyper)  # validates the hyperparameters with the core's messages
        if on_nonfinite not in ("skip", "raise"):
            raise ValueError(f"`on_nonfinite` must be 'skip' or 'raise'; got {on_nonfinite!r}.")
        self.on_nonfinite = on_nonfinite
        self.n_skipped = 0
        self.oracle_counts = {"hvp": 0, "sampled_grad": 0, "loss": 0}
        defaults = dict(self._core.defaults)
        defaults.update(hyper)
        super().__init__(params, defaults)

    # ---------------------------------------------------------------- state
    def _method(self, group, **override):
        """The core method with the group's hyperparameters.  One object per
        setting is kept; the learning rate, which a scheduler changes every
        step, is set on it rather than being part of the setting."""
        hyper = {k: group[k] for k in self._core.defaults if k in group}
        hyper.update(override)
        lr = hyper.pop("lr")
        try:
            key = tuple(hyper.items())
            hash(key)
        except TypeError:  # an unhashable setting (a list of betas)
            key = repr(sorted(hyper.items()))
        cache = self.__dict__.setdefault("_methods", {})
        method = cache.get(key)
        if method is None:
            if len(cache) > 64:
                cache.clear()
            method = cache[key] = self._core(lr=lr, **hyper)
        if method.lr != lr:
            method.lr = check_nonnegative(lr, "lr")
        return method

    def _params(self, group):
        return [p for p in group["params"] if p.grad is not None]

    def _load(self, method, group, params):
        first = self.state[group["params"][0]]
        if _GROUP + "step" not in first:
            state = method.init([p.detach() for p in params])
            self._store(method, group, params, state)
            return state
        state = {k[len(_GROUP) :]: v for k, v in first.items() if k.startswith(_GROUP) and k != _GROUP + "flat"}
        for p in params:
            if method.per_param and not any(key in self.state[p] for key in method.per_param):
                # a parameter whose first gradient comes after the group's first step starts afresh
                fresh = method.init([p.detach()])
                for key in method.per_param:
                    if fresh[key][0] is not None:
                        self.state[p][key] = fresh[key][0]
        for key in method.per_param:
            state[key] = [self.state[p].get(key) for p in params]
        return state

    def _store(self, method, group, params, state):
        first = self.state[group["params"][0]]
        for key, value in state.items():
            if key in method.per_param:
                for p, v in zip(params, value):
                    if v is not None:
                        self.state[p][key] = v
            else:
                first[_GROUP + key] = value

    # ---------------------------------------------------------------- steps
    def _needs(self):
        """What each group's next step needs (it depends on the step count
        only, so it is known before the gradients are)."""
        needs = {}
        for group in self.param_groups:
            if group["params"]:
                step = self.state[group["params"][0]].get(_GROUP + "step", 0)
                needs[id(group)] = self._method(group).needs({"step": step})
        return needs

    def _closure_gradients(self, closure, create_graph):
        """Run ``closure`` and make sure every parameter has its gradient
        (computed here, with the graph kept when a product follows, if the
        closure only returned the loss)."""
        params = [p for g in self.param_groups for p in g["params"] if p.requires_grad]
        for p in params:
            p.grad = None
        with torch.enable_grad():
            loss = closure()
            if all(p.grad is None for p in params):
                if not torch.is_tensor(loss) or not loss.requires_grad:
                    raise RuntimeError("the closure must return the loss tensor (with its graph) or call backward.")
                grads = torch.autograd.grad(loss, params, create_graph=create_graph, allow_unused=True)
                for p, g in zip(params, grads):
                    p.grad = g
        return loss

    def _hessian_products(self, needs):
        """``(probes, products)`` by parameter for the groups that need
        ``"hvp"``: one double-backward through the gradients' graph."""
        params = [p for g in self.param_groups if "hvp" in needs.get(id(g), ()) for p in self._params(g)]
        if not params:
            return {}
        linked = [p for p in params if p.grad.grad_fn is not None]
        if not linked:
            raise RuntimeError(
                f"{type(self).__name__} needs the graph of the gradient for its Hessian-vector product: call "
                "loss.backward(create_graph=True) before step(), or pass a closure that returns the loss "
                "(step(closure) then builds the graph itself)."
            )
        probes = [2 * torch.randint_like(p, high=2, memory_format=torch.preserve_format) - 1 for p in params]
        # a gradient without a graph does not depend on the parameters: its rows of H are zero
        z_linked = [z for p, z in zip(params, probes) if p.grad.grad_fn is not None]
        found = torch.autograd.grad([p.grad for p in linked], params, grad_outputs=z_linked, allow_unused=True)
        products = [torch.zeros_like(p) if hz is None else hz for p, hz in zip(params, found)]
        self.oracle_counts["hvp"] += 1
        return {p: (z, hz) for p, z, hz in zip(params, probes, products)}

    def _grads(self, params):
        grads = [p.grad.detach() for p in params]
        if any(g.is_sparse for g in grads):
            raise RuntimeError(
                f"{type(self).__name__} does not support sparse gradients (from an Embedding with sparse=True, "
                "say); use dense gradients for its parameters."
            )
        return grads

    @torch.no_grad()
    def _core_step(self, group, params, oracles, override=None):
        method = self._method(group, **(override or {}))
        grads = self._grads(params)
        state = self._load(method, group, params)
        if oracles.get("loss") is not None and not math.isfinite(oracles["loss"]):
            return self._skip()
        if _Batched.applies(method, params, state):
            batch = _Batched(method, params, self.state[group["params"][0]])
            update, new_state, checks = batch.update(grads, state, oracles)
            # One test of the update and the inputs together: a NaN or inf in a gradient or an oracle
            # need not reach the update (Sophia clips it) but would poison the state, which is then
            # not kept.
            if not _finite(checks):
                return self._skip()
            if method.decoupled_decay and method.weight_decay:
                torch._foreach_mul_(params, method.decay_factor())
            torch._foreach_add_(params, batch.split(update))
            new_state = batch.commit(new_state)
        else:
            updates, new_state = method.update(grads, state, [p.detach() for p in params], **oracles)
            if not _finite(updates + grads + [a for v in oracles.values() if isinstance(v, list) for a in v]):
                return self._skip()
            for p, u in zip(params, updates):
                p.add_(u)
        self._store(method, group, params, new_state)

    def _skip(self):
        if self.on_nonfinite == "raise":
            raise NonFiniteStepError(
                f"{type(self).__name__}: the gradient, an oracle or the update holds NaN or inf "
                "(lower the learning rate, or pass on_nonfinite='skip')."
            )
        self.n_skipped += 1

    def step(self, closure=None, *, loss=None):
        """One step.

        Parameters
        ----------
        closure : callable, optional
            Re-evaluates the model and returns the loss.  It may call
            ``backward`` itself (with ``create_graph=True`` where a
            Hessian-vector product is due) or only return the loss, in which
            case the gradients, and the graph a product needs, are computed
            here.
        loss : float or tensor, optional
            The loss at the current parameters, for methods that need it
            (SOAA) when no closure is given.
        """
        needs = self._needs()
        wants_hvp = any("hvp" in n for n in needs.values())
        if closure is not None:
            loss = self._closure_gradients(closure, create_graph=wants_hvp)
        products = self._hessian_products(needs) if wants_hvp else {}
        for group in self.param_groups:
            params = self._params(group)
            if not params:
                continue
            group_needs = needs.get(id(group), frozenset())
            oracles = {}
            if "hvp" in group_needs:
                oracles["probes"] = [products[p][0] for p in params]
                oracles["hvp"] = [products[p][1] for p in params]
            if "loss" in group_needs:
                if loss is None:
                    raise ValueError(f"{type(self).__name__} needs the loss: call step(closure) or step(loss=loss).")
                oracles["loss"] = float(loss.detach() if torch.is_tensor(loss) else loss)
                self.oracle_counts["loss"] += 1
            self._core_step(group, params, oracles)
        self._release_graph()
        return loss

    def _release_graph(self):
        # A gradient built with create_graph=True references its parameter
        # through the graph: detaching it ends the reference cycle (the
        # memory leak PyTorch warns about).
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and p.grad.grad_fn is not None:
                    p.grad = p.grad.detach()


class _Batched:
    """One call of an element-wise method's core on all of a group's tensors
    at once, concatenated.

    For the methods whose update treats every entry alike (``elementwise``
    in the core: AdamW, Sophia, SOAA with a global Fisher sum, AdaHessian
    where no estimate is averaged over entries) the result is
    the same, entry for entry, as tensor by tensor, but the array-API core
    then issues each of its operations once per group instead of once per
    tensor: on a model of many small tensors, the difference between an
    optimiser step that costs a fraction of the backward pass and one that
    costs as much.  The state stays per parameter, as views of one buffer
    per state entry kept in the group's state (``"group:flat"``), which the
    next step uses as it is while the views still cover it in order; after
    a ``load_state_dict`` or a change in the set of gradients the buffers
    are rebuilt from the per-parameter state.
    """

    def __init__(self, method, params, first_state):
        self.method = method
        self.params = params
        self.shapes = [p.shape for p in params]
        self.sizes = [p.numel() for p in params]
        self.first_state = first_state
        self.ids = tuple(id(p) for p in params)

    @staticmethod
    def applies(method, params, state):
        if len(params) < 2 or not method.elementwise_for(params):
            return False
        dtype, device = params[0].dtype, params[0].device
        return all(p.dtype == dtype and p.device == device for p in params)

    def flat(self, arrays):
        return torch.cat([a.reshape(-1) for a in arrays])

    def split(self, flat):
        return [part.view(shape) for part, shape in zip(flat.split(self.sizes), self.shapes)]

    def _buffer(self, key, views):
        """The flat buffer under ``views``, when they are its pieces in order."""
        flat = self.first_state.get(_GROUP + "flat")
        if not flat or flat["ids"] != self.ids or key not in flat:
            return None
        buffer = flat[key]
        start, size = buffer.data_ptr(), buffer.element_size()
        offset = 0
        for v, n in zip(views, self.sizes):
            if v is None or v.data_ptr() != start + offset * size or not v.is_contiguous():
                return None
            offset += n
        return buffer if offset == buffer.numel() else None

    def pack(self, state):
        """The state with each per-parameter entry as one flat array (the
        group's buffer where the entries are still its views)."""
        packed = dict(state)
        self.buffers, self.views = {}, {}
        for key in self.method.per_param:
            buffer = self._buffer(key, state[key])
            self.buffers[key], self.views[key] = buffer, state[key]
            packed[key] = [buffer if buffer is not None else self.flat(state[key])]
        return packed

    def update(self, grads, state, oracles):
        """``(flat update, new state, arrays to check)``; the state is
        committed by :meth:`commit` once the step is accepted."""
        method = self.method
        packed = self.pack(state)
        flat_oracles = {k: ([self.flat(v)] if isinstance(v, list) else v) for k, v in oracles.items()}
        g = self.flat(grads)
        if method.decoupled_decay:
            # the caller applies the weight decay to the parameters in place: no copy of them is read
            (update,), new = method.update([g], packed, None, decay=False, **flat_oracles)
        else:
            (update,), new = method.update([g], packed, [self.flat([p.detach() for p in self.params])], **flat_oracles)
        # the probes are drawn here, finite by construction
        checks = [update, g] + [v[0] for k, v in flat_oracles.items() if isinstance(v, list) and k != "probes"]
        return update, new, checks

    def commit(self, new):
        """The new state with per-parameter views of the flat buffers."""
        flat = {"ids": self.ids}
        for key in self.method.per_param:
            buffer = self.buffers[key]
            if buffer is not None:
                if new[key][0] is not buffer:  # an entry the step left alone is not copied onto itself
                    buffer.copy_(new[key][0])  # the views in the parameters' state follow
                new[key] = self.views[key]
            else:
                buffer = new[key][0]
                new[key] = self.split(buffer)
            flat[key] = buffer
        self.first_state[_GROUP + "flat"] = flat
        return new


class AdaHessian(_CoreOptimizer):
    """AdaHessian; a drop-in for torch-optimizer's ``Adahessian``.

    ``AdaHessian(params, lr=0.15, betas=(0.9, 0.999), eps=1e-4,
    weight_decay=0, hessian_power=1, seed=None, spatial_average="conv",
    signed_blocks=False)``: the arguments of ``torch_optimizer.Adahessian``
    (whose ``hessian_power`` defaults to 0.5; the official code's, and this
    class's, to 1; ``seed`` seeds PyTorch's global generator as there).
    Use ``loss.backward(create_graph=True); opt.step()`` as with the
    reference, or ``opt.step(closure)`` with a closure that returns the loss.
    See :class:`secondorder.stochastic.AdaHessian` for the rule.
    """

    _core = _AdaHessian

    def __init__(self, params, lr=0.15, betas=(0.9, 0.999), eps=1e-4, weight_decay=0.0, hessian_power=1.0,
                 seed=None, **options):
        if seed is not None:
            torch.manual_seed(seed)
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         hessian_power=hessian_power, **options)


class _Sophia(_CoreOptimizer):
    """Sophia's front ends: with ``foreach=True`` (the default) the step runs
    on PyTorch's multi-tensor kernels, in place (``_sophia_foreach``);
    ``foreach=False`` runs the array-API core, as the other classes do."""

    def __init__(self, params, lr, foreach=None, **options):
        self.foreach = True if foreach is None else bool(foreach)
        super().__init__(params, lr=lr, **options)

    @torch.no_grad()
    def _core_step(self, group, params, oracles, override=None):
        if not self.foreach:
            return super()._core_step(group, params, oracles, override)
        method = self._method(group, **(override or {}))
        grads = self._grads(params)
        state = self._load(method, group, params)
        if not _finite(grads + [a for v in oracles.values() if isinstance(v, list) for a in v]):
            return self._skip()
        if method._oracle in method.needs(state):  # Sophia-H's refresh, at the start of the step as in the core
            _sophia_foreach.refresh_(method, state["h"], oracles)
        _sophia_foreach.step_(method, params, grads, state["m"], state["h"])
        state["step"] += 1
        self._store(method, group, params, state)


class SophiaG(_Sophia):
    """Sophia-G; a drop-in for the official ``SophiaG`` (``sophia-opt``).

    ``SophiaG(params, lr=1e-4, betas=(0.965, 0.99), rho=0.04,
    weight_decay=0.1, *, maximize=False, capturable=False, foreach=None)``
    (``foreach``: the step on PyTorch's multi-tensor kernels, in place,
    unless ``False``, which runs the array-API core),
    ``step(closure=None, bs=5120)`` and ``update_hessian()``, which folds
    the squared gradients in ``p.grad`` (from a backward pass at labels
    sampled from the model) into the estimate, as the reference does.
    ``update_hessian(closure)`` does the same with a closure that returns
    the sampled-label loss.  See :class:`secondorder.stochastic.SophiaG`.
    """

    _core = _SophiaG

    def __init__(self, params, lr=1e-4, betas=(0.965, 0.99), rho=0.04, weight_decay=1e-1, *, maximize=False,
                 capturable=False, foreach=None, **options):
        if maximize:
            raise ValueError("SophiaG: maximize=True is not supported; minimise the negated objective.")
        if options.get("update_interval", 0):
            raise ValueError(
                "SophiaG: the estimate is refreshed when the training loop calls update_hessian() (after a "
                "backward pass at sampled labels), as with the reference; do not pass update_interval."
            )
        options["update_interval"] = 0
        super().__init__(params, lr=lr, betas=betas, rho=rho, weight_decay=weight_decay, foreach=foreach, **options)

    def step(self, closure=None, bs=5120):
        """One step with the estimate as it stands; ``bs`` is the number of
        samples (tokens) behind each gradient."""
        loss = None
        if closure is not None:
            loss = self._closure_gradients(closure, create_graph=False)
        for group in self.param_groups:
            params = self._params(group)
            if params:
                self._core_step(group, params, {}, override={"bs": bs})
        self._release_graph()
        return loss

    @torch.no_grad()
    def update_hessian(self, closure=None):
        """Fold :math:`\\hat g \\odot \\hat g` into the curvature estimate,
        with :math:`\\hat g` in ``p.grad`` or from ``closure``."""
        loss = None
        if closure is not None:
            loss = self._closure_gradients(closure, create_graph=False)
        self.oracle_counts["sampled_grad"] += 1
        for group in self.param_groups:
            params = self._params(group)
            if not params:
                continue
            method = self._method(group)
            sampled = self._grads(params)
            if not _finite(sampled):  # a NaN or inf estimate would stop every later step
                self._skip()
                continue
            if self.foreach:
                state = self._load(method, group, params)
                _sophia_foreach.refresh_(method, state["h"], {"sampled_grad": sampled})
                self._store(method, group, params, state)
                continue
            state = self._load(method, group, params)
            if _Batched.applies(method, params, state):
                batch = _Batched(method, params, self.state[group["params"][0]])
                estimate = method.curvature_estimate(torch, {"sampled_grad": [batch.flat(sampled)]})
                new_state = batch.commit(method.update_hessian(batch.pack(state), estimate))
            else:
                new_state = method.update_hessian(state, method.curvature_estimate(torch, {"sampled_grad": sampled}))
            self._store(method, group, params, new_state)
        return loss


class SophiaH(_Sophia):
    """Sophia-H: a Hutchinson estimate every ``update_interval`` steps.

    ``SophiaH(params, lr=1e-3, betas=(0.9, 0.99), rho=10, weight_decay=1e-2,
    update_interval=10, eps=1e-12, guard="relu", foreach=None)``.  On the steps that
    refresh the estimate the gradient's graph is needed:
    ``loss.backward(create_graph=True)``, or ``step(closure)``.  See
    :class:`secondorder.stochastic.SophiaH`.
    """

    _core = _SophiaH

    def __init__(self, params, lr=1e-3, **options):
        super().__init__(params, lr=lr, **options)

    def hessian_due(self):
        """Whether the next ``step`` computes a Hessian-vector product (so
        the backward pass before it needs ``create_graph=True``)."""
        return any("hvp" in n for n in self._needs().values())


class SOAA(_CoreOptimizer):
    """SOAA: needs the loss at every step (``step(closure)`` or
    ``step(loss=...)``).  ``total_steps`` (default 10000) is the step
    budget of the radius bounds.  See :class:`secondorder.stochastic.SOAA`.
    """

    _core = _SOAA

    def __init__(self, params, lr=1e-3, **options):
        super().__init__(params, lr=lr, **options)


class NAMO(_CoreOptimizer):
    """NAMO: matrices (``ndim >= 2``) orthogonalised, other parameters by
    the AdamW rule; a group with ``orthogonalize=False`` (embeddings, the
    output head) is all AdamW.  See :class:`secondorder.stochastic.NAMO`."""

    _core = _NAMO

    def __init__(self, params, lr=1e-2, **options):
        super().__init__(params, lr=lr, **options)


class NAMOD(_CoreOptimizer):
    """NAMO-D (column-wise scales).  See :class:`secondorder.stochastic.NAMOD`."""

    _core = _NAMOD

    def __init__(self, params, lr=1e-2, **options):
        super().__init__(params, lr=lr, **options)


class Muon(_CoreOptimizer):
    """Muon as :class:`torch.optim.Muon`, plus AdamW for the parameters that
    are not matrices.  See :class:`secondorder.stochastic.Muon`."""

    _core = _Muon

    def __init__(self, params, lr=1e-3, **options):
        super().__init__(params, lr=lr, **options)


class MFAC(_CoreOptimizer):
    """M-FAC (``lr=1e-3, momentum=0, weight_decay=0, ngrads=1024,
    damp=1e-5``, the reference's defaults; one window per param group).
    See :class:`secondorder.stochastic.MFAC`."""

    _core = _MFAC

    def __init__(self, params, lr=1e-3, **options):
        super().__init__(params, lr=lr, **options)


class AdamW(_CoreOptimizer):
    """AdamW through the core (the same rule as :class:`torch.optim.AdamW`),
    for comparisons that run every method through one code path."""

    _core = _AdamW

    def __init__(self, params, lr=1e-3, **options):
        super().__init__(params, lr=lr, **options)

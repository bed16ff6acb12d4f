r"""Muon: momentum orthogonalised by Newton-Schulz, the baseline of NAMO.

For each matrix parameter (higher-dimensional ones viewed as
``(shape[0], -1)``), as :class:`torch.optim.Muon` does it:

.. math::

    B_t = \mu B_{t-1} + (1-\mu) G_t, \qquad
    \tilde B_t = (1-\mu) G_t + \mu B_t \ \text{(Nesterov)}, \qquad
    O_t = \operatorname{NS}_5(\tilde B_t),

.. math::

    \theta \leftarrow \theta(1 - \eta\lambda) - \eta\, \rho(A, B)\, O_t,

with :math:`\rho = \sqrt{\max(1, A/B)}` (``adjust_lr_fn=None``, Keller
Jordan's) or :math:`0.2\sqrt{\max(A, B)}` (``"match_rms_adamw"``).
Parameters that are not matrices (biases, gains) take the AdamW rule of
``MuonWithAuxAdam`` (betas (0.9, 0.95), eps 1e-10, no weight decay), at
``adamw_lr`` (default: ``lr``).

References
----------
.. [1] K. Jordan et al., "Muon: An optimizer for hidden layers in neural
   networks", 2024.
"""

import math

from .._validation import check_int, check_nonnegative, check_positive
from ._adamw import adamw_direction
from ._base import StochasticMethod, adam_moments, as_matrix, check_betas, check_choice
from ._newton_schulz import NS_COEFFICIENTS, newton_schulz, resolve_dtype

__all__ = ["Muon"]


def check_backup(h):
    """Validate the AdamW options shared by Muon, NAMO and NAMO-D."""
    h["adamw_lr"] = None if h["adamw_lr"] is None else check_nonnegative(h["adamw_lr"], "adamw_lr")
    h["adamw_betas"] = check_betas(h["adamw_betas"], "adamw_betas")
    h["adamw_eps"] = check_positive(h["adamw_eps"], "adamw_eps")
    if h["adamw_weight_decay"] is not None:
        h["adamw_weight_decay"] = check_nonnegative(h["adamw_weight_decay"], "adamw_weight_decay")
    h["orthogonalize"] = bool(h["orthogonalize"])
    return h


class _Orthogonalised(StochasticMethod):
    """Shared parts of Muon, NAMO and NAMO-D: the split into matrices
    (orthogonalised) and the rest (AdamW), and the momentum."""

    per_param = ("buf", "m1", "m2")
    _adamw_eps_after_correction = True

    def _check_common(self, h):
        h["nesterov"] = bool(h["nesterov"])
        h["ns_steps"] = check_int(h["ns_steps"], "ns_steps", minimum=1)
        return check_backup(h)

    def is_matrix(self, p):
        return self.orthogonalize and p.ndim >= 2

    def _init(self, xp, params):
        state = {"buf": [], "m1": [], "m2": []}
        for p in params:
            if self.is_matrix(p):
                state["buf"].append(xp.zeros_like(as_matrix(xp, p)))
                state["m1"].append(None)
                state["m2"].append(None)
            else:
                state["buf"].append(None)
                state["m1"].append(xp.zeros_like(p))
                state["m2"].append(xp.zeros_like(p))
        return state

    def _momentum(self, xp, G, buf):
        """The new buffer and the direction to orthogonalise."""
        mu = self.momentum
        buf = buf + (1.0 - mu) * (G - buf)
        return buf, (G + mu * (buf - G) if self.nesterov else buf)

    def _orth(self, xp, M):
        return newton_schulz(
            xp, M, steps=self.ns_steps, coefficients=self._coefficients(), eps=self._ns_eps(),
            eps_mode=self._ns_eps_mode, dtype=resolve_dtype(xp, self.ns_dtype),
        )

    def _coefficients(self):
        return NS_COEFFICIENTS

    def _backup(self, xp, t, p, g, m1, m2):
        """The AdamW step of a parameter that is not a matrix."""
        betas = self.adamw_betas
        lr = self.lr if self.adamw_lr is None else self.adamw_lr
        wd = self.weight_decay if self.adamw_weight_decay is None else self.adamw_weight_decay
        m1, m2 = adam_moments(m1, m2, g, g * g, *betas)
        step = adamw_direction(xp, m1, m2, t, betas, self.adamw_eps, self._adamw_eps_after_correction)
        return -(lr * wd) * p - lr * step, m1, m2

    def _update(self, xp, t, grads, state, params, oracles):
        updates = []
        new = {"buf": [], "m1": [], "m2": []}
        extra = self._extra_state(state)
        for i, (p, g) in enumerate(zip(params, grads)):
            if state["buf"][i] is None:
                u, m1, m2 = self._backup(xp, t, p, g, state["m1"][i], state["m2"][i])
                new["buf"].append(None)
                new["m1"].append(m1)
                new["m2"].append(m2)
            else:
                u, buf = self._matrix_step(xp, t, i, p, g, state["buf"][i], extra)
                new["buf"].append(buf)
                new["m1"].append(None)
                new["m2"].append(None)
            updates.append(u)
        state.update(new)
        state.update(extra)
        return updates, state

    def _extra_state(self, state):
        return {}


class Muon(_Orthogonalised):
    """Muon, as :class:`torch.optim.Muon` (plus AdamW for non-matrices).

    Parameters
    ----------
    lr : float, default 1e-3
    weight_decay : float, default 0.1
    momentum : float, default 0.95
    nesterov : bool, default True
    ns_coefficients : (float, float, float), default (3.4445, -4.7750, 2.0315)
    eps : float, default 1e-7
    ns_steps : int, default 5
    adjust_lr_fn : {None, "original", "match_rms_adamw"}, default None
    ns_dtype : str or dtype, optional
        Working precision of Newton-Schulz (``"bfloat16"`` as the reference,
        on PyTorch); default the parameters' dtype.
    orthogonalize : bool, default True
        False: every parameter takes the AdamW rule (a group of embeddings).
    adamw_lr, adamw_betas, adamw_eps, adamw_weight_decay
        The AdamW rule of non-matrix parameters (``adamw_lr=None``: ``lr``).
    """

    defaults = {
        "lr": 1e-3,
        "weight_decay": 0.1,
        "momentum": 0.95,
        "nesterov": True,
        "ns_coefficients": NS_COEFFICIENTS,
        "eps": 1e-7,
        "ns_steps": 5,
        "adjust_lr_fn": None,
        "ns_dtype": None,
        "orthogonalize": True,
        "adamw_lr": None,
        "adamw_betas": (0.9, 0.95),
        "adamw_eps": 1e-10,
        "adamw_weight_decay": 0.0,
    }
    _ns_eps_mode = "clamp"

    def _check(self, h):
        h = self._check_common(h)
        h["adjust_lr_fn"] = check_choice(h["adjust_lr_fn"], "adjust_lr_fn", (None, "original", "match_rms_adamw"))
        try:
            h["ns_coefficients"] = tuple(float(c) for c in h["ns_coefficients"])
        except (TypeError, ValueError) as exc:
            raise TypeError(f"`ns_coefficients` must be three numbers; got {h['ns_coefficients']!r}.") from exc
        if len(h["ns_coefficients"]) != 3:
            raise ValueError(f"`ns_coefficients` must be three numbers (a, b, c); got {h['ns_coefficients']!r}.")
        return h

    def _coefficients(self):
        return self.ns_coefficients

    def _ns_eps(self):
        return self.eps

    def _matrix_step(self, xp, t, i, p, g, buf, extra):
        G = as_matrix(xp, g)
        buf, M = self._momentum(xp, G, buf)
        O = self._orth(xp, M)
        A, B = G.shape
        ratio = 0.2 * math.sqrt(max(A, B)) if self.adjust_lr_fn == "match_rms_adamw" else math.sqrt(max(1.0, A / B))
        u = -(self.lr * self.weight_decay) * p - (self.lr * ratio) * xp.reshape(O, p.shape)
        return u, buf

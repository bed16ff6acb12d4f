r"""NAMO and NAMO-D: Muon's orthogonalised momentum with an Adam-type,
norm-based step size (Zhang, Liu and Schaeffer, 2026).

For each matrix parameter :math:`W \in \mathbb R^{A \times B}` (higher
dimensional ones viewed as ``(shape[0], -1)``), with momentum
:math:`\mu_1`, the Nesterov direction :math:`\tilde M` and
:math:`O = \operatorname{NS}_5(\tilde M)` as in Muon, and
:math:`c_t = \eta \sqrt{1-\mu_2^t} / (1-\mu_1^t)`:

NAMO (one scale per matrix)
    :math:`v_t = \mu_2 v_{t-1} + (1-\mu_2)\|G_t\|_F^2`,
    :math:`\alpha = c_t \|\tilde M\|_F / (\sqrt{v_t} + \epsilon)`,

    .. math::

        W \leftarrow W \bigl(1 - \lambda \min(\alpha, 1)\bigr)
          - \min\bigl(\alpha\, s \sqrt{\max(A, B)}, 1\bigr)\, O;

NAMO-D (one scale per column, a right-multiplication by a diagonal)
    :math:`V_t = \mu_2 V_{t-1} + (1-\mu_2) \|G_{:, j}\|^2`,
    :math:`\alpha_j = \|\tilde M_{:, j}\|/(\sqrt{V_{t,j}} + \epsilon)`,
    clamped to :math:`[\kappa\bar\alpha, \bar\alpha/\kappa]` around their mean
    :math:`\bar\alpha`, then column :math:`j` is decayed by
    :math:`\max(0, 1 - \lambda\min(c_t\alpha_j, 1))` and moved by
    :math:`\min(c_t \alpha_j s\sqrt{\max(A, B)}, 1)\, O_{:, j}`.

The clamps at 1 and the shape factor :math:`s\sqrt{\max(A,B)}`
(``scale_coeff`` :math:`s = 0.2`) are the official code's
(``minxin-zhg/namo``, ``src/namo.py``), not the paper's formula
:math:`\theta \leftarrow \theta - \eta\alpha(O + \lambda\theta)`;
``clamp=False`` drops the clamps at 1.  :math:`\epsilon` is added outside
the square root as in the code since its fix of 2026-02-25 (its docstring
still says inside).  Parameters that are not matrices take the code's AdamW
"backup" at the same learning rate (betas (0.9, 0.95), eps 1e-8 added
before the bias correction; weight decay ``adamw_weight_decay``, by default
``weight_decay`` as in the class, while the GPT-2 configuration sets 0).
NAMO is new and its code still changes; these defaults follow it as of
March 2026.

References
----------
.. [1] M. Zhang, Y. Liu and H. Schaeffer, "NAMO: Norm-Adaptive Muon
   Optimizers", arXiv 2602.17080, 2026.
"""

import math

from .._validation import check_nonnegative
from ._base import as_matrix, check_unit_interval
from ._muon import _Orthogonalised
from ._newton_schulz import NS_COEFFICIENTS

__all__ = ["NAMO", "NAMOD"]

_NAMO_DEFAULTS = {
    "lr": 1e-2,
    "weight_decay": 0.1,
    "momentum": 0.95,
    "mu2": 0.99,
    "eps": 1e-8,
    "nesterov": True,
    "ns_steps": 5,
    "scale_coeff": 0.2,
    "clamp": True,
    "ns_dtype": None,
    "orthogonalize": True,
    "adamw_lr": None,
    "adamw_betas": (0.9, 0.95),
    "adamw_eps": 1e-8,
    "adamw_weight_decay": None,
}


class NAMO(_Orthogonalised):
    """NAMO: one adaptive step size per matrix.

    Parameters
    ----------
    lr : float, default 1e-2
    weight_decay : float, default 0.1
    momentum : float, default 0.95
        :math:`\\mu_1`.
    mu2 : float, default 0.99
        EMA coefficient of the squared gradient norm.
    eps : float, default 1e-8
        ``adamnorm_eps`` of the reference.
    nesterov : bool, default True
    ns_steps : int, default 5
    scale_coeff : float, default 0.2
    clamp : bool, default True
        The official code's clamps at 1.
    ns_dtype : str or dtype, optional
        Working precision of Newton-Schulz (the reference: bfloat16).
    orthogonalize : bool, default True
    adamw_lr, adamw_betas, adamw_eps, adamw_weight_decay
        The AdamW rule of non-matrix parameters (``None``: ``lr`` and
        ``weight_decay``).
    """

    defaults = dict(_NAMO_DEFAULTS)
    per_param = ("buf", "m1", "m2", "v")
    _ns_eps_mode = "add"
    _adamw_eps_after_correction = False

    def _check(self, h):
        h = self._check_common(h)
        h["mu2"] = check_unit_interval(h["mu2"], "mu2")
        h["scale_coeff"] = check_nonnegative(h["scale_coeff"], "scale_coeff")
        h["clamp"] = bool(h["clamp"])
        return h

    def _ns_eps(self):
        return 1e-7  # the reference's Newton-Schulz normalisation

    def _coefficients(self):
        return NS_COEFFICIENTS

    def _init(self, xp, params):
        state = super()._init(xp, params)
        state["v"] = [self._second_moment(xp, as_matrix(xp, p)) if self.is_matrix(p) else None for p in params]
        return state

    def _second_moment(self, xp, P):
        return 0.0

    def _extra_state(self, state):
        return {"v": list(state["v"])}

    def _base_lr(self, t):
        return self.lr * math.sqrt(1.0 - self.mu2**t) / (1.0 - self.momentum**t + 1e-12)

    def _shape_factor(self, p):
        A, B = p.shape[:2]
        return self.scale_coeff * math.sqrt(max(A, B))

    def _matrix_step(self, xp, t, i, p, g, buf, extra):
        G = as_matrix(xp, g)
        gn = float(xp.linalg.vector_norm(G))
        buf, M = self._momentum(xp, G, buf)
        gn_m = float(xp.linalg.vector_norm(M))
        v = self.mu2 * extra["v"][i] + (1.0 - self.mu2) * gn * gn
        extra["v"][i] = v
        O = self._orth(xp, M)
        alpha = self._base_lr(t) * gn_m / (math.sqrt(v) + self.eps)
        alpha_wd = min(alpha, 1.0) if self.clamp else alpha
        alpha_up = alpha * self._shape_factor(p)
        if self.clamp:
            alpha_up = min(alpha_up, 1.0)
        u = -(self.weight_decay * alpha_wd) * p - alpha_up * xp.reshape(O, p.shape)
        return u, buf


class NAMOD(NAMO):
    """NAMO-D: one adaptive step size per column, clamped towards their mean.

    Parameters
    ----------
    col_clamp : float in [0, 1], default 0.75
        :math:`\\kappa`; 0 disables the clamp (the GPT-2 configuration of
        the reference uses 0.01).
    **others
        As :class:`NAMO` (default ``lr`` 1e-2).
    """

    defaults = dict(_NAMO_DEFAULTS, col_clamp=0.75)

    def _check(self, h):
        h = super()._check(h)
        c = check_nonnegative(h["col_clamp"], "col_clamp")
        if c > 1.0:
            raise ValueError(f"`col_clamp` must be in [0, 1]; got {c!r}.")
        h["col_clamp"] = c
        return h

    def _second_moment(self, xp, P):
        return xp.zeros_like(P[0, :])

    def _matrix_step(self, xp, t, i, p, g, buf, extra):
        G = as_matrix(xp, g)
        V = self.mu2 * extra["v"][i] + (1.0 - self.mu2) * xp.sum(G * G, axis=0)
        extra["v"][i] = V
        buf, M = self._momentum(xp, G, buf)
        O = self._orth(xp, M)
        base = self._base_lr(t)
        scale = xp.linalg.vector_norm(M, axis=0) / (xp.sqrt(V) + self.eps)
        c = self.col_clamp
        if 0.0 < c <= 1.0:
            mean = float(xp.mean(scale))
            if math.isfinite(mean) and mean > 0.0:
                scale = xp.clip(scale, min=mean * c, max=mean / c)
        col_wd = scale * base
        col_up = col_wd * self._shape_factor(p)
        if self.clamp:
            col_wd = xp.clip(col_wd, max=1.0)
            col_up = xp.clip(col_up, max=1.0)
        decay = xp.clip(1.0 - self.weight_decay * col_wd, min=0.0)
        P = as_matrix(xp, p)
        u = P * (decay - 1.0) - O * col_up
        return xp.reshape(u, p.shape), buf

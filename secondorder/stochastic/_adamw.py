r"""AdamW, the first-order baseline every stochastic method is measured against.

.. math::

    m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad
    v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,

.. math::

    \theta_t = \theta_{t-1} (1 - \eta\lambda)
      - \frac{\eta}{1-\beta_1^t}\,\frac{m_t}{\sqrt{v_t}/\sqrt{1-\beta_2^t} + \epsilon},

the order of operations of :class:`torch.optim.AdamW`, with its defaults.

References
----------
.. [1] I. Loshchilov and F. Hutter, "Decoupled Weight Decay
   Regularization", ICLR 2019.
"""

import math

from ._base import StochasticMethod, adam_moments

__all__ = ["AdamW", "adamw_direction"]


def adamw_direction(xp, m, v, t, betas, eps, eps_after_correction=True):
    r"""Adam's bias-corrected direction from the moments after ``t`` steps.

    ``eps_after_correction=True`` (torch's AdamW):
    :math:`\hat m / (\sqrt{\hat v} + \epsilon)`.  ``False`` (the AdamW rule
    inside Muon's and NAMO's reference code):
    :math:`m/(\sqrt v + \epsilon) \cdot \sqrt{1-\beta_2^t}/(1-\beta_1^t)`.
    """
    bc1 = 1.0 - betas[0] ** t
    bc2 = 1.0 - betas[1] ** t
    if eps_after_correction:
        return (m / bc1) / (xp.sqrt(v) / math.sqrt(bc2) + eps)
    return m / (xp.sqrt(v) + eps) * (math.sqrt(bc2) / bc1)


class AdamW(StochasticMethod):
    """AdamW (the baseline).

    Parameters
    ----------
    lr : float, default 1e-3
    betas : (float, float), default (0.9, 0.999)
    eps : float, default 1e-8
    weight_decay : float, default 1e-2
        Decoupled: :math:`\\theta \\leftarrow \\theta(1 - \\eta\\lambda)`.
    """

    defaults = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2}
    per_param = ("m", "v")
    elementwise = True
    decoupled_decay = True

    def _init(self, xp, params):
        return {"m": [xp.zeros_like(p) for p in params], "v": [xp.zeros_like(p) for p in params]}

    def _update(self, xp, t, grads, state, params, oracles):
        updates, ms, vs = [], [], []
        for g, m, v in zip(grads, state["m"], state["v"]):
            m, v = adam_moments(m, v, g, g * g, *self.betas)
            step = adamw_direction(xp, m, v, t, self.betas, self.eps)
            updates.append(-self.lr * step)  # the weight decay is added by update()
            ms.append(m)
            vs.append(v)
        state["m"], state["v"] = ms, vs
        return updates, state

r"""SOAA: Adam inside a diagonal-Fisher trust region whose radius follows
the loss (Vo and Vo, 2024).

Step :math:`t` with the minibatch loss :math:`\ell_t` at the current point:

.. math::

    \hat m = \frac{m_t}{1-\beta_1^t}, \quad \hat v = \frac{v_t}{1-\beta_2^t},
    \quad F = \Bigl(1 + \frac{\sum_i \hat m_i^2}{\sum_i (\hat v_i + \epsilon)}\Bigr)\hat v,

.. math::

    u = \frac{d\, \hat m}{\max(d F, \sqrt{\hat v}) + \epsilon}, \qquad
    \theta \leftarrow \theta - \eta\lambda\theta - \eta u,

then the radius: with the bias-corrected running mean of the losses
:math:`\hat\ell`, the reduction the last step predicted :math:`p` and
:math:`s = (t-1)/T`,

.. math::

    d \leftarrow \operatorname{clip}\Bigl(d\,\frac{\hat\ell - \ell_t}{\max(p, \epsilon)},
      (1-\gamma)^s, 1 + \gamma^s\Bigr), \qquad
    p = \eta\Bigl(\sum_i \hat m_i u_i - \tfrac12 \sum_i \hat v_i u_i^2\Bigr).

Where :math:`dF > \sqrt{\hat v}` (large gradients) the step is the
Fisher-Newton step :math:`\hat m / F`; elsewhere it is Adam's, scaled by the
radius :math:`d`.

No official code is public.  This follows the paper's rule in the order of
operations of the C++ port ``slrodini/nadir`` (``src/soaa.cc``), whose
defaults these are.  The paper does not say whether the sums in :math:`F`
run over all parameters or over each tensor: ``fisher_scope="global"``
(default, as nadir) or ``"tensor"`` (as the closely related TAdam code).
The step budget :math:`T` (``total_steps``) sets how fast the radius bounds
narrow; drivers that know their number of steps pass it.

References
----------
.. [1] J. Vo and A.-D. Vo, "SOAA: Second-Order Adaptive Adam", arXiv
   2410.02293, 2024.
.. [2] K. Yang, S. Cho and S. Lee, "TAdam: Trust region adaptive moment
   estimation", Neural Networks, 2023.
"""

from .._validation import check_int, check_positive
from ._base import StochasticMethod, adam_moments, check_choice, check_unit_interval

__all__ = ["SOAA"]


class SOAA(StochasticMethod):
    """SOAA (needs the minibatch loss at every step).

    Parameters
    ----------
    lr : float, default 1e-3
    betas : (float, float), default (0.9, 0.999)
    gamma : float in (0, 1), default 0.1
        Width of the radius bounds.
    weight_decay : float, default 0
    eps : float, default 1e-8
    total_steps : int, default 10000
        :math:`T`, the step budget.
    fisher_scope : {"global", "tensor"}, default "global"
    d0 : float, default 1
        The initial radius.
    """

    defaults = {
        "lr": 1e-3,
        "betas": (0.9, 0.999),
        "gamma": 0.1,
        "weight_decay": 0.0,
        "eps": 1e-8,
        "total_steps": 10000,
        "fisher_scope": "global",
        "d0": 1.0,
    }
    per_param = ("m", "v")
    decoupled_decay = True

    def _check(self, h):
        h["gamma"] = check_unit_interval(h["gamma"], "gamma")
        if h["gamma"] == 0.0:
            raise ValueError("`gamma` must be in (0, 1); got 0.")
        h["total_steps"] = check_int(h["total_steps"], "total_steps", minimum=1)
        h["fisher_scope"] = check_choice(h["fisher_scope"], "fisher_scope", ("global", "tensor"))
        h["d0"] = check_positive(h["d0"], "d0")
        return h

    def needs(self, state):
        return frozenset({"loss"})

    def elementwise_for(self, params):
        # the Fisher factor sums over every entry with the global scope
        return self.fisher_scope == "global"

    def _init(self, xp, params):
        return {
            "m": [xp.zeros_like(p) for p in params],
            "v": [xp.zeros_like(p) for p in params],
            "radius": self.d0,
            "loss_avg": 0.0,
            "predicted": 0.0,
        }

    def _update(self, xp, t, grads, state, params, oracles):
        b1, b2 = self.betas
        eps, d, lr = self.eps, state["radius"], self.lr
        bc1, bc2 = 1.0 - b1**t, 1.0 - b2**t
        ms, vs, mh, vh = [], [], [], []
        for g, m, v in zip(grads, state["m"], state["v"]):
            m, v = adam_moments(m, v, g, g * g, b1, b2)
            ms.append(m)
            vs.append(v)
            mh.append(m / bc1)
            vh.append(v / bc2)
        num = [float(xp.sum(a * a)) for a in mh]
        den = [float(xp.sum(a + eps)) for a in vh]
        if self.fisher_scope == "global":
            ratios = [1.0 + sum(num) / sum(den)] * len(mh)
        else:
            ratios = [1.0 + n / q for n, q in zip(num, den)]
        updates, predicted = [], 0.0
        for a, b, r in zip(mh, vh, ratios):
            u = d * a / (xp.maximum(d * r * b, xp.sqrt(b)) + eps)
            updates.append(-lr * u)  # the weight decay is added by update()
            predicted += float(xp.sum(a * u)) - 0.5 * float(xp.sum(b * u * u))
        loss = oracles["loss"]
        loss_avg = b1 * state["loss_avg"] + (1.0 - b1) * loss
        s = (t - 1) / self.total_steps
        lo, hi = (1.0 - self.gamma) ** s, 1.0 + self.gamma**s
        d = min(hi, max(lo, d * (loss_avg / bc1 - loss) / max(state["predicted"], eps)))
        state.update(m=ms, v=vs, radius=d, loss_avg=loss_avg, predicted=lr * predicted)
        return updates, state

r"""Sophia: clipped, diagonally preconditioned momentum (Liu et al., 2024).

Every step, with the curvature estimate :math:`h` refreshed every ``k``
steps,

.. math::

    \theta \leftarrow \theta (1 - \eta\lambda), \qquad
    m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad
    \theta \leftarrow \theta - \eta \operatorname{sign}(m_t)
      \min\!\left(\frac{|m_t|}{\rho\, B\, h + \epsilon}, 1\right),

element-wise, without bias correction (the official ``sophia.py``).  The
paper writes the step as :math:`\eta\,\operatorname{clip}(m/\max(\gamma h,
\epsilon), 1)`; the two agree for :math:`h \ge 0` up to where
:math:`\epsilon` enters, and the code's learning rate is the paper's
:math:`\rho\eta`.

Curvature estimators, refreshed by :math:`h \leftarrow \beta_2 h +
(1-\beta_2)\hat h`:

* Sophia-G (:class:`SophiaG`): the Gauss-Newton-Bartlett estimate
  :math:`\hat h = \hat g \odot \hat g`, with :math:`\hat g` the minibatch
  gradient of the loss at labels sampled from the model's own predictive
  distribution; the batch size :math:`B` (``bs``) turns the mean-gradient
  square into the per-sample Gauss-Newton diagonal at step time, as in the
  reference's ``step(bs=...)``;
* Sophia-H (:class:`SophiaH`): Hutchinson's :math:`\hat h = z \odot Hz`,
  which can be negative, hence the guard :math:`\rho \max(h, 0) +
  \epsilon` of the official first release (``guard="max"`` gives the
  paper's :math:`\max(\rho h, \epsilon)`).

The estimate starts at zero, so until the first refresh every coordinate
takes the full step :math:`\eta\operatorname{sign}(m)`.  In the reference
training loop the refresh follows the step of iteration ``k-1, 2k-1, ...``
at the next batch; here it comes at the start of steps ``k+1, 2k+1, ...``
(the same points, the same batches), so that a step asks for its oracles
before it runs.

References
----------
.. [1] H. Liu, Z. Li, D. Hall, P. Liang and T. Ma, "Sophia: A Scalable
   Stochastic Second-order Optimizer for Language Model Pre-training",
   ICLR 2024.
"""

from .._validation import check_int, check_positive
from ._base import StochasticMethod, check_choice

__all__ = ["SophiaG", "SophiaH"]


class _Sophia(StochasticMethod):
    per_param = ("m", "h")
    elementwise = True
    decoupled_decay = True
    _oracle = None

    def _check(self, h):
        h["rho"] = check_positive(h["rho"], "rho")
        h["update_interval"] = check_int(h["update_interval"], "update_interval", minimum=0)  # 0: the caller refreshes
        return h

    def needs(self, state):
        t, k = state["step"], self.update_interval
        if k and t > 0 and t % k == 0:
            return frozenset({self._oracle})
        return frozenset()

    def _init(self, xp, params):
        return {"m": [xp.zeros_like(p) for p in params], "h": [xp.zeros_like(p) for p in params]}

    def update_hessian(self, state, estimate):
        """The state with :math:`h \\leftarrow \\beta_2 h + (1-\\beta_2)\\hat h`
        (``estimate`` a list of :math:`\\hat h`, one per parameter)."""
        b2 = self.betas[1]
        state = dict(state)
        state["h"] = [b2 * h + (1.0 - b2) * e for h, e in zip(state["h"], estimate)]
        return state

    def _scale(self):
        return self.rho

    def _update(self, xp, t, grads, state, params, oracles):
        if self._oracle in self.needs({"step": t - 1}):
            state = self.update_hessian(state, self.curvature_estimate(xp, oracles))
        b1 = self.betas[0]
        scale = self._scale()
        updates, ms = [], []
        for g, m, h in zip(grads, state["m"], state["h"]):
            # Augmented assignments act on arrays created here only (in place where the library allows,
            # a new array where it does not, as in JAX): half the temporaries, and the state's arrays
            # are never written.
            m = b1 * m
            m += (1.0 - b1) * g
            # sign(m) min(|m| / den, 1) is clip(m / den, -1, 1), the denominator being positive
            step = xp.clip(m / self._denominator(xp, h, scale), min=-1.0, max=1.0)
            step *= -self.lr  # the weight decay is added by update()
            updates.append(step)
            ms.append(m)
        state["m"] = ms
        return updates, state


class SophiaG(_Sophia):
    """Sophia-G: the Gauss-Newton-Bartlett estimator every ``update_interval``
    steps (needs ``sampled_grad`` then).

    Parameters
    ----------
    lr : float, default 1e-4
    betas : (float, float), default (0.965, 0.99)
    rho : float, default 0.04
    weight_decay : float, default 0.1
    bs : int, default 5120
        The number of samples (tokens) behind each gradient: the factor
        :math:`B` of the estimator.  The NumPy driver sets it to its batch
        size unless given.
    update_interval : int, default 10
        ``k``: refresh the estimate every ``k`` steps; 0: never inside
        ``update`` (the caller calls :meth:`update_hessian`, as the
        reference's training loop does).
    eps : float, default 1e-15
        Added to the denominator (the reference's constant).
    """

    defaults = {
        "lr": 1e-4,
        "betas": (0.965, 0.99),
        "rho": 0.04,
        "weight_decay": 0.1,
        "bs": 5120,
        "update_interval": 10,
        "eps": 1e-15,
    }
    _oracle = "sampled_grad"

    def _check(self, h):
        h = super()._check(h)
        h["bs"] = check_positive(h["bs"], "bs")
        return h

    def _scale(self):
        return self.rho * self.bs

    def curvature_estimate(self, xp, oracles):
        return [g * g for g in oracles["sampled_grad"]]

    def _denominator(self, xp, h, scale):
        den = scale * h
        den += self.eps
        return den


class SophiaH(_Sophia):
    """Sophia-H: Hutchinson's estimator every ``update_interval`` steps
    (needs ``hvp`` then).

    Parameters
    ----------
    lr : float, default 1e-3
    betas : (float, float), default (0.9, 0.99)
    rho : float, default 10
        :math:`\\gamma` of the official first release.
    weight_decay : float, default 1e-2
    update_interval : int, default 10
    eps : float, default 1e-12
    guard : {"relu", "max"}, default "relu"
        ``"relu"``: the denominator :math:`\\rho\\max(h, 0) + \\epsilon`
        (official code); ``"max"``: :math:`\\max(\\rho h, \\epsilon)` (paper).
    """

    defaults = {
        "lr": 1e-3,
        "betas": (0.9, 0.99),
        "rho": 10.0,
        "weight_decay": 1e-2,
        "update_interval": 10,
        "eps": 1e-12,
        "guard": "relu",
    }
    _oracle = "hvp"

    def _check(self, h):
        h = super()._check(h)
        h["guard"] = check_choice(h["guard"], "guard", ("relu", "max"))
        return h

    def curvature_estimate(self, xp, oracles):
        return [z * hz for z, hz in zip(oracles["probes"], oracles["hvp"])]

    def _denominator(self, xp, h, scale):
        if self.guard == "relu":
            return scale * xp.clip(h, min=0.0) + self.eps
        return xp.clip(scale * h, min=self.eps)

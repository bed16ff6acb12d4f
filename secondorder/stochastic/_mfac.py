r"""The M-FAC optimiser: steps preconditioned by a sliding-window empirical
Fisher (Frantar, Kurtic and Alistarh, 2021).

With :math:`\tilde g_t = g_t + \lambda_{wd}\theta_t` (weight decay coupled,
as L2: the decayed gradient enters the window), concatenated over all
parameters,

.. math::

    F_t = \delta I + \frac1m \sum_{i=t-m+1}^{t} \tilde g_i \tilde g_i^T, \qquad
    u_t = F_t^{-1} \tilde g_t, \qquad
    v_t = \mu v_{t-1} + (1-\mu) u_t \ (\mu > 0), \qquad
    \theta_{t+1} = \theta_t - \eta\, v_t,

the momentum acting on the preconditioned direction, in the order of the
official ``optim.py`` (``MFAC.step``), whose defaults these are.  The
window and its algebra are the library's :class:`~secondorder.curvature.MFAC`
model: adding a gradient and the inverse-Fisher product cost
:math:`O(dm + m^2)`, against the :math:`O(dm + m^3)` of the reference.  While
the window fills, the missing gradients count as zeros in the :math:`1/m`
normaliser, as in the reference (whose ring buffer starts at zero): early
steps are about :math:`m\,\tilde g/\|\tilde g\|^2` long.

The window is one global matrix over all parameters, updated in place (a
copy per step would cost :math:`O(dm)`): a state is not reusable after
``update``.  It lives in NumPy (or CuPy) arrays; the model exchanges the
vectors of other libraries with it on the host.

References
----------
.. [1] E. Frantar, E. Kurtic and D. Alistarh, "M-FAC: Efficient
   Matrix-Free Approximations of Second-Order Information", NeurIPS 2021.
"""

import math

from .._validation import check_int, check_positive
from ..curvature._mfac import MFAC as MFACModel
from ._base import StochasticMethod, all_finite

__all__ = ["MFAC"]


class MFAC(StochasticMethod):
    """M-FAC as an optimiser.

    Parameters
    ----------
    lr : float, default 1e-3
    momentum : float, default 0
    weight_decay : float, default 0
        Coupled (added to the gradient before the window sees it).
    ngrads : int, default 1024
        ``m``, the window length (the reference's name).
    damp : float, default 1e-5
        :math:`\\delta`.
    """

    defaults = {"lr": 1e-3, "momentum": 0.0, "weight_decay": 0.0, "ngrads": 1024, "damp": 1e-5}
    per_param = ()

    def _check(self, h):
        h["ngrads"] = check_int(h["ngrads"], "ngrads", minimum=1)
        h["damp"] = check_positive(h["damp"], "damp")
        return h

    def _init(self, xp, params):
        return {"model": MFACModel(window=self.ngrads, damp=self.damp), "velocity": None}

    def _update(self, xp, t, grads, state, params, oracles):
        flat = [xp.reshape(g + self.weight_decay * p if self.weight_decay else g, (-1,)) for g, p in zip(grads, params)]
        g = xp.concat(flat) if len(flat) > 1 else flat[0]
        if not all_finite(xp, flat):
            # the window takes finite gradients only: leave it as it is and
            # return the non-finite step, which drivers skip
            return [g_ * math.nan for g_ in grads], state
        u = state["model"].update_and_ihvp(g)
        if self.momentum > 0.0:
            v = state["velocity"]
            u = (1.0 - self.momentum) * u if v is None else self.momentum * v + (1.0 - self.momentum) * u
            state["velocity"] = u
        updates, start = [], 0
        for p in params:
            size = math.prod(p.shape)
            updates.append(-self.lr * xp.astype(xp.reshape(u[start : start + size], p.shape), p.dtype))
            start += size
        return updates, state

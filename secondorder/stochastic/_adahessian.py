r"""AdaHessian: Adam with the Hessian diagonal in place of the squared gradient.

At every step a Rademacher probe :math:`z` gives Hutchinson's estimate of
the Hessian diagonal, :math:`D = |Hz|` (equal to :math:`|z \odot Hz|` since
:math:`|z| = 1`), averaged over the spatial dimensions of convolution kernels;
then

.. math::

    m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad
    v_t = \beta_2 v_{t-1} + (1-\beta_2) D_t^2,

.. math::

    \theta_t = \theta_{t-1} - \eta \left(\frac{m_t / (1-\beta_1^t)}
        {\left(\sqrt{v_t} / \sqrt{1-\beta_2^t}\right)^k + \epsilon}
        + \lambda\, \theta_{t-1}\right),

with Hessian power :math:`k`, :math:`\epsilon` added after the power and a
decoupled (not preconditioned) weight decay, in the order of the official
code (``image_classification/optim_adahessian.py``), whose defaults these are.

Differences between the reference variants, selected by ``spatial_average``:

* ``"conv"`` (official image-classification code; default): 4-D tensors
  take the mean of :math:`|Hz|` over their two kernel dimensions, other
  tensors none;
* ``"row"`` (the ``instruction/`` variant): 2-D tensors average over each
  row, 3-D over the last dimension, 4-D over the kernel dimensions;
* ``"none"``: no averaging (the third-party ``davda54/ada-hessian``);
* an integer ``b``: mean over consecutive blocks of ``b`` entries of the
  flattened tensor; with ``signed_blocks=True`` the absolute value is taken
  after the block mean of the signed :math:`z \odot Hz` (the fairseq
  variant, ``block_length`` 32 there).

torch-optimizer's ``Adahessian`` defaults to ``hessian_power=0.5``; the
official code, and this class, to 1.

References
----------
.. [1] Z. Yao, A. Gholami, S. Shen, M. Mustafa, K. Keutzer and M. W.
   Mahoney, "ADAHESSIAN: An Adaptive Second Order Optimizer for Machine
   Learning", AAAI 2021.
"""

import math
import numbers

from .._validation import check_nonnegative
from ..curvature._hutchinson import block_average
from ._base import StochasticMethod, adam_moments

__all__ = ["AdaHessian"]


class AdaHessian(StochasticMethod):
    """AdaHessian (Yao et al., 2021).

    Needs a Hessian-vector product with a Rademacher probe at every step.

    Parameters
    ----------
    lr : float, default 0.15
    betas : (float, float), default (0.9, 0.999)
    eps : float, default 1e-4
    weight_decay : float, default 0
    hessian_power : float in [0, 1], default 1
    spatial_average : {"conv", "row", "none"} or int, default "conv"
    signed_blocks : bool, default False
        With an integer ``spatial_average``: average the signed estimate over
        a block before the absolute value (fairseq variant).
    """

    defaults = {
        "lr": 0.15,
        "betas": (0.9, 0.999),
        "eps": 1e-4,
        "weight_decay": 0.0,
        "hessian_power": 1.0,
        "spatial_average": "conv",
        "signed_blocks": False,
    }
    per_param = ("m", "v")
    decoupled_decay = True

    def _check(self, h):
        k = check_nonnegative(h["hessian_power"], "hessian_power")
        if k > 1.0:
            raise ValueError(f"`hessian_power` must be in [0, 1]; got {k!r}.")
        h["hessian_power"] = k
        s = h["spatial_average"]
        if isinstance(s, numbers.Integral) and not isinstance(s, bool):
            if s < 1:
                raise ValueError(f"`spatial_average` as a block size must be >= 1; got {s!r}.")
            h["spatial_average"] = int(s)
        elif s not in ("conv", "row", "none"):
            raise ValueError(f"`spatial_average` must be 'conv', 'row', 'none' or a block size; got {s!r}.")
        h["signed_blocks"] = bool(h["signed_blocks"])
        return h

    def needs(self, state):
        return frozenset({"hvp"})

    def elementwise_for(self, params):
        # the estimate of an entry is its own |Hz| unless it is averaged with others
        mode = self.spatial_average
        if mode == "none":
            return True
        if mode == "conv":
            return all(p.ndim != 4 for p in params)
        if mode == "row":
            return all(p.ndim <= 1 for p in params)
        return False

    def _init(self, xp, params):
        return {"m": [xp.zeros_like(p) for p in params], "v": [xp.zeros_like(p) for p in params]}

    def diagonal_estimate(self, xp, z, hz):
        """The Hessian-diagonal estimate of one tensor from a probe ``z`` and
        its product ``hz``, averaged as ``spatial_average`` says (it
        broadcasts against the tensor)."""
        mode = self.spatial_average
        if isinstance(mode, int):
            flat = xp.reshape(z * hz, (-1,))
            if self.signed_blocks:
                est = xp.abs(block_average(flat, mode, xp))
            else:
                est = block_average(xp.abs(flat), mode, xp)
            return xp.reshape(est, hz.shape)
        d = xp.abs(hz)
        if hz.ndim == 4 and mode in ("conv", "row"):
            return xp.mean(d, axis=(2, 3), keepdims=True)
        if mode == "row" and hz.ndim in (2, 3):
            return xp.mean(d, axis=-1, keepdims=True)
        return d

    def _update(self, xp, t, grads, state, params, oracles):
        b1, b2 = self.betas
        k = self.hessian_power
        bc1 = 1.0 - b1**t
        sqrt_bc2 = math.sqrt(1.0 - b2**t)
        updates, ms, vs = [], [], []
        for g, m, v, z, hz in zip(grads, state["m"], state["v"], oracles["probes"], oracles["hvp"]):
            D = self.diagonal_estimate(xp, z, hz)
            m, v = adam_moments(m, v, g, D * D, b1, b2)
            if k == 1.0:
                denom = xp.sqrt(v) / sqrt_bc2 + self.eps
            else:
                denom = xp.sqrt(v) ** k / sqrt_bc2**k + self.eps
            updates.append(-self.lr * (m / bc1 / denom))  # the weight decay is added by update()
            ms.append(m)
            vs.append(v)
        state["m"], state["v"] = ms, vs
        return updates, state

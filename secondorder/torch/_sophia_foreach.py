r"""Sophia's step on PyTorch's multi-tensor (``foreach``) kernels.

The same rule as :class:`secondorder.stochastic.SophiaG` and
:class:`~secondorder.stochastic.SophiaH`,

.. math::

    m \leftarrow \beta_1 m + (1-\beta_1) g, \qquad
    \theta \leftarrow \theta (1 - \eta\lambda)
      - \eta \operatorname{clip}\!\left(\frac{m}{d(h)}, -1, 1\right),

with the denominator :math:`d(h)` of the estimator (``rho * bs * h + eps``
for Sophia-G; ``rho * max(h, 0) + eps`` or ``max(rho * h, eps)`` for
Sophia-H) and the refresh :math:`h \leftarrow \beta_2 h + (1-\beta_2)
\hat h`, written as a handful of ``torch._foreach_*`` calls that update the
moments and the parameters in place.  A Sophia step does little arithmetic
per entry; on a model of many small tensors its cost is the number of
operations PyTorch dispatches, which this brings from a few per tensor (or
a concatenation, the core's operations and a split, in the group-at-once
path) to a few per group.  Tested equal to the array-API core.

The state is written in place, so the front end checks a step before it
starts: the gradients and oracles must be finite, after which the step is
(the denominator is at least ``eps`` and the ratio is clipped).
"""

import torch

__all__ = ["refresh_", "step_"]


def refresh_(method, h, oracles):
    """:math:`h \\leftarrow \\beta_2 h + (1-\\beta_2)\\hat h` in place, with
    :math:`\\hat h` Sophia-G's :math:`\\hat g \\odot \\hat g` or Sophia-H's
    :math:`z \\odot Hz` from ``oracles``."""
    b2 = method.betas[1]
    if method._oracle == "sampled_grad":
        left = right = oracles["sampled_grad"]
    else:
        left, right = oracles["probes"], oracles["hvp"]
    torch._foreach_mul_(h, b2)
    torch._foreach_addcmul_(h, left, right, value=1.0 - b2)


def _denominator(method, h):
    scale, guard = method._scale(), getattr(method, "guard", "relu")
    if guard == "max":  # Sophia-H as in the paper: max(rho h, eps)
        den = torch._foreach_mul(h, scale)
        torch._foreach_clamp_min_(den, method.eps)
        return den
    if method._oracle == "sampled_grad":  # Sophia-G: h >= 0 already
        den = torch._foreach_mul(h, scale)
    else:  # Sophia-H, the official code's rho max(h, 0) + eps
        den = torch._foreach_clamp_min(h, 0.0)
        torch._foreach_mul_(den, scale)
    torch._foreach_add_(den, method.eps)
    return den


def step_(method, params, grads, m, h):
    """One Sophia step of ``params`` in place, with the moments ``m`` updated
    in place and the estimate ``h`` as it stands."""
    b1 = method.betas[0]
    torch._foreach_mul_(m, b1)
    torch._foreach_add_(m, grads, alpha=1.0 - b1)
    ratio = _denominator(method, h)
    ratio = torch._foreach_div(m, ratio)
    torch._foreach_clamp_min_(ratio, -1.0)
    torch._foreach_clamp_max_(ratio, 1.0)
    if method.weight_decay:
        torch._foreach_mul_(params, method.decay_factor())
    torch._foreach_add_(params, ratio, alpha=-method.lr)

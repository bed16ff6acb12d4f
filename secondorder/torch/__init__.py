"""PyTorch front ends: ``torch.optim.Optimizer`` classes over the
stochastic core (PyTorch is an optional dependency:
``pip install torch``, or the CPU wheel ``torch==2.13.0`` where one is at hand).

``AdaHessian`` is a drop-in for torch-optimizer's ``Adahessian`` and
``SophiaG`` for the official ``SophiaG``; ``SophiaH``, ``SOAA``, ``NAMO``,
``NAMOD``, ``Muon``, ``MFAC`` and ``AdamW`` take the parameters and ``lr``
alone and the hyperparameters of their core classes in
:mod:`secondorder.stochastic`.  Methods that need Hessian-vector products
accept ``loss.backward(create_graph=True); opt.step()`` or
``opt.step(closure)`` with a closure that returns the loss.
"""

try:
    import torch as _torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "secondorder.torch needs PyTorch: pip install 'secondorder[torch]' (or torch==2.13.0, a CPU wheel)."
    ) from exc

from ._optimizer import MFAC, NAMO, NAMOD, SOAA, AdaHessian, AdamW, Muon, SophiaG, SophiaH

__all__ = ["AdaHessian", "SophiaG", "SophiaH", "SOAA", "NAMO", "NAMOD", "Muon", "MFAC", "AdamW"]

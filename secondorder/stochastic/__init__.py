"""Stochastic second-order optimisers for training models.

One functional core per method (``init(params)`` and
``update(grads, state, params, **oracles)``, written on the Python array API
standard), the NumPy/array-API driver :func:`minimize` over minibatches, and
the PyTorch front end in :mod:`secondorder.torch`.
"""

from ._adahessian import AdaHessian
from ._adamw import AdamW
from ._base import ORACLES, NonFiniteStepError, StochasticMethod, apply_updates
from ._mfac import MFAC
from ._minimize import METHODS, get_method, minimize
from ._muon import Muon
from ._namo import NAMO, NAMOD
from ._newton_schulz import newton_schulz
from ._soaa import SOAA
from ._sophia import SophiaG, SophiaH

__all__ = [
    "minimize",
    "get_method",
    "METHODS",
    "StochasticMethod",
    "ORACLES",
    "NonFiniteStepError",
    "apply_updates",
    "AdamW",
    "AdaHessian",
    "SophiaG",
    "SophiaH",
    "SOAA",
    "Muon",
    "NAMO",
    "NAMOD",
    "MFAC",
    "newton_schulz",
]

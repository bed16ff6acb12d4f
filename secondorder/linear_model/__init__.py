"""Logistic and softmax regression: fused losses and scikit-learn estimators.

The losses (:class:`LogisticLoss`, :class:`SoftmaxLoss`) need only NumPy,
SciPy and numba; the estimators (:class:`LogisticRegression`,
:class:`SoftmaxRegression`) also need scikit-learn, imported on first use.
Their Dask versions (:class:`DaskLogisticLoss`, :class:`DaskSoftmaxLoss`,
used by the estimators for Dask collections) import Dask when built.
"""

from ._dask import DaskLogisticLoss, DaskSoftmaxLoss, LostPartitionError
from ._logistic_loss import LogisticLoss
from ._softmax_loss import SoftmaxLoss

__all__ = [
    "LogisticLoss",
    "LogisticRegression",
    "SoftmaxLoss",
    "SoftmaxRegression",
    "DaskLogisticLoss",
    "DaskSoftmaxLoss",
    "LostPartitionError",
]


def __getattr__(name):
    if name in ("LogisticRegression", "SoftmaxRegression"):
        from . import _logistic

        return getattr(_logistic, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Deterministic second-order minimisation behind :func:`minimize`."""

from scipy.optimize import OptimizeResult

from ._minimize import MINIMIZE_METHODS, minimize

__all__ = ["minimize", "OptimizeResult", "MINIMIZE_METHODS"]

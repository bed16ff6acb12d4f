"""Pure-NumPy kernels: the reference every compiled kernel is tested against."""

from .trust import trust_region_eig

__all__ = ["trust_region_eig"]

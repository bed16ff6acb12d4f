"""numba kernels for the CPU (compiled on first call, cached on disk)."""

from .trust import trust_region_eig

__all__ = ["trust_region_eig"]

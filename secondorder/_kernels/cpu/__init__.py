"""numba kernels for the CPU (compiled on first call, cached on disk)."""

from .cholesky import chol_drop_first_upper
from .trust import trust_region_eig

__all__ = ["chol_drop_first_upper", "trust_region_eig"]

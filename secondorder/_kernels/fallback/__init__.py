"""Pure-NumPy kernels: the reference every compiled kernel is tested against."""

from .cholesky import chol_drop_first_upper
from .trust import trust_region_eig

__all__ = ["chol_drop_first_upper", "trust_region_eig"]

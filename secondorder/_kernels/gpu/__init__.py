"""CuPy kernels.

The secular-equation solve and the Cholesky update are short sequential
iterations over vectors of length m (the window) or n (the eigenvalues); the
namespace-generic fallbacks already run them on CuPy arrays without host
copies of the vectors, so the GPU table reuses them.
"""

from ..fallback.cholesky import chol_drop_first_upper
from ..fallback.trust import trust_region_eig

__all__ = ["chol_drop_first_upper", "trust_region_eig"]

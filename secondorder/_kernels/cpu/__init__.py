"""numba kernels for the CPU (compiled on first call, cached on disk)."""

from .cholesky import chol_drop_first_upper
from .sinkhorn import lse_cols, lse_rows, scaled_kernel, sns_eval, transport_cost
from .trust import trust_region_eig

__all__ = ["chol_drop_first_upper", "lse_cols", "lse_rows", "scaled_kernel", "sns_eval", "transport_cost", "trust_region_eig"]

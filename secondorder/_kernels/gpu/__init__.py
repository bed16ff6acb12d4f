"""CuPy kernels.

The namespace-generic fallbacks run on CuPy arrays without host copies:
element-wise exp and reductions for the Sinkhorn kernels, short sequential
iterations over vectors of length m (the window) or n (the eigenvalues) for
the Cholesky update and the secular equation; matrix products and
element-wise NumPy calls (dispatched to CuPy) for the dense GLM kernels.
The GPU table reuses them until fused CuPy kernels replace the ones that
allocate n x n temporaries.
"""

from ..fallback.cholesky import chol_drop_first_upper
from ..fallback.glm import (
    gram_matvec,
    gram_matvec_csr,
    logistic_grad,
    logistic_grad_csr,
    softmax_grad,
    softmax_grad_csr,
    softmax_hessp,
    softmax_hessp_csr,
)
from ..fallback.sinkhorn import lse_cols, lse_rows, scaled_kernel, sns_eval, transport_cost
from ..fallback.trust import trust_region_eig

__all__ = [
    "gram_matvec",
    "gram_matvec_csr",
    "logistic_grad",
    "logistic_grad_csr",
    "softmax_grad",
    "softmax_grad_csr",
    "softmax_hessp",
    "softmax_hessp_csr",
    "chol_drop_first_upper", "lse_cols", "lse_rows", "scaled_kernel", "sns_eval", "transport_cost", "trust_region_eig"]

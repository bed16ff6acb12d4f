"""Pure-NumPy kernels: the reference every compiled kernel is tested against."""

from .cholesky import chol_drop_first_upper
from .glm import (
    csr_matvec,
    csr_rmatvec,
    gram_matvec,
    gram_matvec_csr,
    logistic_grad,
    logistic_grad_csr,
    logistic_grad_gram,
    logistic_grad_squares,
    logistic_grad_squares_csr,
    softmax_grad,
    softmax_grad_csr,
    softmax_hessp,
    softmax_hessp_csr,
)
from .lbfgs import lbfgs_direction
from .sinkhorn import grid_kept, grid_plan, group_gram, group_sums, kept_csr, lse_axis, lse_cols, lse_rows, row_max, row_scaled_kernel, scaled_kernel, sns_eval, sns_eval_sparse, transport_cost, value_range
from .trust import trust_region_eig

__all__ = [
    "lbfgs_direction",
    "csr_matvec",
    "csr_rmatvec",
    "gram_matvec",
    "gram_matvec_csr",
    "logistic_grad",
    "logistic_grad_csr",
    "logistic_grad_gram",
    "logistic_grad_squares",
    "logistic_grad_squares_csr",
    "softmax_grad",
    "softmax_grad_csr",
    "softmax_hessp",
    "softmax_hessp_csr",
    "chol_drop_first_upper", "grid_kept", "grid_plan", "group_gram", "group_sums", "kept_csr", "lse_axis", "lse_cols", "lse_rows", "row_max", "row_scaled_kernel", "scaled_kernel", "sns_eval", "sns_eval_sparse", "transport_cost", "value_range", "trust_region_eig"]

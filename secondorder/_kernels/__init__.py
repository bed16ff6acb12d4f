"""Kernel packages: ``cpu`` (numba), ``gpu`` (numba-CUDA on CuPy arrays) and
``fallback`` (namespace-generic NumPy/CuPy code).

``NAMES`` is the one list of kernels.  ``fallback`` has all of them; ``cpu``
and ``gpu`` export (in ``__all__``) the ones they have their own version of,
and :func:`secondorder._backend.kernels` takes the rest from ``fallback``.
Nothing here is imported eagerly.
"""

NAMES = (
    "chol_drop_first_upper",
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
    "grid_kept",
    "group_gram",
    "group_sums",
    "kept_csr",
    "lbfgs_direction",
    "grid_plan",
    "lse_axis",
    "lse_cols",
    "lse_rows",
    "row_max",
    "row_scaled_kernel",
    "scaled_kernel",
    "sns_eval",
    "sns_eval_sparse",
    "transport_cost",
    "trust_region_eig",
    "value_range",
)

"""GPU kernels: numba-CUDA kernels launched on CuPy arrays.

The fused kernels (the Sinkhorn and SNS passes over the cost matrix, the
per-sample GLM terms between two BLAS products, the rotations of M-FAC's
factor) are written with ``numba.cuda`` (``numba-cuda``).  The table takes
every other kernel, and all of them where numba-cuda is missing, from the
namespace-generic fallbacks, which run on CuPy arrays without host copies
(:func:`secondorder._backend.kernels` fills the gaps from ``NAMES``).  With
``NUMBA_ENABLE_CUDASIM=1`` numba's simulator runs the same kernels on NumPy
arrays: the tests check them against the CPU kernels that way.
"""

from ._cuda import AVAILABLE

__all__ = []

if AVAILABLE:
    from .cholesky import chol_drop_first_upper
    from .glm import (
        gram_matvec_csr,
        logistic_grad,
        logistic_grad_csr,
        softmax_grad,
        softmax_grad_csr,
        softmax_hessp,
        softmax_hessp_csr,
    )
    from .sinkhorn import lse_cols, lse_rows, scaled_kernel, sns_eval, transport_cost

    __all__ = [
        "chol_drop_first_upper",
        "gram_matvec_csr",
        "logistic_grad",
        "logistic_grad_csr",
        "softmax_grad",
        "softmax_grad_csr",
        "softmax_hessp",
        "softmax_hessp_csr",
        "lse_cols",
        "lse_rows",
        "scaled_kernel",
        "sns_eval",
        "transport_cost",
    ]

"""CuPy kernels.

The secular-equation solve is a short scalar iteration over a vector of
eigenvalues; the namespace-generic fallback already runs it on CuPy arrays
without host copies of the vectors, so the GPU table reuses it.
"""

from ..fallback.trust import trust_region_eig

__all__ = ["trust_region_eig"]

"""What the CUDA kernels share: numba's CUDA target and the launch sizes.

The kernels are written with ``numba.cuda`` (the ``numba-cuda`` package) and
launched on CuPy arrays, which carry ``__cuda_array_interface__``; they
compile on their first launch.  With ``NUMBA_ENABLE_CUDASIM=1`` numba runs the
same kernels in its simulator on NumPy arrays, on the CPU: that is how the
test suite checks them on machines without a GPU (small problems only: the
simulator runs every thread as Python code).
"""

import math

try:
    from numba import cuda

    AVAILABLE = True
except Exception:  # numba-cuda not installed
    cuda = None
    AVAILABLE = False

#: Whether the kernels run in numba's simulator (``NUMBA_ENABLE_CUDASIM=1``).
SIMULATED = False
if AVAILABLE:
    from numba.core import config as _config

    SIMULATED = bool(_config.ENABLE_CUDASIM)

#: Threads per block: a power of two for the tree reductions (small in the
#: simulator, where each thread is a Python thread).
TPB = 32 if SIMULATED else 256

LOWER = -500.0
UPPER = 700.0


def blocks(count, per_block=TPB):
    """The number of blocks that cover ``count`` threads."""
    return max(1, math.ceil(count / per_block))

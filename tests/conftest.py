import os
import sys
from pathlib import Path

# The bench harness and the asv suite live in benchmarks/ at the root of the clone (not in the package).
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)


def _cuda_device():
    # Asked of CuPy, before numba is imported: numba reads NUMBA_ENABLE_CUDASIM once, at import.
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


if not _cuda_device():
    # Without a device the CUDA kernels run in numba's simulator (the tests marked `cudasim`).
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np
import pytest

from secondorder._backend import cupy_available


def pytest_collection_modifyitems(config, items):
    if cupy_available():
        return
    skip = pytest.mark.skip(reason="no usable CuPy device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=[np.float64, np.float32], ids=["float64", "float32"])
def dtype(request):
    return request.param


def rtol_for(dtype):
    """Relative tolerance for comparing results computed in ``dtype``."""
    return 1e-10 if np.dtype(dtype) == np.float64 else 1e-4

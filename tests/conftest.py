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

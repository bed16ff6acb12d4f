"""The OT functions with PyTorch and array-api-strict arrays: the same
numbers as with NumPy, results in the caller's library."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from secondorder import ot
from secondorder._array_api import to_numpy


@pytest.fixture(params=["array_api_strict", pytest.param("torch", marks=pytest.mark.torch)])
def make(request):
    mod = pytest.importorskip(request.param)
    return lambda a: mod.asarray(np.array(a))


@pytest.mark.parametrize("method", ["sns", "sinkhorn_log", "sinkhorn"])
def test_sinkhorn_in_the_callers_library(make, method):
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 2)), rng.random((30, 2))
    a = rng.random(40)
    a[3] = 0.0  # a zero-mass entry: the plan's row is restored
    a /= a.sum()
    b = np.full(30, 1 / 30)
    M = ot.dist(x, y)
    assert_allclose(to_numpy(ot.dist(make(x), make(y))), M, rtol=1e-14)
    ref, ref_log = ot.sinkhorn(a, b, M, 1e-2, method=method, log=True)
    P, log = ot.sinkhorn(make(a), make(b), make(M), 1e-2, method=method, log=True)
    kind = type(make([0.0]))
    assert type(P) is kind and type(log["f"]) is kind and type(log["log_v"]) is kind
    assert_allclose(to_numpy(P), ref, rtol=1e-12, atol=1e-15)
    assert log["niter"] == ref_log["niter"]
    cost = ot.sinkhorn2(make(a), make(b), make(M), 1e-2, method=method)
    assert type(cost) is kind and cost.shape == ()  # a 0-d array of the caller's library, as POT's backends give
    assert float(cost) == pytest.approx(float(ot.sinkhorn2(a, b, M, 1e-2, method=method)), rel=1e-12)
    for fn in (ot.sinkhorn_log, ot.sinkhorn_newton_sparse, ot.sinkhorn_stabilized):
        assert type(fn(make(a), make(b), make(M), 1e-2)) is kind


def test_mixed_libraries_are_an_error(make):
    M = np.ones((3, 3))
    with pytest.raises(TypeError, match="mixed"):
        ot.sinkhorn(np.full(3, 1 / 3), make(np.full(3, 1 / 3)), make(M), 1.0)


@pytest.mark.parametrize("method", ["sinkhorn_epsilon_scaling", "greenkhorn"])
def test_pot_methods_and_several_targets_in_the_callers_library(make, method):
    rng = np.random.default_rng(1)
    M = ot.dist(rng.random((20, 2)), rng.random((15, 2)))
    a = np.full(20, 1 / 20)
    b = rng.random((15, 2))
    b /= b.sum(axis=0)
    kw = dict(method=method, stopThr=1e-10, numItermax=100000)
    ref = ot.sinkhorn(a, b[:, 0], M, 0.1, **kw)
    P = ot.sinkhorn(make(a), make(b[:, 0]), make(M), 0.1, **kw)
    kind = type(make([0.0]))
    assert type(P) is kind
    # the generic kernels against the numba ones, over hundreds of iterations: round-off apart
    assert_allclose(to_numpy(P), ref, rtol=1e-8, atol=1e-14)
    costs = ot.sinkhorn2(make(a), make(b), make(M), 0.1, **kw)
    assert type(costs) is kind and tuple(costs.shape) == (2,)
    assert_allclose(to_numpy(costs), ot.sinkhorn2(a, b, M, 0.1, **kw), rtol=1e-8)


@pytest.mark.parametrize("method", ["sns", "sinkhorn_log", "sinkhorn"])
def test_grid_cost_in_the_callers_library(make, method):
    # the histograms in the caller's library, the grid's tables NumPy: plans and costs in the caller's library
    rng = np.random.default_rng(4)
    a, b = rng.random(42), rng.random(42)
    a[:5] = 0.0
    a, b = a / a.sum(), b / b.sum()
    dense = ot.grid_cost((6, 7))
    P = ot.sinkhorn(make(a), make(b), ot.GridCost((6, 7)), 1e-2, method=method)
    cost = ot.sinkhorn2(make(a), make(b), ot.GridCost((6, 7)), 1e-2, method=method)
    kind = type(make([0.0]))
    assert type(P) is kind and type(cost) is kind
    assert_allclose(to_numpy(P), ot.sinkhorn(a, b, dense, 1e-2, method=method), rtol=1e-9, atol=1e-15)
    assert float(cost) == pytest.approx(float(ot.sinkhorn2(a, b, dense, 1e-2, method=method)), rel=1e-10)

import numpy as np
import pytest
from numpy.testing import assert_allclose

from secondorder.curvature import (
    DenseHessian,
    DiagonalFisher,
    DiagonalHessian,
    GaussNewton,
    HutchinsonDiagonal,
    NotPositiveDefiniteError,
)
from tests.conftest import rtol_for


def _check_against_dense(model, d, dtype):
    """solve and trust_step of a diagonal model equal those of the dense diag(d)."""
    dense = DenseHessian(np.diag(d.astype(np.float64)))
    dense.update(np.zeros(d.size))
    rng = np.random.default_rng(0)
    v = rng.standard_normal(d.size).astype(dtype)
    tol = rtol_for(dtype)
    shift = 0.3 + max(0.0, -float(d.min()))
    assert_allclose(model.solve(v, shift), dense.solve(v.astype(np.float64), shift), rtol=tol)
    assert_allclose(model.matvec(v), d * v, rtol=tol)
    for radius in (1e-3, 1.0, 1e3):
        assert_allclose(model.trust_step(v, radius)[0], dense.trust_step(v.astype(np.float64), radius)[0], rtol=tol * 10, atol=tol * radius)


def test_fisher_from_per_sample_gradients(dtype):
    rng = np.random.default_rng(1)
    J = rng.standard_normal((30, 8))
    model = DiagonalFisher(lambda x: J.astype(x.dtype), damp=1e-3)
    model.update(np.zeros(8, dtype=dtype), None)
    expected = (J**2).mean(axis=0) + 1e-3
    assert_allclose(model.diagonal(), expected, rtol=rtol_for(dtype))
    _check_against_dense(model, expected, dtype)
    summed = DiagonalFisher(lambda x: J, damp=0.0, scale="sum")
    summed.update(np.zeros(8))
    assert_allclose(summed.diagonal(), (J**2).sum(axis=0))


def test_fisher_running_average_of_squared_gradients():
    rng = np.random.default_rng(2)
    model = DiagonalFisher(damp=0.0, beta=0.9)
    v = np.zeros(5)
    for t in range(1, 6):
        g = rng.standard_normal(5)
        model.update(np.zeros(5), g)
        v = 0.9 * v + 0.1 * g**2
        assert_allclose(model.diagonal(), v / (1 - 0.9**t))


def test_hutchinson_is_exact_on_a_diagonal_and_unbiased_in_general():
    d = np.array([1.0, -2.0, 3.0, 4.0])
    model = HutchinsonDiagonal(lambda x, v: d * v, seed=0)
    model.update(np.zeros(4))
    assert_allclose(model.diagonal(), d)  # z * (D z) = D z^2 = D
    rng = np.random.default_rng(3)
    A = rng.standard_normal((6, 6))
    H = A + A.T
    est = HutchinsonDiagonal(lambda x, v: H @ v, n_probes=4000, seed=1)
    est.update(np.zeros(6))
    # Variance of one probe's entry i is sum_{j != i} H_ij^2; 5 sigma bound.
    sigma = np.sqrt((np.sum(H**2, axis=1) - np.diag(H) ** 2) / 4000)
    assert np.all(np.abs(est.diagonal() - np.diag(H)) <= 5 * sigma)
    assert est.nhev == 4000


def test_hutchinson_blocks_absolute_and_running_average():
    d = np.array([1.0, 3.0, -2.0, -4.0, 10.0])
    model = HutchinsonDiagonal(lambda x, v: d * v, block_size=2, absolute=True, seed=0)
    model.update(np.zeros(5))
    assert_allclose(model.diagonal(), [2.0, 2.0, 3.0, 3.0, 10.0])
    avg = HutchinsonDiagonal(lambda x, v: d * v, beta=0.5, seed=0)
    for _ in range(3):
        avg.update(np.zeros(5))
        assert_allclose(avg.diagonal(), d)  # a constant estimate stays itself after bias correction


def test_hutchinson_is_reproducible_with_a_seed():
    H = np.arange(16.0).reshape(4, 4)
    H = H + H.T
    a = HutchinsonDiagonal(lambda x, v: H @ v, seed=5)
    b = HutchinsonDiagonal(lambda x, v: H @ v, seed=5)
    a.update(np.zeros(4))
    b.update(np.zeros(4))
    assert_allclose(a.diagonal(), b.diagonal())


def test_diagonal_hessian_indefinite_solve_and_trust_step(dtype):
    d = np.array([2.0, -1.0, 0.5])
    model = DiagonalHessian(d.astype(dtype))
    model.update(np.zeros(3, dtype=dtype))
    with pytest.raises(NotPositiveDefiniteError):
        model.solve(np.ones(3, dtype=dtype))
    assert_allclose(model.solve(np.ones(3, dtype=dtype), 2.0), 1.0 / (d + 2.0), rtol=rtol_for(dtype))
    _check_against_dense(model, d.astype(dtype), dtype)


@pytest.mark.parametrize(
    "make, exc, match",
    [
        (lambda: DiagonalFisher(damp=-1.0), ValueError, "`damp` must be a non-negative"),
        (lambda: DiagonalFisher(beta=1.0), ValueError, "`beta` must be in"),
        (lambda: DiagonalFisher(jac_samples=3), TypeError, "`jac_samples` must be callable"),
        (lambda: HutchinsonDiagonal(lambda x, v: v, n_probes=0), ValueError, "`n_probes`"),
        (lambda: HutchinsonDiagonal(lambda x, v: v, damp=-0.1), ValueError, "`damp`"),
        (lambda: HutchinsonDiagonal(None), TypeError, "`hessp` must be callable"),
        (lambda: GaussNewton(), ValueError, "either `jac` or both"),
        (lambda: GaussNewton(jvp=lambda x, v: v), ValueError, "needs both"),
    ],
)
def test_bad_construction(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_fisher_bad_data():
    model = DiagonalFisher(lambda x: np.ones((3, 4)))
    model.update(np.zeros(2))
    with pytest.raises(ValueError, match=r"`jac_samples` returned an array of shape \(3, 4\)"):
        model.diagonal()
    running = DiagonalFisher()
    with pytest.raises(ValueError, match="NaN or inf"):
        running.update(np.zeros(2), np.array([np.nan, 1.0]))
    with pytest.raises(ValueError, match=r"`g` returned an array of shape"):
        running.update(np.zeros(2), np.ones(3))


@pytest.mark.parametrize("weights", [None, "vector", "matrix"])
@pytest.mark.parametrize("form", ["dense", "matrix-free"])
def test_gauss_newton_equals_dense_jtwj(form, weights):
    rng = np.random.default_rng(6)
    r, n = 15, 6
    J = rng.standard_normal((r, n))
    wv = rng.uniform(0.5, 2.0, r)
    B = rng.standard_normal((r, r))
    Wm = B @ B.T / r + np.eye(r)
    W = {None: np.eye(r), "vector": np.diag(wv), "matrix": Wm}[weights]
    wfun = {None: None, "vector": lambda x: wv, "matrix": lambda x: Wm}[weights]
    if form == "dense":
        model = GaussNewton(jac=lambda x: J, weights=wfun, damp=0.1)
    else:
        model = GaussNewton(jvp=lambda x, v: J @ v, vjp=lambda x, u: J.T @ u, weights=wfun, damp=0.1)
    model.update(np.zeros(n))
    if form == "matrix-free":
        model._model().rtol = 1e-12
    H = J.T @ W @ J + 0.1 * np.eye(n)
    v = rng.standard_normal(n)
    assert_allclose(model.matvec(v), H @ v, rtol=1e-10)
    assert_allclose(model.solve(v, 0.5), np.linalg.solve(H + 0.5 * np.eye(n), v), rtol=1e-8)
    assert model.nhev >= 1

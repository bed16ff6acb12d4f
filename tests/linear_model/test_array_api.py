"""The GLM losses built from PyTorch or array-api-strict arrays: the same
numbers as from NumPy, parameters and results in the caller's library, and
the solvers on top of them."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

import secondorder as so
from secondorder._array_api import to_numpy
from secondorder.linear_model import LogisticLoss, SoftmaxLoss
from secondorder.stochastic import minimize as stochastic_minimize


@pytest.fixture(params=["array_api_strict", pytest.param("torch", marks=pytest.mark.torch)])
def make(request):
    mod = pytest.importorskip(request.param)
    return lambda a: mod.asarray(np.array(a))


@pytest.mark.parametrize("cls", [LogisticLoss, SoftmaxLoss])
def test_loss_in_the_callers_library(make, cls):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 5))
    y = (rng.random(120) < 0.5).astype(np.int64) if cls is LogisticLoss else rng.integers(0, 3, 120)
    ref = cls(X, y, alpha=1e-2)
    loss = cls(make(X), make(y), alpha=1e-2)
    kind = type(make([0.0]))
    w0 = loss.initial_params()
    assert type(w0) is kind
    w = make(rng.standard_normal(ref.n_params) * 0.3)
    v = make(rng.standard_normal(ref.n_params))
    value, g = loss.value_and_grad(w)
    ref_value, ref_g = ref.value_and_grad(to_numpy(w))
    assert value == pytest.approx(ref_value, rel=1e-14)
    assert type(g) is kind and type(loss.hessp(w, v)) is kind and type(loss.hess(w)) is kind
    assert_allclose(to_numpy(g), ref_g, rtol=1e-13)
    assert_allclose(to_numpy(loss.hessp(w, v)), ref.hessp(to_numpy(w), to_numpy(v)), rtol=1e-13)
    res = so.minimize(loss.value_and_grad, w0, jac=True, hess=loss.curvature(), method="gns")
    ref_res = so.minimize(ref.value_and_grad, ref.initial_params(), jac=True, hess=ref.curvature(), method="gns")
    assert type(res.x) is kind
    assert_allclose(to_numpy(res.x), ref_res.x, rtol=1e-10, atol=1e-12)
    mb, ref_mb = loss.minibatch(), ref.minibatch()
    out = stochastic_minimize(mb.fun, w0, mb.data, method="sophia-g", sampled_jac=mb.sampled_jac, seed=0,
                              epochs=2, options={"lr": 1e-2})
    ref_out = stochastic_minimize(ref_mb.fun, ref.initial_params(), ref_mb.data, method="sophia-g",
                                  sampled_jac=ref_mb.sampled_jac, seed=0, epochs=2, options={"lr": 1e-2})
    assert type(out.x) is kind
    assert_allclose(to_numpy(out.x), ref_out.x, rtol=1e-12)


@pytest.mark.parametrize("cls", [LogisticLoss, SoftmaxLoss])
@pytest.mark.parametrize("kind", ["exact", "gauss-newton", "fisher", "subsampled"])
def test_curvature_kinds_in_the_callers_library(make, cls, kind, monkeypatch):
    """Each curvature kind, dense and by products, computed in the caller's
    library (no copy to NumPy after construction) equals NumPy's."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((90, 4))
    y = (rng.random(90) < 0.4).astype(np.int64) if cls is LogisticLoss else rng.integers(0, 4, 90)
    sw = rng.random(90) + 0.5
    ref = cls(X, y, alpha=1e-2, sample_weight=sw)
    loss = cls(make(X), make(y), alpha=1e-2, sample_weight=make(sw))
    assert loss._k.__name__ == "fallback" and loss.xp is not np

    def refuse(a):
        raise AssertionError("a copy to NumPy")

    monkeypatch.setattr("secondorder.linear_model._base.to_numpy", refuse)
    monkeypatch.setattr("secondorder._array_api.to_numpy", refuse)
    w = rng.standard_normal(ref.n_params) * 0.3
    v = rng.standard_normal(ref.n_params)
    kind_type = type(make([0.0]))
    for solver in ("dense", "cg"):
        model, ref_model = loss.curvature(kind, solver=solver), ref.curvature(kind, solver=solver)
        model.update(make(w)), ref_model.update(w)
        out = model.matvec(make(v))
        assert type(out) is kind_type
        assert_allclose(to_numpy(out), ref_model.matvec(v), rtol=1e-12, atol=1e-14)
        assert_allclose(to_numpy(model.solve(make(v), 0.5)), ref_model.solve(v, 0.5), rtol=1e-7, atol=1e-10)


def test_float32_in_the_callers_library(make):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((60, 3)).astype(np.float32)
    y = rng.integers(0, 3, 60)
    ref = SoftmaxLoss(X, y, alpha=1e-1)
    loss = SoftmaxLoss(make(X), make(y), alpha=1e-1)
    w0 = loss.initial_params()
    assert str(w0.dtype).endswith("float32")
    res = so.minimize(loss.value_and_grad, w0, jac=True, hess=loss.curvature(), method="trust-region")
    ref_res = so.minimize(ref.value_and_grad, ref.initial_params(), jac=True, hess=ref.curvature(),
                          method="trust-region")
    assert str(res.x.dtype).endswith("float32")
    assert_allclose(to_numpy(res.x), ref_res.x, rtol=1e-4, atol=1e-5)


def test_parameters_of_another_library_are_an_error(make):
    loss = LogisticLoss(make(np.eye(3)), make(np.array([0, 1, 0])))
    with pytest.raises(TypeError, match="`w` must be an array of X's library"):
        loss.value(np.zeros(loss.n_params))


@pytest.mark.parametrize("solver", ["gns", "trust-region", "lbfgs"])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_estimators_in_the_callers_library(make, solver, n_classes):
    """Fitted on PyTorch or array-api-strict arrays, the estimators keep
    their coefficients and answers in that library, equal to NumPy's."""
    from secondorder.linear_model import LogisticRegression, SoftmaxRegression

    rng = np.random.default_rng(3)
    X = rng.standard_normal((150, 4))
    y = rng.integers(0, n_classes, 150) * 10  # labels that are not class indices
    Xt = rng.standard_normal((20, 4))
    kind = type(make([0.0]))
    for cls in (LogisticRegression, SoftmaxRegression):
        ref = cls(C=0.5, solver=solver, tol=1e-10).fit(X, y)
        est = cls(C=0.5, solver=solver, tol=1e-10).fit(make(X), make(y))
        for name in ("coef_", "intercept_", "classes_"):
            assert type(getattr(est, name)) is kind
            assert_allclose(to_numpy(getattr(est, name)), getattr(ref, name), rtol=1e-6, atol=1e-8)
        for method in ("decision_function", "predict_proba", "predict_log_proba", "predict"):
            out = getattr(est, method)(make(Xt))
            assert type(out) is kind
            assert_allclose(to_numpy(out), getattr(ref, method)(Xt), rtol=1e-6, atol=1e-8)


def test_text_labels_with_arrays_of_another_library(make):
    from secondorder.linear_model import LogisticRegression

    rng = np.random.default_rng(4)
    X = rng.standard_normal((80, 3))
    y = np.where(X[:, 0] > 0, "yes", "no")
    est = LogisticRegression().fit(make(X), y)
    assert list(est.classes_) == ["no", "yes"]
    assert_allclose(np.mean(est.predict(make(X)) == y), LogisticRegression().fit(X, y).score(X, y))
    with pytest.raises(ValueError, match="features"):
        est.predict(make(X[:, :2]))

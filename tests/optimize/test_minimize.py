"""The scipy-shaped front door: arguments, callbacks, options, bad input."""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.optimize import OptimizeResult, OptimizeWarning, rosen, rosen_der, rosen_hess

import secondorder as so

X0 = np.array([-1.2, 1.0])


def test_result_fields_match_scipy():
    res = so.minimize(rosen, X0, jac=rosen_der, hess=rosen_hess)
    assert isinstance(res, OptimizeResult)
    for key in ("x", "fun", "jac", "nit", "nfev", "njev", "nhev", "status", "success", "message", "nfact", "gamma"):
        assert key in res
    assert res.success and res.status == 0
    assert res.message == "Optimization terminated successfully."


def test_x0_is_not_modified_and_user_writes_do_not_leak():
    x0 = X0.copy()

    def fun(x):
        val = rosen(x)
        x[:] = 1e6  # a careless user function
        return val

    res = so.minimize(fun, x0, jac=rosen_der, hess=rosen_hess, tol=1e-10)
    assert_allclose(x0, X0)
    assert res.success
    assert_allclose(res.x, 1.0, atol=1e-8)


def test_x0_list_int_and_2d_accepted():
    res = so.minimize(lambda x: np.sum((x - 1) ** 2), [[0, 3]], jac=lambda x: 2 * (x - 1), hess=lambda x: 2 * np.eye(2))
    assert res.x.shape == (2,) and res.x.dtype == np.float64
    assert_allclose(res.x, 1.0, atol=1e-5)  # the default gtol, 1e-5, bounds |x - 1| by 5e-6 here


def test_tol_maps_to_gtol():
    loose = so.minimize(rosen, X0, jac=rosen_der, hess=rosen_hess, tol=1e-2)
    tight = so.minimize(rosen, X0, jac=rosen_der, hess=rosen_hess, tol=1e-12)
    assert np.linalg.norm(loose.jac) <= 1e-2 and np.linalg.norm(tight.jac) <= 1e-12
    assert loose.nit < tight.nit
    # options win over tol, as in scipy
    res = so.minimize(rosen, X0, jac=rosen_der, hess=rosen_hess, tol=1e-12, options={"gtol": 1e-2})
    assert res.nit == loose.nit


def test_callbacks_new_and_legacy():
    seen_new, seen_old = [], []

    def new_style(intermediate_result):
        seen_new.append(intermediate_result)

    res = so.minimize(rosen, X0, jac=rosen_der, hess=rosen_hess, callback=new_style)
    assert len(seen_new) == res.nit
    assert isinstance(seen_new[0], OptimizeResult)
    assert {"x", "fun", "jac", "nit", "gamma"} <= set(seen_new[0])
    assert_allclose(seen_new[-1].x, res.x)
    so.minimize(rosen, X0, jac=rosen_der, hess=rosen_hess, callback=lambda xk: seen_old.append(xk))
    assert len(seen_old) == res.nit and isinstance(seen_old[0], np.ndarray)


def test_callback_stop_iteration_gives_status_99():
    def stop_at_3(intermediate_result):
        if intermediate_result.nit == 3:
            raise StopIteration

    res = so.minimize(rosen, X0, jac=rosen_der, hess=rosen_hess, callback=stop_at_3)
    assert res.status == 99 and not res.success and res.nit == 3
    assert res.message.startswith("`callback` raised `StopIteration`")


def test_unknown_option_warns():
    with pytest.warns(OptimizeWarning, match="Unknown solver options: frobnicate"):
        so.minimize(rosen, X0, jac=rosen_der, hess=rosen_hess, options={"frobnicate": 1})


def test_hessp_ignored_when_hess_given():
    with pytest.warns(RuntimeWarning, match="hessp"):
        so.minimize(rosen, X0, jac=rosen_der, hess=rosen_hess, hessp=lambda x, p: p)


def test_disp_prints_iteration_table(capsys):
    so.minimize(rosen, X0, jac=rosen_der, hess=rosen_hess, options={"disp": True})
    out = capsys.readouterr().out
    assert "gamma" in out and "Optimization terminated successfully." in out
    assert len(out.splitlines()) > 10


def test_method_is_case_insensitive_and_callable_method_is_called():
    so.minimize(rosen, X0, jac=rosen_der, hess=rosen_hess, method="GNS")

    def custom(fun, x0, args, jac, hess, hessp, callback, **options):
        return OptimizeResult(x=np.asarray(x0), custom=options)

    res = so.minimize(rosen, X0, method=custom, options={"a": 1})
    assert res.custom == {"a": 1}


def test_args_are_passed_everywhere():
    def fun(x, a):
        return a * np.sum(x**2)

    res = so.minimize(fun, [1.0, 2.0], args=3.0, tol=1e-12, jac=lambda x, a: 2 * a * x, hess=lambda x, a: 2 * a * np.eye(2))
    assert_allclose(res.x, 0.0, atol=1e-10)
    res = so.minimize(fun, [1.0, 2.0], args=(3.0,), tol=1e-12, jac=lambda x, a: 2 * a * x, hessp=lambda x, p, a: 2 * a * p)
    assert_allclose(res.x, 0.0, atol=1e-10)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"x0": [np.nan, 1.0]}, ValueError, "`x0` must be finite"),
        ({"x0": [np.inf, 1.0]}, ValueError, "`x0` must be finite"),
        ({"x0": ["a", "b"]}, TypeError, "`x0` must be an array of real numbers"),
        ({"jac": None}, ValueError, "`jac` is required"),
        ({"jac": "2-point"}, ValueError, "finite differences"),
        ({"jac": lambda x: np.ones(3)}, ValueError, r"`jac` returned an array of shape \(3,\)"),
        ({"jac": lambda x: np.ones((2, 1))}, ValueError, r"`jac` returned an array of shape \(2, 1\)"),
        ({"hess": None, "hessp": lambda x, p: np.ones(5)}, ValueError, "`hessp` returned an array of shape"),
        ({"hess": lambda x: np.eye(3)}, ValueError, "`hess` returned an array of shape"),
        ({"hess": None}, ValueError, "needs curvature"),
        ({"method": "bfgs"}, ValueError, "Unknown method 'bfgs'"),
        ({"method": 3}, TypeError, "`method` must be a string"),
        ({"fun": lambda x: np.nan}, ValueError, "`fun` returned nan at x0"),
        ({"fun": lambda x: np.ones(2)}, ValueError, "`fun` must return a scalar"),
        ({"fun": "rosen"}, TypeError, "`fun` must be callable"),
        ({"jac": lambda x: np.array([np.nan, 0.0])}, ValueError, "`jac` returned NaN or inf at x0"),
        ({"options": {"gamma0": -1.0}}, ValueError, "`gamma0` must be a positive"),
        ({"options": {"max_trials": 0}}, ValueError, "`max_trials` must be an integer >= 1"),
        ({"options": {"maxiter": 2.5}}, TypeError, "`maxiter` must be an integer"),
        ({"callback": 3}, TypeError, "`callback` must be callable"),
    ],
)
def test_bad_input_is_named(kwargs, exc, match):
    call = {"fun": rosen, "x0": X0, "jac": rosen_der, "hess": rosen_hess}
    call.update(kwargs)
    with pytest.raises(exc, match=match):
        so.minimize(**call)


def test_fun_returning_numpy_scalar_and_size_one_array():
    res = so.minimize(lambda x: np.array([np.sum(x**2)]), [1.0, 1.0], jac=lambda x: 2 * x, hessp=lambda x, p: 2 * p)
    assert res.success and isinstance(res.fun, float)


@pytest.mark.gpu
def test_gns_on_cupy_arrays_matches_numpy():
    import cupy as cp

    from secondorder.optimize import problems

    p = problems.logistic_regression(500, 20)
    import numpy

    def to_cp(f):
        return lambda *a: cp.asarray(f(*[cp.asnumpy(v) for v in a]))

    res_cpu = so.minimize(p.fun, p.x0, jac=p.jac, hess=p.hess, tol=1e-10)
    res_gpu = so.minimize(lambda x: float(p.fun(cp.asnumpy(x))), cp.asarray(p.x0), jac=to_cp(p.jac), hess=to_cp(p.hess), tol=1e-10)
    assert isinstance(res_gpu.x, cp.ndarray)
    numpy.testing.assert_allclose(cp.asnumpy(res_gpu.x), res_cpu.x, rtol=1e-8)

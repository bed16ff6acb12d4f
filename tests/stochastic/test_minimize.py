"""The minibatch driver: training softmax regression on digits, NumPy and
array-api-strict inputs, counts, errors."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

import secondorder as so
from secondorder.linear_model import SoftmaxLoss
from secondorder.stochastic import METHODS, NonFiniteStepError, minimize

pytest.importorskip("sklearn")
from sklearn.datasets import load_digits  # noqa: E402

# Learning rates from a grid of 3e-3 .. 1 (cosine schedule, batch 64).
TUNED = {
    "adamw": (0.03, 15, {"weight_decay": 0.0}),
    "adahessian": (0.5, 30, {}),
    "sophia-g": (3e-3, 15, {"weight_decay": 0.0}),
    "sophia-h": (0.03, 15, {"weight_decay": 0.0}),
    "soaa": (0.03, 15, {}),
    "muon": (0.03, 15, {"weight_decay": 0.0}),
    "namo": (0.1, 15, {"weight_decay": 0.0}),
    "namo-d": (0.1, 15, {"weight_decay": 0.0}),
    "mfac": (0.1, 15, {"ngrads": 32, "damp": 0.1}),
}


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = (X - X.mean(axis=0)) / np.maximum(X.std(axis=0), 1e-12)
    loss = SoftmaxLoss(X, y, alpha=1e-2)
    ref = so.minimize(loss.value_and_grad, loss.initial_params(), jac=True, hess=loss.curvature(), method="gns")
    return X, y, loss, ref.fun


def _options(method, dtype=None):
    lr, epochs, extra = TUNED[method]
    opts = {"lr": lr, "schedule": "cosine", **extra}
    if method in ("muon", "namo", "namo-d"):
        opts["shapes"] = [(10, 64), (10,)]
    return opts, epochs


@pytest.mark.parametrize("method", sorted(METHODS))
def test_trains_digits_to_the_optimum(digits, method):
    X, y, loss, optimum = digits
    mb = loss.minibatch()
    opts, epochs = _options(method)
    res = minimize(
        mb.fun, loss.initial_params(), mb.data, method=method, hessp=mb.hessp, sampled_jac=mb.sampled_jac,
        batch_size=64, epochs=epochs, seed=0, options=opts,
    )
    assert res.success and res.nit == epochs * 29
    assert loss.value(res.x) < 1.05 * optimum, loss.value(res.x) / optimum
    assert res.loss_history.shape == (res.nit,)
    assert res.nfev == res.njev == res.nit
    needs_hvp = method in ("adahessian", "sophia-h")
    assert res.nhvp == (res.nit if method == "adahessian" else (res.nit - 1) // 10 if needs_hvp else 0)
    assert res.nsjev == ((res.nit - 1) // 10 if method == "sophia-g" else 0)


def _xp_softmax(xp, X, Y, alpha, K):
    """Softmax regression written with array-API functions only."""
    n, d = X.shape

    def fun(w, batch):
        Xb, Yb = batch
        W = xp.reshape(w[: K * d], (K, d))
        b = w[K * d :]
        Z = Xb @ xp.matrix_transpose(W) + b
        Z = Z - xp.max(Z, axis=1, keepdims=True)
        E = xp.exp(Z)
        S = xp.sum(E, axis=1, keepdims=True)
        P = E / S
        nb = Xb.shape[0]
        value = xp.sum(xp.log(S)) / nb - xp.sum(Z * Yb) / nb + 0.5 * alpha * xp.sum(W * W)
        R = (P - Yb) / nb
        gW = xp.matrix_transpose(R) @ Xb + alpha * W
        return float(value), xp.concat([xp.reshape(gW, (-1,)), xp.sum(R, axis=0)])

    def hessp(w, v, batch):
        Xb, _ = batch
        W = xp.reshape(w[: K * d], (K, d))
        Z = Xb @ xp.matrix_transpose(W) + w[K * d :]
        Z = Z - xp.max(Z, axis=1, keepdims=True)
        P = xp.exp(Z) / xp.sum(xp.exp(Z), axis=1, keepdims=True)
        V = xp.reshape(v[: K * d], (K, d))
        U = Xb @ xp.matrix_transpose(V) + v[K * d :]
        Q = P * (U - xp.sum(P * U, axis=1, keepdims=True)) / Xb.shape[0]
        return xp.concat([xp.reshape(xp.matrix_transpose(Q) @ Xb + alpha * V, (-1,)), xp.sum(Q, axis=0)])

    def sampled_jac(w, batch, rng):
        Xb, _ = batch
        W = xp.reshape(w[: K * d], (K, d))
        Z = Xb @ xp.matrix_transpose(W) + w[K * d :]
        Z = Z - xp.max(Z, axis=1, keepdims=True)
        P = xp.exp(Z) / xp.sum(xp.exp(Z), axis=1, keepdims=True)
        u = xp.asarray(rng.random((Xb.shape[0], 1)))
        labels = xp.sum(xp.astype(xp.cumulative_sum(P, axis=1) < u, xp.int64), axis=1)
        onehot = xp.astype(labels[:, None] == xp.arange(K)[None, :], P.dtype)
        R = (P - onehot) / Xb.shape[0]
        return xp.concat([xp.reshape(xp.matrix_transpose(R) @ Xb, (-1,)), xp.sum(R, axis=0)])

    return fun, hessp, sampled_jac


@pytest.mark.parametrize("method", sorted(METHODS))
def test_array_api_strict_gives_the_numpy_result(digits, method):
    xps = pytest.importorskip("array_api_strict")
    X, y, loss, optimum = digits
    K = 10
    Y = np.eye(K)[y]
    opts, epochs = _options(method)
    results = {}
    for name, xp in (("numpy", np), ("strict", xps)):
        from array_api_compat import array_namespace

        Xa, Ya = xp.asarray(X), xp.asarray(Y)
        fun, hessp, sampled_jac = _xp_softmax(array_namespace(Xa), Xa, Ya, 1e-2, K)
        res = minimize(
            fun, xp.zeros(K * 65, dtype=xp.float64), (Xa, Ya), method=method, hessp=hessp, sampled_jac=sampled_jac,
            batch_size=64, epochs=epochs, seed=0, options=dict(opts),
        )
        assert type(res.x) is type(xp.asarray(0.0))
        results[name] = np.asarray(res.x)
    assert_allclose(results["strict"], results["numpy"], rtol=1e-8, atol=1e-10)
    assert loss.value(results["strict"]) < 1.05 * optimum


def test_float32_and_counts():
    rng = np.random.default_rng(0)
    A, b = rng.standard_normal((100, 4)).astype(np.float32), rng.standard_normal(100).astype(np.float32)

    def fun(x, batch):
        Ab, bb = batch
        r = Ab @ x - bb
        return float(0.5 * np.mean(r * r)), Ab.T @ r / len(bb)

    res = minimize(fun, np.zeros(4, np.float32), (A, b), method="soaa", batch_size=10, epochs=3)
    assert res.x.dtype == np.float32 and res.nit == 30 and res.method.total_steps == 30
    res = minimize(fun, np.zeros(4, np.float32), (A, b), batch_size=10, maxiter=7)
    assert res.nit == 7


@pytest.mark.parametrize("method, bad", [("adamw", np.nan), ("mfac", np.nan), ("sophia-h", np.inf), ("namo", np.inf)])
def test_nonfinite_steps_are_skipped_or_raised(method, bad):
    calls = {"n": 0}

    def fun(x, batch):
        calls["n"] += 1
        g = np.full(3, bad) if calls["n"] == 3 else x - 1.0
        return 0.5 * float(np.sum((x - 1) ** 2)), g

    data = np.zeros((50, 1))
    with pytest.warns(RuntimeWarning, match="1 of 10 steps were skipped"):
        res = minimize(fun, np.zeros(3), data, method=method, hessp=lambda x, v, b: v, batch_size=5,
                       options={"lr": 0.1})
    assert res.nskip == 1 and np.all(np.isfinite(res.x))
    assert np.all(np.isfinite(res.loss_history))  # the state was not poisoned: later steps are finite
    calls["n"] = 0
    with pytest.raises(NonFiniteStepError, match="step 3"):
        minimize(fun, np.zeros(3), data, batch_size=5, options={"on_nonfinite": "raise"})


def test_callback_and_iterable_batches():
    batches = [np.full((4, 1), float(i)) for i in range(5)]

    def fun(x, batch):
        return float(np.sum(x * x)), 2 * x

    seen = []

    def callback(intermediate_result):
        seen.append(intermediate_result.nit)
        if intermediate_result.nit == 3:
            raise StopIteration

    res = minimize(fun, np.ones(2), batches, callback=callback, epochs=2)
    assert res.status == 99 and not res.success and seen == [1, 2, 3]
    res = minimize(fun, np.ones(2), batches, epochs=2)
    assert res.nit == 10


def test_bad_input():
    def fun(x, batch):
        return 0.0, x

    data = np.zeros((8, 1))
    with pytest.raises(ValueError, match="needs Hessian-vector products"):
        minimize(fun, np.zeros(2), data, method="adahessian")
    with pytest.raises(ValueError, match="sampled_jac"):
        minimize(fun, np.zeros(2), data, method="sophia-g")
    with pytest.raises(ValueError, match="`method` must be one of"):
        minimize(fun, np.zeros(2), data, method="lbfgs")
    with pytest.raises(TypeError, match="unknown option"):
        minimize(fun, np.zeros(2), data, options={"learning_rate": 1.0})
    with pytest.raises(ValueError, match="shape"):
        minimize(lambda x, b: (0.0, np.zeros(3)), np.zeros(2), data)
    with pytest.raises(ValueError, match="same length"):
        minimize(fun, np.zeros(2), (np.zeros((8, 1)), np.zeros(7)))
    with pytest.raises(ValueError, match="finite"):
        minimize(fun, np.array([np.nan, 0.0]), data)
    with pytest.raises(TypeError, match="real scalar"):
        minimize(lambda x, b: ("a", x), np.zeros(2), data)
    with pytest.raises(ValueError, match="add up"):
        minimize(fun, np.zeros(4), data, options={"shapes": [(3,)]})
    x0 = np.zeros(2)
    minimize(lambda x, b: (0.0, np.ones(2)), x0, data)
    assert np.all(x0 == 0)

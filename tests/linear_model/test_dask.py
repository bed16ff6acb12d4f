"""Logistic and softmax regression on a Dask cluster of worker processes:
the same coefficients as in memory, one task per partition per round, lazy
predictions, and a fit that survives a lost worker."""

import os
import signal

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

from secondorder import minimize  # noqa: E402
from secondorder.linear_model import LogisticLoss, LogisticRegression, SoftmaxLoss, SoftmaxRegression  # noqa: E402
from secondorder.linear_model import DaskLogisticLoss, DaskSoftmaxLoss, LostPartitionError  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def _data(n=3000, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * rng.uniform(0.5, 3.0, d)
    y = (X[:, 0] - X[:, 1] + rng.standard_normal(n) > 0).astype(np.int64)
    return X, y


@pytest.mark.parametrize("sparse", [False, True])
def test_losses_equal_the_in_memory_losses(client, sparse):
    X, y = _data()
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, X.shape[0])
    sw = rng.random(X.shape[0]) + 0.5
    Xm = sp.csr_matrix(np.where(np.abs(X) > 1.0, X, 0.0)) if sparse else X
    Xd = da.from_array(Xm, chunks=(700, X.shape[1]), asarray=False) if sparse else da.from_array(X, chunks=(700, 6))
    for dask_loss, ref in (
        (DaskLogisticLoss(Xd, y, alpha=1e-2, sample_weight=sw), LogisticLoss(Xm, y, alpha=1e-2, sample_weight=sw)),
        (DaskSoftmaxLoss(Xd, labels, n_classes=3, alpha=1e-2), SoftmaxLoss(Xm, labels, alpha=1e-2)),
    ):
        assert dask_loss.n_partitions == 5
        w = rng.standard_normal(ref.n_params) * 0.3
        v = rng.standard_normal(ref.n_params)
        rounds = dask_loss.n_rounds
        value, g = dask_loss.value_and_grad(w)
        ref_value, ref_g = ref.value_and_grad(w)
        assert value == pytest.approx(ref_value, rel=1e-13)
        assert_allclose(g, ref_g, rtol=1e-12, atol=1e-15)
        assert_allclose(dask_loss.hessp(w, v), ref.hessp(w, v), rtol=1e-12, atol=1e-15)
        # a gradient and a product at one point: two rounds, each one task per partition
        assert dask_loss.n_rounds == rounds + 2 and dask_loss.n_tasks % dask_loss.n_partitions == 0
        assert_allclose(dask_loss.hess(w), ref.hess(w), rtol=1e-11, atol=1e-14)
        # the diagonal at a new point comes in its gradient's round; at an evaluated point it takes one of its own
        rounds = dask_loss.n_rounds
        assert_allclose(dask_loss.hessian_diagonal(w + 0.1), ref.hessian_diagonal(w + 0.1), rtol=1e-12, atol=1e-15)
        assert_allclose(dask_loss.hessian_diagonal(w), ref.hessian_diagonal(w), rtol=1e-12, atol=1e-15)
        assert dask_loss.n_rounds == rounds + 2
        for kind in ("gauss-newton", "fisher"):
            model, ref_model = dask_loss.curvature(kind, solver="cg"), ref.curvature(kind, solver="cg")
            model.update(w), ref_model.update(w)
            assert_allclose(model.matvec(v), ref_model.matvec(v), rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("solver", ["auto", "gns", "trust-region", "lbfgs"])
def test_estimators_equal_the_in_memory_fit_and_scikit_learn(client, solver):
    from sklearn.linear_model import LogisticRegression as SkLogisticRegression

    X, y = _data(seed=2)
    rng = np.random.default_rng(3)
    labels = np.array(["a", "b", "c"])[rng.integers(0, 3, X.shape[0])]
    Xd = da.from_array(X, chunks=(800, 6))
    for cls, target in ((LogisticRegression, y), (SoftmaxRegression, labels)):
        est = cls(C=0.5, solver=solver, tol=1e-11).fit(Xd, da.from_array(target, chunks=800))
        ref = cls(C=0.5, solver=solver, tol=1e-11).fit(X, target)
        # L-BFGS-B stops on its relative decrease of f, where round-off of the sums (added in another order)
        # moves the last iterate by ~1e-8; the Newton solvers converge far below that
        tol = 1e-7 if solver == "lbfgs" else 1e-10
        if solver == "auto":
            # on a cluster, few parameters: Newton on the dense matrix from the start (in memory: L-BFGS first)
            assert est.solver_ == "trust-region" and est.n_rounds_ <= 12
            tol = 1e-8
        assert_allclose(est.coef_, ref.coef_, rtol=tol, atol=tol)
        assert_allclose(est.intercept_, ref.intercept_, rtol=tol, atol=tol)
        assert list(est.classes_) == list(ref.classes_)
        sk = SkLogisticRegression(C=0.5, tol=1e-12, max_iter=10000).fit(X, target)
        assert_allclose(est.coef_, sk.coef_.reshape(est.coef_.shape) - (sk.coef_.mean(0) if cls is SoftmaxRegression else 0), atol=1e-6)
        # predictions stay lazy and equal the in-memory ones
        for method in ("decision_function", "predict_proba", "predict_log_proba", "predict"):
            out = getattr(est, method)(Xd)
            assert isinstance(out, da.Array), method
            expected = getattr(ref, method)(X)
            if method == "predict":
                assert (out.compute() == expected).all()
            else:
                assert_allclose(out.compute(), expected, rtol=100 * tol, atol=100 * tol)


def test_auto_on_a_cluster_is_dense_newton_up_to_its_limits(client):
    # a round costs about the same whatever it computes: Newton on the dense matrix from the start (six rounds
    # or so) for the binary loss with up to 128 parameters on dense X; L-BFGS first beyond, and for softmax
    # beyond 32 parameters, judged on the rate of its first five iterations
    rng = np.random.default_rng(9)
    X = rng.standard_normal((4000, 60)) * np.logspace(0, 1, 60)
    y = (X @ (rng.standard_normal(60) / np.logspace(0, 1, 60)) + rng.standard_normal(4000) > 0).astype(int)
    Xd = da.from_array(X, chunks=(1000, 60))
    binary = LogisticRegression(C=1.0, tol=1e-9).fit(Xd, y)
    assert binary.solver_ == "trust-region" and binary.n_rounds_ <= 14
    labels = rng.integers(0, 3, 4000)
    softmax = SoftmaxRegression(C=1.0, tol=1e-9).fit(Xd, labels)
    assert softmax.solver_.startswith("lbfgs")
    for est, target in ((binary, y), (softmax, labels)):
        ref = type(est)(C=1.0, tol=1e-9).fit(X, target)
        assert_allclose(est.coef_, ref.coef_, rtol=1e-6, atol=1e-7)


def test_newton_phase_on_a_cluster_asks_for_the_matrix_once(client, monkeypatch):
    # Beyond 128 parameters the Newton phase follows L-BFGS; its dense matrix costs several gradients' rounds, so
    # it is computed at the phase's first point and reused while the gradient contracts: later rounds compute
    # the gradient alone. The coefficients equal the in-memory fit's.
    from secondorder.linear_model import _dask

    rng = np.random.default_rng(4)
    n, d = 6000, 150
    X = (rng.standard_normal((n, d)) + 0.9 * rng.standard_normal((n, 1))) * np.logspace(0, 1, d)
    y = (X @ (rng.standard_normal(d) / np.logspace(0, 1, d) / np.sqrt(d)) + rng.standard_normal(n) > 0).astype(int)
    asked = []
    round_ = _dask._DaskGLM._round

    def spy(self, func, **kwargs):
        asked.append(func.__name__ == "_matrix_part" or kwargs.get("matrix") is not None)
        return round_(self, func, **kwargs)

    monkeypatch.setattr(_dask._DaskGLM, "_round", spy)
    est = LogisticRegression(C=1e4, tol=1e-9).fit(da.from_array(X, chunks=(1500, d)), y)
    monkeypatch.undo()
    assert est.solver_ == "lbfgs+trust-region"
    newton = asked[asked.index(True):]
    assert sum(newton) == 1 and len(newton) >= 2
    ref = LogisticRegression(C=1e4, tol=1e-9).fit(X, y)
    assert_allclose(est.coef_, ref.coef_, rtol=1e-6, atol=1e-7)


def test_rounds_run_where_the_partitions_are(client):
    # Neither the scheduler's placement of "root-ish" task groups (the rounds' tasks share one) nor its work
    # stealing may copy a partition's rows to another worker: every round's task runs where its partition is.
    X, y = _data(n=40000, d=20, seed=8)
    Xd = da.from_array(X, chunks=(10000, 20))
    with distributed.get_task_stream(client) as stream:
        est = LogisticRegression(C=1.0, solver="lbfgs", tol=1e-10).fit(Xd, y)
    rounds = [t for t in stream.data if "_part-" in t["key"] and not t["key"].startswith("_make_part")]
    assert est.n_rounds_ >= 5 and len(rounds) == 4 * est.n_rounds_
    assert all(ss["action"] != "transfer" for t in rounds for ss in t["startstops"])
    assert len({t["worker"] for t in rounds}) == 2


def test_dataframes_sparse_chunks_and_weights(client):
    dd = pytest.importorskip("dask.dataframe")
    pd = pytest.importorskip("pandas")
    X, y = _data(seed=4)
    sw = np.random.default_rng(5).random(X.shape[0])
    df = dd.from_pandas(pd.DataFrame(X), npartitions=4)
    est = LogisticRegression(tol=1e-11, class_weight="balanced").fit(df, dd.from_pandas(pd.Series(y), npartitions=4),
                                                                      sample_weight=sw)
    ref = LogisticRegression(tol=1e-11, class_weight="balanced").fit(X, y, sample_weight=sw)
    assert_allclose(est.coef_, ref.coef_, rtol=1e-10, atol=1e-10)
    assert (est.predict(df).compute() == ref.predict(X)).all()
    Xs = sp.random(2000, 40, density=0.1, random_state=0, format="csr")
    ys = (np.asarray(Xs.sum(axis=1)).ravel() > 0.5 * Xs.sum() / 2000).astype(int)
    est = LogisticRegression(tol=1e-12).fit(da.from_array(Xs, chunks=(500, 40), asarray=False), ys)
    ref = LogisticRegression(tol=1e-12).fit(Xs, ys)
    assert_allclose(est.coef_, ref.coef_, rtol=1e-10, atol=1e-10)


def _kill_a_worker_at(client, futures, iteration, every=False):
    """A callback that kills (SIGKILL) a worker holding some of
    ``futures`` (or every worker) at the given iteration."""
    pids = client.run(os.getpid)
    state = {"nit": 0, "killed": None}

    def callback(xk):
        state["nit"] += 1
        if state["nit"] == iteration:
            holders = client.who_has(futures)
            address = next(iter(next(a for a in holders.values() if a)))
            state["killed"] = address
            for victim in pids if every else [address]:
                os.kill(pids[victim], signal.SIGKILL)

    return callback, state


def test_a_worker_killed_mid_fit_leaves_the_result_bitwise_equal(client):
    X, y = _data(n=4000, seed=6)
    Xd = da.from_array(X, chunks=(1000, 6))
    loss = DaskLogisticLoss(Xd, y, alpha=1e-3)
    ref = minimize(loss.value_and_grad, loss.initial_params(), jac=True, hess=loss.curvature(), method="gns")
    callback, state = _kill_a_worker_at(client, loss._parts, 2)
    res = minimize(loss.value_and_grad, loss.initial_params(), jac=True, hess=loss.curvature(), method="gns",
                   callback=callback)
    assert state["killed"] is not None and res.success
    np.testing.assert_array_equal(res.x, ref.x)
    client.wait_for_workers(2, timeout=60)


def test_data_without_lineage_lost_with_a_worker_is_a_clear_error(client):
    X, y = _data(n=2000, seed=7)
    blocks = [X[i : i + 500] for i in range(0, 2000, 500)]
    holder = sorted(client.scheduler_info()["workers"])[0]
    futures = client.scatter(blocks, workers=[holder])  # all on one worker: losing it loses them
    Xd = da.concatenate([da.from_delayed(f, shape=b.shape, dtype=b.dtype) for f, b in zip(futures, blocks)])
    loss = DaskLogisticLoss(Xd, y, alpha=1e-3)
    # every worker: no copy of the scattered blocks survives anywhere
    callback, state = _kill_a_worker_at(client, futures, 1, every=True)
    with pytest.raises(LostPartitionError, match="scattered"):
        minimize(loss.value_and_grad, loss.initial_params(), jac=True, hess=loss.curvature(), method="gns",
                 callback=callback)
    client.wait_for_workers(2, timeout=60)

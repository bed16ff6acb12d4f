"""``python -m secondorder bench dask``: logistic regression on a local Dask
cluster of worker processes, secondorder's estimators against dask-ml's
``LogisticRegression`` (newton and lbfgs), on the same cluster and the same
persisted data.

dask-ml standardises ``X`` inside its solvers and its newton solver drops
the penalty, so the two optimise the same objective only without an
effective penalty: the runs use a large ``C`` on data that are not
separable, and every row reports its distance to scikit-learn's
coefficients on the gathered data.
"""

import time
import warnings

import numpy as np

__all__ = ["dask_cluster", "dask_problem", "run_dask", "bench_dask", "METHODS", "PROBLEMS"]

METHODS = ("so:auto", "so:gns", "so:trust-region", "so:lbfgs", "dask-ml:newton", "dask-ml:lbfgs")


def dask_cluster(n_workers=2):
    """A local cluster of worker processes (one thread each) and its client."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None)
    return cluster, Client(cluster)


# The problems of the Dask guide's tables: (n, d, partitions, correlated).
PROBLEMS = (
    (200_000, 20, 8, False),
    (50_000, 50, 4, False),
    (1_000_000, 20, 8, False),
    (1_000_000, 10, 16, False),
    (200_000, 40, 8, True),
    (100_000, 100, 8, True),
    (100_000, 200, 8, True),
)


def dask_problem(client, n=200_000, d=20, partitions=8, seed=0, correlated=False):
    """``(X, y, Xd, yd)``: a binary problem generated on the workers (so it
    has lineage and never travels in the task graph) and persisted there in
    ``partitions`` row blocks, and the same data gathered into memory for
    scikit-learn.  Independent standard features, or, ``correlated``, every
    feature sharing 0.9 of the first and scales spread over 10x."""
    import dask.array as da

    rows = -(-n // partitions)
    rng = da.random.default_rng(seed)
    Xd = rng.standard_normal((n, d), chunks=(rows, d))
    beta = np.random.default_rng(seed).standard_normal(d) / np.sqrt(d)
    if correlated:
        scales = np.logspace(0, 1, d)
        Xd = (Xd + 0.9 * Xd[:, :1]) * scales
        beta = beta / scales
    yd = (Xd @ beta + rng.standard_normal(n, chunks=rows) > 0).astype(np.int64)
    Xd, yd = client.persist([Xd, yd])
    X, y = client.compute([Xd, yd], sync=True)
    return np.asarray(X), np.asarray(y), Xd, yd


def run_dask(method, Xd, yd, C=1e6, tol=1e-8):
    """Fit with ``method``; returns ``(coef, intercept, seconds, rounds)``."""
    kind, solver = method.split(":")
    t0 = time.perf_counter()
    if kind == "so":
        from secondorder.linear_model import LogisticRegression

        est = LogisticRegression(C=C, solver=solver, tol=tol, max_iter=1000).fit(Xd, yd)
        rounds = est.n_rounds_
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from dask_ml.linear_model import LogisticRegression

            est = LogisticRegression(C=C, solver=solver, tol=tol, max_iter=1000).fit(Xd, yd)
        rounds = None
    seconds = time.perf_counter() - t0
    return np.ravel(est.coef_), np.ravel(est.intercept_), seconds, rounds


def _has_dask_ml():
    try:
        import dask_ml  # noqa: F401
    except ImportError:
        return False
    return True


def bench_dask(n=200_000, d=20, partitions=8, repeat=2, C=1e6, out=print, correlated=False):
    """The table of one problem: time (best of ``repeat``), rounds and the
    distance to scikit-learn's coefficients; returns the fastest dask-ml
    time over the fastest secondorder time."""
    from sklearn.linear_model import LogisticRegression as SkLogisticRegression

    if not _has_dask_ml():
        out("dask: dask-ml is not installed (pip install dask-ml); its rows are skipped")
    cluster, client = dask_cluster()
    try:
        X, y, Xd, yd = dask_problem(client, n, d, partitions, correlated=correlated)
        for method in METHODS:  # workers load the kernels, dask-ml is imported: outside the timings
            if method.startswith("so:") or _has_dask_ml():
                run_dask(method, Xd[:2000], yd[:2000], C=C)
        # scikit-learn's Newton solver: its lbfgs stops about 1e-6 short on correlated features
        sk = SkLogisticRegression(C=C, tol=1e-12, max_iter=1000, solver="newton-cholesky").fit(X, y)
        reference = np.r_[sk.coef_.ravel(), sk.intercept_]
        kind = ", correlated features" if correlated else ""
        out(f"\nLogistic regression on Dask: {n} x {d}{kind} in {partitions} partitions, 2 worker processes, C = {C:g}")
        out(f"{'method':<18} {'time s':>8} {'rounds':>7} {'max |coef - sklearn|':>22}")
        best = {}
        for method in METHODS:
            if method.startswith("dask-ml") and not _has_dask_ml():
                continue
            times = []
            for _ in range(repeat):
                coef, intercept, seconds, rounds = run_dask(method, Xd, yd, C=C)
                times.append(seconds)
            error = float(np.max(np.abs(np.r_[coef, intercept] - reference)))
            best[method] = min(times)
            out(f"{method:<18} {min(times):>8.3f} {rounds if rounds is not None else '-':>7} {error:>22.1e}")
        ours = min(v for k, v in best.items() if k.startswith("so:"))
        theirs = [v for k, v in best.items() if k.startswith("dask-ml")]
        ratio = min(theirs) / ours if theirs else float("nan")
        out(f"fastest dask-ml / fastest secondorder = {ratio:.2f}")
        if theirs:
            out(f"fastest dask-ml / secondorder's default (solver='auto') = {min(theirs) / best['so:auto']:.2f}")
        return ratio
    finally:
        client.close()
        cluster.close()

"""Logistic regression on a local Dask cluster: secondorder's estimators
against dask-ml's newton and lbfgs solvers, on the same cluster and the
same persisted data, timed in the same process."""

from benchmarks.harness_dask import METHODS, dask_cluster, dask_problem, run_dask


class DaskLogisticFit:
    params = (list(METHODS),)
    param_names = ("method",)
    timeout = 600
    number = 1
    repeat = (1, 3, 60.0)

    def setup(self, method):
        if method.startswith("dask-ml"):
            try:
                import dask_ml  # noqa: F401
            except ImportError:
                raise NotImplementedError("dask-ml is not installed") from None
        self.cluster, self.client = dask_cluster()
        _, _, self.Xd, self.yd = dask_problem(self.client, n=200_000, d=20, partitions=8)
        run_dask(method, self.Xd[:1000], self.yd[:1000])  # workers load the kernels; dask-ml imports

    def teardown(self, method):
        self.client.close()
        self.cluster.close()

    def time_fit(self, method):
        run_dask(method, self.Xd, self.yd)

    def track_rounds(self, method):
        rounds = run_dask(method, self.Xd, self.yd)[3]
        return rounds if rounds is not None else float("nan")

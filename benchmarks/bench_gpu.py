"""GPU kernels against the CPU path and the bandwidth floor (run only where
CuPy finds a CUDA device; every benchmark is skipped elsewhere)."""

import numpy as np

from secondorder._backend import cupy_available, kernels, use_kernels


def _cupy():
    if not cupy_available():
        raise NotImplementedError  # asv: skipped
    import cupy

    return cupy


def _sync(cp):
    cp.cuda.Device().synchronize()


class SinkhornGPU:
    """One log-domain Sinkhorn sweep and an SNS solve at reg = 1e-3."""

    params = ([10_000, 20_000], ["gpu", "cpu"])
    param_names = ("n", "path")
    timeout = 900
    number = 1
    repeat = (2, 5, 120.0)

    def setup(self, n, path):
        cp = _cupy()
        if path == "cpu" and n > 10_000:
            raise NotImplementedError
        from secondorder import ot

        rng = np.random.default_rng(0)
        M = ot.dist(rng.random((n, 2)), rng.random((n, 2)))
        M /= M.max()
        self.xp = cp if path == "gpu" else np
        self.M = cp.asarray(M) if path == "gpu" else M
        self.a = self.xp.full(n, 1.0 / n)
        self.f, self.g = self.xp.empty(n), self.xp.zeros(n)
        self.k = kernels(name=path)
        self.cp = cp

    def time_sweep(self, n, path):
        self.k.lse_rows(self.M, self.g, 1e-3, self.f)
        self.k.lse_cols(self.M, self.f, 1e-3, self.g)
        _sync(self.cp)

    def time_sns(self, n, path):
        from secondorder import ot

        with use_kernels(path):
            ot.sinkhorn(self.a, self.a, self.M, 1e-3, method="sns")
        _sync(self.cp)


class LogisticGradientGPU:
    """One gradient pass of logistic regression, 2,000,000 x 200 float32."""

    params = (["gpu", "cpu"],)
    param_names = ("path",)
    timeout = 600

    def setup(self, path):
        cp = _cupy()
        rng = np.random.default_rng(0)
        n, d = 2_000_000, 200
        xp = cp if path == "gpu" else np
        self.X = xp.asarray(rng.standard_normal((n, d), dtype=np.float32))
        self.y = xp.asarray((rng.random(n) < 0.5).astype(np.float64))
        self.sw, self.coef = xp.ones(n), xp.asarray(rng.standard_normal(d).astype(np.float32) / np.sqrt(d))
        self.r, self.h = xp.empty(n), xp.empty(n)
        self.k = kernels(name=path)
        self.cp = cp

    def time_gradient(self, path):
        self.k.logistic_grad(self.X, self.y, self.sw, self.coef, 0.0, self.r, self.h)
        _sync(self.cp)


class MFACStepGPU:
    """An M-FAC step (add a gradient, IHVP) at d = 1e7, m = 1024, float32."""

    timeout = 900

    def setup(self):
        cp = _cupy()
        from secondorder.curvature import MFAC

        rng = np.random.default_rng(0)
        self.model = MFAC(1024, damp=1e-4)
        self.model.fill(cp.asarray(rng.standard_normal((1024, 10_000_000), dtype=np.float32)))
        self.g = cp.asarray(rng.standard_normal(10_000_000, dtype=np.float32))
        self.model.update_and_ihvp(self.g)
        self.model.update_and_ihvp(self.g)
        self.cp = cp

    def time_step(self):
        self.model.update_and_ihvp(self.g)
        _sync(self.cp)

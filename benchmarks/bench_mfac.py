"""M-FAC step (add a gradient + IHVP) against its floor, two GEMVs over the
window, timed in the same process."""

import numpy as np

from benchmarks.harness import _fits_in_memory
from secondorder.curvature import MFAC


class MFACStep:
    params = ([100_000, 1_000_000], [64, 256, 1024], ["float32", "float64"])
    param_names = ("d", "m", "dtype")
    timeout = 600
    number = 1
    repeat = (3, 10, 30.0)

    def setup(self, d, m, dtype):
        dt = np.dtype(dtype)
        if not _fits_in_memory(m * d * dt.itemsize * 1.2):
            raise NotImplementedError
        rng = np.random.default_rng(0)
        self.model = MFAC(m, damp=1e-4)
        self.model.fill(rng.standard_normal((m, d), dtype=np.float32).astype(dt, copy=False))
        self.g = rng.standard_normal(d).astype(dt)
        self.y = rng.standard_normal(m).astype(dt)
        # The first step factors A; the second compiles (or loads) the numba
        # kernel that drops the oldest gradient from the factor.
        self.model.update_and_ihvp(self.g)
        self.model.update_and_ihvp(self.g)

    def time_step(self, d, m, dtype):
        self.model.update_and_ihvp(self.g)

    def time_floor_two_gemv(self, d, m, dtype):
        G = self.model._G
        G @ self.g
        G.T @ self.y

    def peakmem_step(self, d, m, dtype):
        self.model.update_and_ihvp(self.g)

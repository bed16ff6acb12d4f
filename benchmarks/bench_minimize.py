"""minimize(method="gns") against scipy's Newton-type methods and L-BFGS-B.

Every combination runs in the same process as its anchor; ``track_*``
records the work (iterations, evaluations, gradient norm reached) next to the
wall time, as scipy's own optimize benchmarks do.
"""

import numpy as np

from benchmarks.harness import SCIPY_METHODS, run_gns, run_scipy, scipy_applicable
from secondorder.optimize import problems

PROBLEMS = {p.name: p for p in problems.foundation_problems(large=True)}
METHODS = ("gns",) + SCIPY_METHODS
GTOL = 1e-8


class Minimize:
    params = (list(PROBLEMS), list(METHODS))
    param_names = ("problem", "method")
    timeout = 120

    def setup(self, name, method):
        problem = PROBLEMS[name]
        if method != "gns" and not scipy_applicable(problem, method):
            raise NotImplementedError  # asv skips the combination
        self.problem = problem
        self.method = method
        # One untimed run: numba compilation and the work counts.
        self.run = self._solve()

    def _solve(self):
        if self.method == "gns":
            return run_gns(self.problem, GTOL, repeat=1)
        return run_scipy(self.problem, self.method, GTOL, repeat=1)

    def time_solve(self, name, method):
        self._solve()

    def track_nfev(self, name, method):
        return self.run.res.nfev

    def track_njev(self, name, method):
        return self.run.res.get("njev", 0)

    def track_nhev(self, name, method):
        return self.run.res.get("nhev", 0)

    def track_nit(self, name, method):
        return self.run.res.nit

    def track_gnorm(self, name, method):
        return float(np.log10(max(self.run.gnorm, 1e-300)))

    track_gnorm.unit = "log10 ||g||"

"""minimize(method="trust-region") with each curvature model against scipy's
trust-exact, trust-ncg and trust-krylov, in evaluations and wall time."""

import numpy as np

from benchmarks.harness import (
    SCIPY_TRUST,
    TRUST_VARIANTS,
    run_scipy,
    run_trust_region,
    scipy_applicable,
)
from secondorder.optimize import problems

PROBLEMS = {p.name: p for p in problems.foundation_problems(large=True)}
METHODS = tuple(f"tr:{v}" for v in TRUST_VARIANTS) + SCIPY_TRUST
GTOL = 1e-8


class TrustRegion:
    params = (list(PROBLEMS), list(METHODS))
    param_names = ("problem", "method")
    timeout = 300

    def setup(self, name, method):
        problem = PROBLEMS[name]
        if not scipy_applicable(problem, method.removeprefix("tr:")):
            raise NotImplementedError
        self.problem = problem
        self.method = method
        self.run = self._solve()

    def _solve(self):
        if self.method.startswith("tr:"):
            return run_trust_region(self.problem, self.method[3:], GTOL, repeat=1)
        return run_scipy(self.problem, self.method, GTOL, repeat=1)

    def time_solve(self, name, method):
        self._solve()

    def track_nfev(self, name, method):
        return self.run.res.nfev

    def track_nhev(self, name, method):
        return self.run.res.get("nhev", 0)

    def track_nit(self, name, method):
        return self.run.res.nit

    def track_gnorm(self, name, method):
        return float(np.log10(max(self.run.gnorm, 1e-300)))

    track_gnorm.unit = "log10 ||g||"

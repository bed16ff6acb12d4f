"""Logistic and softmax regression (C = 1) to a gradient norm of 1e-8:
secondorder's estimators against scikit-learn's solvers and scipy's
L-BFGS-B and Newton-CG, timed in the same process."""

from benchmarks.harness import GLM_PROBLEMS, glm_methods, glm_problem, run_glm
from benchmarks.harness_glm_grid import GRID, SKLEARN_SOLVERS, TOL, anchor, fit, grid_problem

_ALL = ["so:auto", "so:gns", "so:trust-region", "sk:lbfgs", "sk:newton-cg", "sk:newton-cholesky", "scipy:L-BFGS-B", "scipy:Newton-CG"]


class LogisticFit:
    params = (list(GLM_PROBLEMS), _ALL)
    param_names = ("problem", "method")
    timeout = 900
    number = 1
    repeat = (1, 3, 60.0)

    def setup(self, problem, method):
        if method not in glm_methods(problem):
            raise NotImplementedError
        self.X, self.y = glm_problem(problem)
        # compile (or load) the numba kernels outside the timings
        run_glm(method, *glm_problem(problem, scale=1e-3))

    def time_fit(self, problem, method):
        run_glm(method, self.X, self.y)

    def track_iterations(self, problem, method):
        return run_glm(method, self.X, self.y)[1]

    def track_gradient_norm(self, problem, method):
        return run_glm(method, self.X, self.y)[2]


class DefaultsGrid:
    """The estimators' defaults (``tol=1e-8``) against each scikit-learn
    solver at the loosest tolerance that reaches a gradient norm of 1e-6,
    over the grid of shapes of ``harness_glm_grid``."""

    params = (list(GRID), ["ours"] + [f"sk:{m}" for m in SKLEARN_SOLVERS])
    param_names = ("case", "method")
    timeout = 1800
    number = 1
    repeat = 1

    def setup(self, case, method):
        self.X, self.y, self.C = grid_problem(case)
        if method != "ours" and anchor(method[3:], self.X, self.y, self.C, 1)[0] is None:
            raise NotImplementedError  # does not reach the goal, or cannot run

    def _run(self, method):
        if method == "ours":
            return fit("ours", self.X, self.y, self.C, TOL)
        return anchor(method[3:], self.X, self.y, self.C, 1)[0]

    def time_fit(self, case, method):
        self._run(method)

    def track_gradient_norm(self, case, method):
        return self._run(method)[2]

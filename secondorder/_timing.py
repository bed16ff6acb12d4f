"""Timing helpers shared by ``python -m secondorder demo`` and the bench
harness (``benchmarks/harness.py``): a best-of-n timer and one run of a
``minimize`` method, ours or scipy's, on a problem of
:mod:`secondorder.optimize.problems`."""

import time

import numpy as np
from scipy.optimize import minimize as scipy_minimize

from .optimize import minimize

__all__ = ["HEADER", "MinimizeRun", "best_time", "digits", "gns_curvature", "run_gns", "run_scipy", "scipy_applicable"]


class MinimizeRun:
    """One method on one problem: the result, its best time and a trace."""

    def __init__(self, problem, method, res, seconds):
        self.problem = problem
        self.method = method
        self.res = res
        self.seconds = seconds
        self.gnorm = float(np.linalg.norm(problem.jac(np.asarray(res.x))))

    def row(self, reference_seconds):
        r = self.res
        ratio = self.seconds / reference_seconds if reference_seconds else float("nan")
        return (
            f"{self.problem.name:<18} {self.method:<14} {r.nit:>6} {r.nfev:>6} {r.get('njev', 0):>6} "
            f"{r.get('nhev', 0):>6} {self.gnorm:>9.1e} {1e3 * self.seconds:>10.2f} {ratio:>8.2f}"
        )


HEADER = (
    f"{'problem':<18} {'method':<14} {'nit':>6} {'nfev':>6} {'njev':>6} {'nhev':>6} "
    f"{'||g||':>9} {'time ms':>10} {'vs gns':>8}"
)


def best_time(call, repeat):
    """``(result, seconds)``: the last result and the best of ``repeat`` wall times."""
    best = np.inf
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = call()
        best = min(best, time.perf_counter() - t0)
    return out, best


def gns_curvature(problem, approx=False):
    """What ``gns`` is given: with ``approx``, the paper's approximation
    (where the problem has one); otherwise the exact Hessian that scipy's
    trust-exact gets, dense for moderate sizes, its products beyond."""
    if approx and problem.approx_hess is not None:
        return {"hess": problem.approx_hess}
    if problem.x0.size > 500:
        return {"hessp": problem.hessp}
    return {"hess": problem.hess}


def run_gns(problem, gtol=1e-8, repeat=3, callback=None, variant="adaptive", approx=False):
    """``method="gns"`` on ``problem``; ``variant="reference"`` runs the
    paper's rule for ``gamma``, ``approx=True`` the problem's approximate
    Hessian."""
    kwargs = gns_curvature(problem, approx)
    options = {"variant": variant}

    def call():
        return minimize(problem.fun, problem.x0, jac=problem.jac, tol=gtol, callback=callback, options=options,
                        **kwargs)

    res, seconds = best_time(call, repeat)
    name = "gns" if variant == "adaptive" else f"gns:{variant}"
    return MinimizeRun(problem, name + (":approx" if approx else ""), res, seconds)


def scipy_applicable(problem, method):
    return not (method in ("trust-exact", "exact-dense") and problem.x0.size > 500)




def run_scipy(problem, method, gtol=1e-8, repeat=3, callback=None):
    """scipy's ``method`` on ``problem`` with the exact Hessian (or its
    products), stopped at the same gradient tolerance where it has one."""
    n = problem.x0.size
    kwargs = {"jac": problem.jac, "callback": callback}
    if method == "trust-exact":
        kwargs["hess"] = problem.hess
        options = {"gtol": gtol}
    elif method == "trust-ncg":
        kwargs["hessp"] = problem.hessp
        options = {"gtol": gtol, "maxiter": 200 * n}
    elif method == "trust-krylov":
        kwargs["hessp"] = problem.hessp
        # trust-krylov stores a Lanczos basis of up to 2n vectors: too much
        # memory for long runs at n = 1000 in a benchmark process.
        options = {"gtol": gtol, "maxiter": min(200 * n, 2000)}
    elif method == "Newton-CG":
        kwargs["hessp"] = problem.hessp
        # Newton-CG stops on the step size only; 1e-12 brings it to a
        # gradient comparable to the others'.
        options = {"xtol": 1e-12, "maxiter": 200 * n}
    elif method == "L-BFGS-B":
        options = {"gtol": gtol / np.sqrt(n), "ftol": 0.0, "maxiter": 100 * n + 15000, "maxfun": 10**6}
    else:
        raise ValueError(f"unknown scipy method {method!r}")

    def call():
        return scipy_minimize(problem.fun, problem.x0, method=method, options=options, **kwargs)

    res, seconds = best_time(call, repeat)
    return MinimizeRun(problem, method, res, seconds)


def digits():
    """scikit-learn's digits, standardised: (X, y)."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return (X - X.mean(axis=0)) / np.maximum(X.std(axis=0), 1e-12), y

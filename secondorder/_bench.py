"""``python -m secondorder bench``: every solver against its anchor, one process.

Each row runs one method on one problem to the same gradient tolerance and
reports iterations, evaluations of ``fun``, ``jac`` and the Hessian (or
Hessian-vector products), the gradient norm reached, the best wall time over
a few repeats, and that time over the time of ``secondorder`` on the same
problem (above 1: ``secondorder`` is faster).
"""

import time

import numpy as np
from scipy.optimize import minimize as scipy_minimize

from . import minimize
from .optimize import problems

__all__ = ["MinimizeRun", "run_gns", "run_scipy", "bench_minimize", "main"]

SCIPY_METHODS = ("trust-exact", "trust-ncg", "Newton-CG", "L-BFGS-B")


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


def _best_time(call, repeat):
    best = np.inf
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = call()
        best = min(best, time.perf_counter() - t0)
    return out, best


def gns_curvature(problem):
    """What ``gns`` is given: the paper's approximation where there is one,
    a dense Hessian for moderate sizes, Hessian-vector products beyond."""
    if problem.approx_hess is not None:
        return {"hess": problem.approx_hess}
    if problem.x0.size > 500:
        return {"hessp": problem.hessp}
    return {"hess": problem.hess}


def run_gns(problem, gtol=1e-8, repeat=3, callback=None):
    kwargs = gns_curvature(problem)

    def call():
        return minimize(problem.fun, problem.x0, jac=problem.jac, tol=gtol, callback=callback, **kwargs)

    res, seconds = _best_time(call, repeat)
    return MinimizeRun(problem, "gns", res, seconds)


def scipy_applicable(problem, method):
    return not (method == "trust-exact" and problem.x0.size > 500)


def run_scipy(problem, method, gtol=1e-8, repeat=3, callback=None):
    """scipy's ``method`` on ``problem`` with the exact Hessian (or its
    products), stopped at the same gradient tolerance where it has one."""
    n = problem.x0.size
    kwargs = {"jac": problem.jac, "callback": callback}
    if method == "trust-exact":
        kwargs["hess"] = problem.hess
        options = {"gtol": gtol}
    elif method in ("trust-ncg", "trust-krylov"):
        kwargs["hessp"] = problem.hessp
        options = {"gtol": gtol, "maxiter": 200 * n}
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

    res, seconds = _best_time(call, repeat)
    return MinimizeRun(problem, method, res, seconds)


def bench_minimize(names=None, gtol=1e-8, repeat=3, out=print):
    """The ``minimize`` table: gns and scipy's Newton-type methods."""
    out("minimize: time to ||g|| <= %.0e; 'vs gns' = method time / gns time" % gtol)
    out(HEADER)
    rows = []
    for problem in problems.foundation_problems(large=True):
        if names and not any(n in problem.name for n in names):
            continue
        # Warm-up (numba compilation, BLAS threads) outside the timings.
        run_gns(problem, gtol, repeat=1)
        ref = run_gns(problem, gtol, repeat)
        out(ref.row(ref.seconds))
        rows.append(ref)
        for method in SCIPY_METHODS:
            if not scipy_applicable(problem, method):
                continue
            run = run_scipy(problem, method, gtol, repeat if ref.seconds < 1 else 1)
            out(run.row(ref.seconds))
            rows.append(run)
    return rows


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(prog="python -m secondorder bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="run only problems whose name contains one of these")
    parser.add_argument("--repeat", type=int, default=3, help="timing repeats (best is kept)")
    parser.add_argument("--gtol", type=float, default=1e-8)
    args = parser.parse_args(argv)
    bench_minimize(args.only, args.gtol, args.repeat)

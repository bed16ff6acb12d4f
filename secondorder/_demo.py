"""``python -m secondorder demo``: a short tour of what the library solves.

Each part solves real problems, prints what it solved and how fast against
the library users would otherwise reach for, and adds panels to a
convergence plot (written when matplotlib is installed).
"""

import numpy as np

from ._bench import run_gns, run_scipy
from .optimize import problems

__all__ = ["main"]


class _Trace:
    """Gradient norm after each iteration, recorded through the callback
    (in a separate, untimed run)."""

    def __init__(self, problem):
        self.problem = problem
        self.gnorms = [float(np.linalg.norm(problem.jac(problem.x0)))]

    def __call__(self, intermediate_result):
        self.gnorms.append(float(np.linalg.norm(self.problem.jac(np.asarray(intermediate_result.x)))))


def part_minimize(out=print):
    """Part 1: ``minimize(method="gns")`` against scipy's Newton-type methods."""
    out("== 1. minimize(method='gns'): regularised Newton with gradient-normalised smoothness ==")
    chosen = [problems.rosenbrock(100), problems.logsumexp_problem(), problems.logistic_regression()]
    panels = []
    for problem in chosen:
        gns = run_gns(problem, repeat=3)
        note = f" (gns uses the {problem.approx_name} approximation)" if problem.approx_name else ""
        out(f"{problem.name}: n = {problem.x0.size}{note}")
        out(f"  {'method':<12} {'iterations':>10} {'f evals':>8} {'||g||':>9} {'time ms':>9} {'vs gns':>7}")
        traces = {}
        for method in ("gns", "trust-exact", "L-BFGS-B"):
            run = gns if method == "gns" else run_scipy(problem, method, repeat=3)
            r = run.res
            out(
                f"  {method:<12} {r.nit:>10} {r.nfev:>8} {run.gnorm:>9.1e} "
                f"{1e3 * run.seconds:>9.2f} {run.seconds / gns.seconds:>7.2f}"
            )
            trace = _Trace(problem)
            if method == "gns":
                run_gns(problem, repeat=1, callback=trace)
            else:
                run_scipy(problem, method, repeat=1, callback=trace)
            traces[method] = trace.gnorms
        panels.append((problem.name, traces))
    return panels


def _plot(panels, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
    for ax, (title, traces) in zip(axes[0], panels):
        for label, values in traces.items():
            ax.semilogy(np.maximum(values, 1e-16), label=label, lw=1.6 if label == "gns" else 1.0)
        ax.set_title(title)
        ax.set_xlabel("iteration")
        ax.set_ylabel("gradient norm")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(prog="python -m secondorder demo", description=__doc__.splitlines()[0])
    parser.add_argument("--plot", default="secondorder_demo.png", help="where to write the convergence plot")
    args = parser.parse_args(argv)
    panels = part_minimize()
    path = _plot(panels, args.plot)
    print(f"\nconvergence plot written to {path}" if path else "\n(install matplotlib for the convergence plot)")

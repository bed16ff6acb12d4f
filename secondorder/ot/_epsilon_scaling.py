r"""Log-domain Sinkhorn with epsilon scaling."""

import math

from .._array_api import immutable_on_host
from .._validation import check_int, check_positive
from ._sinkhorn_log import _no_options, initial_potentials, solve_log
from ._utils import Solution, run_solver

__all__ = ["sinkhorn_epsilon_scaling"]


def schedule(reg, epsilon0, count):
    r"""POT's regularisation schedule :math:`\varepsilon_k = (\varepsilon_0 -
    \varepsilon) e^{-k} + \varepsilon`, ``k = 0 .. count-1``, cut where a
    stage would differ from ``reg`` by less than 1%; ``reg`` itself ends it."""
    stages = []
    for k in range(count):
        eps = (epsilon0 - reg) * math.exp(-k) + reg
        if eps <= 1.01 * reg:
            break
        stages.append(eps)
    return stages + [reg]


def solve_epsilon_scaling(problem, numItermax, stopThr, verbose=False, warmstart=None, epsilon0=1e4,
                          numInnerItermax=100, print_period=10, tau=None, **unknown):
    """Stages of log-domain Sinkhorn along :func:`schedule`, each started from
    the potentials of the last (in cost units, so they carry over), the
    intermediate ones for at most ``numInnerItermax`` iterations, the last
    at ``reg`` to ``stopThr`` with what is left of ``numItermax``.  ``tau``
    (POT's absorption threshold) has nothing to do in the log domain."""
    _no_options(unknown, "sinkhorn_epsilon_scaling")
    epsilon0 = check_positive(epsilon0, "epsilon0")
    numInnerItermax = check_int(numInnerItermax, "numInnerItermax", minimum=1)
    f, g = initial_potentials(problem, warmstart)
    stages = schedule(problem.reg, max(epsilon0, problem.reg), numItermax)
    errs, passes = [], 0
    for eps in stages:
        last = eps == problem.reg
        stage = problem.at_reg(eps)
        budget = max(numItermax - len(errs), 0) if last else min(numInnerItermax, max(numItermax - len(errs), 0))
        if verbose:
            print(f"epsilon scaling: reg {eps:.4g}")
        sol = solve_log(stage, budget, stopThr, verbose, print_period=print_period, potentials=(f, g))
        f, g = sol.f, sol.g
        errs.extend(sol.errs)
        passes += sol.passes
    return Solution(f, g, errs, passes, {"n_stages": len(stages)})


solve_epsilon_scaling.takes_grid = True


@immutable_on_host
def sinkhorn_epsilon_scaling(a, b, M, reg, numItermax=100, epsilon0=1e4, numInnerItermax=100, tau=None,
                             stopThr=1e-9, warmstart=None, verbose=False, print_period=10, log=False, warn=True,
                             **kwargs):
    r"""Entropic OT by log-domain Sinkhorn along a decreasing regularisation.

    POT's ``sinkhorn_epsilon_scaling``, with its arguments in its order:
    Sinkhorn runs at :math:`\varepsilon_k = (\varepsilon_0 - \varepsilon)
    e^{-k} + \varepsilon` (at most ``numInnerItermax`` iterations each),
    each stage started from the potentials of the last, and ends at
    :math:`\varepsilon` = ``reg`` with the stopping rule of
    :func:`~secondorder.ot.sinkhorn_log`.  A large regularisation spreads
    the plan, and its potentials are a good start for a smaller one: at
    small ``reg`` the stages cost less than Sinkhorn from scratch.  The
    stages are log-domain, so ``tau`` (POT's absorption threshold) is
    accepted and has nothing to do.

    Returns
    -------
    P : ndarray, shape (n, m)
        (With a 2-D ``b``: the costs of its columns, as
        :func:`~secondorder.ot.sinkhorn`.)
    log : dict, with ``log=True``: the keys of
        :func:`~secondorder.ot.sinkhorn_log` plus ``n_stages``; ``niter``
        counts the iterations of every stage.
    """
    options = dict(kwargs, epsilon0=epsilon0, numInnerItermax=numInnerItermax, print_period=print_period, tau=tau)
    return run_solver(solve_epsilon_scaling, "sinkhorn_epsilon_scaling", a, b, M, reg, numItermax, stopThr, verbose, log,
                      warn, warmstart, **options)

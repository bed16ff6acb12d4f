r"""POT-compatible front doors: ``sinkhorn`` and ``sinkhorn2``."""

from .._array_api import immutable_on_host
from ._epsilon_scaling import solve_epsilon_scaling
from ._greenkhorn import solve_greenkhorn
from ._scaling import solve_stabilized
from ._sinkhorn_log import solve_log
from ._sns import solve_sns
from ._utils import cost_result, run_solver

__all__ = ["sinkhorn", "sinkhorn2"]

_SOLVERS = {
    "sns": (solve_sns, "sinkhorn_newton_sparse"),
    "sinkhorn_newton_sparse": (solve_sns, "sinkhorn_newton_sparse"),
    "sinkhorn_log": (solve_log, "sinkhorn_log"),
    "sinkhorn": (solve_stabilized, "sinkhorn"),
    "sinkhorn_stabilized": (solve_stabilized, "sinkhorn"),
    "sinkhorn_epsilon_scaling": (solve_epsilon_scaling, "sinkhorn_epsilon_scaling"),
    "greenkhorn": (solve_greenkhorn, "greenkhorn"),
}


def _method(method):
    if not isinstance(method, str) or method.lower() not in _SOLVERS:
        raise ValueError(f"Unknown method {method!r}; choose one of {', '.join(_SOLVERS)}.")
    return _SOLVERS[method.lower()]


@immutable_on_host
def sinkhorn(a, b, M, reg, method="sns", numItermax=1000, stopThr=1e-9, verbose=False, log=False, warn=True, warmstart=None, **kwargs):
    r"""Entropic optimal transport plan, with POT's signature.

    Solves :math:`\min_P \langle P, M \rangle + \varepsilon \sum_{ij} P_{ij}
    \log P_{ij}` over the couplings of ``a`` and ``b`` (:math:`\varepsilon`
    = ``reg``).  A POT user changes one import: the arguments and the return
    values are those of ``ot.sinkhorn``.

    Parameters
    ----------
    a, b : array_like, shape (n,), (m,) or (m, k)
        Histograms (empty: uniform).  Zero-mass entries are removed for the
        solve and restored as zero rows/columns of the plan.  A 2-D ``b``
        holds ``k`` target histograms, one per column: as in POT, the
        result is then the vector of the ``k`` transport costs (each
        column solved on its own).
    M : array_like, shape (n, m)
        Cost matrix; float32 or float64 (the plan has its dtype).
    reg : float
        Entropic regularisation, > 0.
    method : {"sns", "sinkhorn_log", "sinkhorn", "sinkhorn_epsilon_scaling", "greenkhorn"}
        ``"sns"`` (default): Sinkhorn-Newton-Sparse
        (:func:`~secondorder.ot.sinkhorn_newton_sparse`); ``"sinkhorn_log"``:
        log-domain Sinkhorn (:func:`~secondorder.ot.sinkhorn_log`);
        ``"sinkhorn"`` (alias ``"sinkhorn_stabilized"``): scaling iterations
        with absorption; ``"sinkhorn_epsilon_scaling"``: log-domain Sinkhorn
        along a decreasing regularisation
        (:func:`~secondorder.ot.sinkhorn_epsilon_scaling`); ``"greenkhorn"``:
        greedy coordinate Sinkhorn (:func:`~secondorder.ot.greenkhorn`).  All three are stable for small ``reg``.
    numItermax : int
        Maximum number of iterations (Sinkhorn and Newton together for SNS).
    stopThr : float
        Stop when the L1 marginal error ``||P 1 - a||_1 + ||P^T 1 - b||_1``
        falls below it; 0 runs exactly ``numItermax`` iterations (and warns
        that it did not converge, as POT does).
    verbose, log, warn, warmstart
        As in POT: print progress; also return the log dict; warn when
        ``stopThr`` is not reached; ``(log_u, log_v)`` to start from.
    **kwargs
        Options of the method (SNS: ``n_sinkhorn``, ``threshold``, ...;
        ``"sinkhorn"``: POT's ``tau``).  POT's ``print_period`` is accepted
        by every method (the period of the ``verbose`` lines).

    Returns
    -------
    P : ndarray, shape (n, m)
    log : dict, with ``log=True``: ``niter``, ``err`` (L1 marginal error
        after each iteration), ``f``, ``g`` (dual potentials, cost units),
        ``log_u``, ``log_v`` (``f/reg``, ``g/reg``, POT's names),
        ``n_passes`` (passes over n x n arrays) and the method's own keys.
    """
    solve, name = _method(method)
    return run_solver(solve, name, a, b, M, reg, numItermax, stopThr, verbose, log, warn, warmstart, **kwargs)


@immutable_on_host
def sinkhorn2(a, b, M, reg, method="sns", numItermax=1000, stopThr=1e-9, verbose=False, log=False, warn=True, warmstart=None, **kwargs):
    r"""Transport cost :math:`\langle P^\star, M \rangle` of the entropic plan.

    POT's ``sinkhorn2``: the linear cost, without the entropic term; same
    arguments as :func:`sinkhorn`.  ``warn`` is on by default (POT's is
    off): a cost from iterations that did not converge is wrong, and says
    so.  The cost is
    accumulated from the potentials in one pass over ``M``; the plan is
    never stored.
    """
    solve, name = _method(method)
    return run_solver(solve, name, a, b, M, reg, numItermax, stopThr, verbose, log, warn, warmstart, result=cost_result,
                      **kwargs)

r"""Stabilised Sinkhorn scaling iterations (absorption)."""

import math

import numpy as np

from .._array_api import astype, immutable_on_host
from .._backend import kernels
from .._validation import check_int, check_positive
from ._sinkhorn_log import STALL, _no_options, initial_potentials
from ._utils import Solution, run_solver

__all__ = ["sinkhorn_stabilized"]

# Absorb the scalings into the potentials when they leave [e^-TAU, e^TAU]:
# far enough from the float64 range that K v never overflows, and since the
# kernel's entries are at least e^-500, products stay normal numbers.
_TAU = 50.0


def scaling_iterations(problem, f, g, numItermax, stopThr, verbose=False, stop=None, tau=None, print_period=10,
                       dtype=None, omega=1.0, kernel=None):
    r"""Sinkhorn's scaling iterations with absorption (Schmitzer 2019).

    With :math:`\tilde K = \exp((f \oplus g - M)/\varepsilon)` built from
    the current potentials, an iteration is two matrix-vector products,
    :math:`u = a / \tilde K v`, :math:`v = b / \tilde K^T u` (BLAS, no exp);
    when a scaling leaves :math:`[e^{-50}, e^{50}]` it is absorbed,
    :math:`f \mathrel{+}= \varepsilon \log u`, and :math:`\tilde K` is
    rebuilt (one pass with exps).  A BLAS pass over :math:`\tilde K` costs a
    fraction of a log-sum-exp pass: the cheap way to warm up a Newton method.

    ``stop(errs)``, when given, is called after each iteration with the
    errors so far and ends the iterations when it returns True.  ``tau``:
    absorb when a scaling leaves :math:`[1/\tau, \tau]` (POT's threshold;
    default :math:`e^{50}`).  ``dtype``: of :math:`\tilde K` and the
    scalings (default float64; float32 halves the memory and the time of
    each product, and resolves marginal errors down to about 1e-6 only).

    ``omega`` > 1 over-relaxes the updates, :math:`u \leftarrow
    u^{1-\omega} (a / K v)^\omega` (and ``v`` alike), a weighted step
    beyond Sinkhorn's in the potentials (Thibault et al. 2021).  Where
    Sinkhorn converges linearly at rate :math:`\rho` (per iteration of the
    marginal error), :math:`\omega = 2 / (1 + \sqrt{1 - \rho})` brings
    the rate down to about :math:`\omega - 1`, as successive
    over-relaxation does for Gauss-Seidel: 250 iterations become 60 on
    clouds far apart.  The columns are then no longer exact after each
    update, so the error counts both marginals; and where the error has not
    decreased over 20 iterations, the iterations go on plain.

    ``kernel``: an (n, m) array of ``dtype`` to build :math:`\tilde K` in
    (default: a new one).

    Returns a :class:`Solution` whose potentials include the last scalings.
    """
    xp = problem.xp
    k = kernels(xp)
    M, reg, a, b = problem.M, problem.reg, problem.a, problem.b
    passes = 0
    dtype = xp.float64 if dtype is None else dtype
    K = xp.empty(M.shape, dtype=dtype) if kernel is None else kernel
    if not bool(xp.any(f)) and not bool(xp.any(g)):
        # Cold start: the exact f for g = 0, so that K's rows carry mass a; K with it, in the same pass.
        f = k.row_scaled_kernel(M, problem.log_a, reg, K)
    else:
        K = k.scaled_kernel(M, f, g, reg, K)
    passes += 1
    # the marginals and scalings in K's dtype: a product of float32 K with a float64 vector would copy K
    a, b = astype(xp, a, dtype), astype(xp, b, dtype)
    u = xp.ones(M.shape[0], dtype=dtype)
    v = xp.ones(M.shape[1], dtype=dtype)
    if tau is None:
        hi, lo = math.exp(_TAU), math.exp(-_TAU)
    else:
        hi = min(check_positive(tau, "tau"), math.exp(_TAU))  # tau <= 1: absorb at every iteration, as POT
        lo = 1.0 / hi
    print_period = check_int(print_period, "print_period", minimum=1)
    errs = []
    relaxed = omega != 1.0
    col_err = 0.0
    if verbose:
        print(f"{'It.':>5}|{'Err':>12}\n" + "-" * 19)
    for it in range(numItermax + 1):
        Kv = K @ v
        passes += 1
        if it > 0:
            # Rows: u * (K v); columns are exact after a plain v-update, else off by col_err.
            err = float(xp.sum(xp.abs(u * Kv - a))) + col_err
            errs.append(err)
            if verbose and ((it - 1) % print_period == 0 or err < stopThr):
                print(f"{it:>5}|{err:>12.6e}")
            if err < stopThr or it == numItermax or (stop is not None and stop(errs)):
                break
            if relaxed and len(errs) > STALL and not errs[-1] < errs[-1 - STALL]:
                relaxed = False  # over-relaxation does not pay here: plain Sinkhorn, which always converges
        if relaxed:
            # far from the solution a relaxed scaling can overflow: that step is taken plain, and so are the rest
            with np.errstate(over="ignore", invalid="ignore"):
                u_next = u ** (1.0 - omega) * (a / Kv) ** omega
                relaxed = math.isfinite(float(xp.sum(u_next)))
                if relaxed:
                    Ktu = K.T @ u_next
                    v_next = v ** (1.0 - omega) * (b / Ktu) ** omega
                    relaxed = math.isfinite(float(xp.sum(v_next)))
            if relaxed:
                u, v = u_next, v_next
                col_err = float(xp.sum(xp.abs(v * Ktu - b)))
        if not relaxed:
            u = a / Kv
            v = b / (K.T @ u)
            col_err = 0.0
        passes += 1
        if float(xp.max(u)) > hi or float(xp.min(u)) < lo or float(xp.max(v)) > hi or float(xp.min(v)) < lo:
            f = f + reg * astype(xp, xp.log(u), f.dtype)
            g = g + reg * astype(xp, xp.log(v), g.dtype)
            K = k.scaled_kernel(M, f, g, reg, K)
            passes += 1
            u = xp.ones_like(u)
            v = xp.ones_like(v)
    return Solution(f + reg * astype(xp, xp.log(u), f.dtype), g + reg * astype(xp, xp.log(v), g.dtype), errs, passes)


def solve_stabilized(problem, numItermax, stopThr, verbose=False, warmstart=None, tau=None, print_period=10, **unknown):
    _no_options(unknown, "sinkhorn")
    f, g = initial_potentials(problem, warmstart)
    return scaling_iterations(problem, f, g, numItermax, stopThr, verbose, tau=tau, print_period=print_period)


@immutable_on_host
def sinkhorn_stabilized(a, b, M, reg, numItermax=1000, tau=None, stopThr=1e-9, warmstart=None, verbose=False,
                        print_period=10, log=False, warn=True, **kwargs):
    r"""Entropic OT by Sinkhorn's scaling iterations with absorption.

    The arguments of POT's ``sinkhorn_stabilized``, in its order; ``tau``
    (default :math:`e^{50}`, POT's 1e3) is the absorption threshold of the
    scalings.  Same problem and outputs as
    :func:`~secondorder.ot.sinkhorn_log` (a 2-D ``b``: the costs of its
    columns, as :func:`~secondorder.ot.sinkhorn`); each iteration is two
    matrix-vector products with the absorbed kernel instead of two
    log-sum-exp passes, and the scalings are absorbed into the potentials
    before they can overflow, so it is stable at any ``reg``
    (:func:`scaling_iterations`).

    References
    ----------
    .. [1] B. Schmitzer, "Stabilized sparse scaling algorithms for entropy
       regularized transport problems", SIAM J. Sci. Comput. 41(3), 2019.
    """
    options = dict(kwargs, tau=tau, print_period=print_period)
    return run_solver(solve_stabilized, "sinkhorn", a, b, M, reg, numItermax, stopThr, verbose, log, warn, warmstart,
                      **options)

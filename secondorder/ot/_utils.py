"""Input checks and bookkeeping shared by the OT solvers (POT's conventions)."""

import copy
import math
import warnings

import numpy as np

from .._array_api import astype, from_host, is_real_floating
from .._backend import get_namespace, is_cupy, kernels, populated
from .._validation import check_finite, check_int, check_nonnegative, check_positive

__all__ = ["OTProblem", "prepare", "warn_not_converged", "marginal_error", "Solution", "plan_result", "cost_result"]


class OTProblem:
    """Validated inputs: marginals without their zero-mass entries, the cost
    restricted to the support, and what is needed to restore full shapes.

    ``rows`` (``cols``) are the indices of the support of ``a`` (``b``) in
    the full problem, None when it is all of it; ``row_map`` (``col_map``)
    sends each full index to its place in the support, or to one past its
    end (where a zero row or a ``-inf`` potential is put back).
    """

    def __init__(self, a, b, M, reg, rows, cols, row_map, col_map, shape, dtype, xp):
        self.a = a
        self.b = b
        self.M = M
        self.reg = reg
        self.rows = rows
        self.cols = cols
        self.row_map = row_map
        self.col_map = col_map
        self.shape = shape
        self.dtype = dtype
        self.xp = xp
        self.log_a = xp.log(a)
        self.log_b = xp.log(b)

    @property
    def dims(self):
        """Sizes of the supports of ``a`` and ``b`` (the potentials' lengths)."""
        return self.a.shape[0], self.b.shape[0]

    # The passes over the cost that the solvers make, here over the dense M
    # (GridProblem makes them on a grid's separable cost).
    dense = True

    # Where the plan is returned, the array it is written into, made before the solve (run_solver) for a solver
    # marked ``solve.uses_plan_out = True``: it lays its own n x m arrays in its bytes until it returns
    # (scratch_like) instead of adding new ones.
    plan_out = None

    def scratch_like(self, dtype):
        """An uninitialised (n, m) array of ``dtype`` in :attr:`plan_out`'s
        bytes where they hold one (NumPy), else a new one.  Its contents are
        overwritten by :meth:`plan`; new pages cost about as much as a pass
        over them (up to a millisecond per MB on this machine once the
        process has grown), and the plan's are then already there."""
        n, m = self.dims
        out = self.plan_out
        if out is not None and out.nbytes >= n * m * np.dtype(dtype).itemsize:
            return out.reshape(-1).view(np.uint8)[: n * m * np.dtype(dtype).itemsize].view(dtype).reshape(n, m)
        return np.empty((n, m), dtype=dtype)

    def lse_rows(self, g, out):
        """``out[i] = LSE_j((g_j - M_ij)/reg)``."""
        return kernels(self.xp).lse_rows(self.M, g, self.reg, out)

    def lse_cols(self, f, out):
        """``out[j] = LSE_i((f_i - M_ij)/reg)``."""
        return kernels(self.xp).lse_cols(self.M, f, self.reg, out)

    def sns_eval(self, f, g, threshold, cap, out=None):
        """P's row and column sums and each row's large entries (the kernel
        ``sns_eval``; ``out``: arrays it may write them into)."""
        return kernels(self.xp).sns_eval(self.M, f, g, self.reg, threshold, cap, out=out)

    def left_out(self, f, g):
        """The mass of the plan that :meth:`sns_eval` leaves out: none (a
        solver's evaluators on part of the plan bound theirs)."""
        return 0.0

    def cost_rows(self, rows):
        """The rows ``rows`` of the cost on the supports, (len(rows), m)."""
        return self.xp.take(self.M, rows, axis=0)

    def plan(self, f, g):
        """The plan on the full (n, m) grid, in the problem's dtype (written
        in it: a float32 problem gets no float64 n x m buffer)."""
        xp = self.xp
        out = xp.empty(self.M.shape, dtype=self.dtype) if self.plan_out is None else self.plan_out
        P = kernels(xp).scaled_kernel(self.M, f, g, self.reg, out)
        return self.full_plan(P)

    def transport_cost(self, f, g):
        """``<P, M>``, accumulated without storing P."""
        return kernels(self.xp).transport_cost(self.M, f, g, self.reg)

    def at_reg(self, reg):
        """The same problem at another regularisation (the arrays shared)."""
        other = copy.copy(self)
        other.reg = reg
        return other

    def _expand(self, v, index_map, fill, axis):
        if index_map is None:
            return v
        xp = self.xp
        pad_shape = list(v.shape)
        pad_shape[axis] = 1
        padded = xp.concat([v, xp.full(tuple(pad_shape), fill, dtype=v.dtype)], axis=axis)
        return xp.take(padded, index_map, axis=axis)

    def full_plan(self, P):
        """The plan on the full (n, m) grid, zero rows/columns restored."""
        xp = self.xp
        P = astype(xp, P, self.dtype)
        if self.rows is None and self.cols is None:
            return P
        if xp is np or is_cupy(xp):  # one scatter into the new array
            out = xp.zeros(self.shape, dtype=self.dtype)
            out[xp.ix_(_all(xp, self.rows, self.shape[0]), _all(xp, self.cols, self.shape[1]))] = P
            return out
        # the standard has no scatter: gathers from P with a zero row and column appended
        return self._expand(self._expand(P, self.row_map, 0.0, 0), self.col_map, 0.0, 1)

    def full_potentials(self, f, g):
        """``f, g`` on the full grid; zero-mass entries get ``-inf`` (a zero
        scaling: no mass leaves or arrives there)."""
        return self._expand(f, self.row_map, -math.inf, 0), self._expand(g, self.col_map, -math.inf, 0)


def _all(xp, idx, size):
    return xp.arange(size) if idx is None else idx


def _integral_or_bool(xp, dtype):
    if xp is np or is_cupy(xp):
        return np.dtype(dtype).kind in "iub"
    return xp.isdtype(dtype, ("integral", "bool"))


def _given(w):
    """Whether a marginal was given (POT: None or an empty list mean uniform)."""
    if w is None:
        return False
    if isinstance(w, (list, tuple)):
        return len(w) > 0
    shape = getattr(w, "shape", None)
    return not (shape is not None and len(shape) == 1 and shape[0] == 0)


def _marginal(w, name, size, xp):
    if not _given(w):
        return xp.full(size, 1.0 / size, dtype=xp.float64)
    w = xp.asarray(w, dtype=xp.float64)
    if w.ndim != 1:
        raise ValueError(
            f"`{name}` must be a 1-D histogram; got shape {tuple(w.shape)}"
            + (" (several target histograms go in `b`, one per column)." if name == "a" else ".")
        )
    if w.shape[0] != size:
        raise ValueError(
            f"Dimension mismatch: `{name}` has {w.shape[0]} entries but M has {size} "
            f"{'rows' if name == 'a' else 'columns'}; check the dimensions of M with a and b."
        )
    check_finite(w, name, xp=xp)
    if bool(xp.any(w < 0)):
        raise ValueError(f"`{name}` must be non-negative (a histogram); it has {int(xp.sum(w < 0))} negative entries.")
    if not float(xp.sum(w)) > 0:
        raise ValueError(f"`{name}` has zero total mass; a histogram needs positive mass.")
    return w


def _support(xp, w):
    """(indices of the support, map of full indices into it), both None
    when every entry has mass."""
    mask = w > 0
    if bool(xp.all(mask)):
        return None, None
    rows = xp.nonzero(mask)[0]
    place = xp.cumulative_sum(xp.astype(mask, rows.dtype)) - 1
    return rows, xp.where(mask, place, rows.shape[0])


def prepare(a, b, M, reg, numItermax, stopThr, grid=False):
    """Check POT-style inputs and remove zero-mass entries.

    Empty ``a``/``b`` mean uniform; ``M`` may be rectangular.  The working
    precision is float64 throughout; the plan is returned in ``M``'s dtype
    (float32 stays float32).  Any array-API namespace: NumPy, CuPy,
    PyTorch, array-api-strict.  A :class:`~secondorder.ot.GridCost` gives a
    :class:`~secondorder.ot._grid.GridProblem` where the solver makes its
    passes through one (``grid``), else its dense matrix.
    """
    from ._cost import GridCost

    if isinstance(M, GridCost):
        if grid:
            from ._grid import prepare_grid

            return prepare_grid(a, b, M, reg, numItermax, stopThr)
        xp = get_namespace(a if _given(a) else None, b if _given(b) else None)
        like = a if _given(a) else b
        M = M.toarray() if xp is np or not _given(like) else from_host(xp, M.toarray(), xp.asarray(like))
    if hasattr(M, "tocsr") or type(M).__module__.startswith("torch") and getattr(M, "is_sparse", False):
        raise TypeError("`M` must be a dense cost matrix; got a sparse matrix. Pass M.toarray().")
    xp = get_namespace(a if _given(a) else None, b if _given(b) else None, M)
    M = xp.asarray(M)
    if M.ndim != 2 or M.shape[0] == 0 or M.shape[1] == 0:
        raise ValueError(f"`M` must be a non-empty 2-D cost matrix (n, m); got shape {tuple(M.shape)}.")
    if M.dtype not in (xp.float32, xp.float64):
        # integers, booleans and the other floating dtypes (float16) compute in float64, as documented
        if not (is_real_floating(xp, M.dtype) or _integral_or_bool(xp, M.dtype)):
            raise TypeError(f"`M` must hold real numbers; got dtype {M.dtype}.")
        M = astype(xp, M, xp.float64)
    # M's range in one pass (no n x m temporary); NaN and inf show in it and get check_finite's message
    hi, lo = kernels(xp).value_range(M)
    if not (math.isfinite(hi) and math.isfinite(lo)):
        check_finite(M, "M", xp=xp)
    dtype = M.dtype
    reg = check_range(hi, lo, reg)
    n, m = M.shape
    a, b, rows, cols, row_map, col_map = marginals(a, b, n, m, numItermax, stopThr, xp)
    if (rows is not None or cols is not None) and (xp is np or is_cupy(xp)):
        M = M[xp.ix_(_all(xp, rows, n), _all(xp, cols, m))]  # one copy, C-ordered, which the kernels read by rows
    elif rows is not None or cols is not None:
        M = xp.take(M, rows, axis=0) if rows is not None else M
        M = xp.take(M, cols, axis=1) if cols is not None else M
    if xp is np:
        M = np.ascontiguousarray(M)  # the numba kernels read rows
    return OTProblem(a, b, M, reg, rows, cols, row_map, col_map, (n, m), dtype, xp)


def check_range(hi, lo, reg):
    """``reg``, checked, and checked against the cost's range [lo, hi]."""
    reg = check_positive(reg, "reg")
    # The potentials take M's magnitude, and P's exponents (f + g - M) / reg carry their rounding, about
    # eps * max|M| / reg: beyond 1% every entry of the plan is off by as much, whatever the solver.
    spread = max(abs(hi), abs(lo)) / reg
    if spread * np.finfo(np.float64).eps > _PLAN_RESOLUTION:
        raise ValueError(
            f"`M` is too large for `reg`: max|M| / reg = {spread:.3g}, and float64 potentials of that size "
            f"leave the plan's entries off by factors of exp({spread * np.finfo(np.float64).eps:.2g}). Subtract "
            "M's minimum (the plan does not change), or scale M and reg down together (M / M.max(), reg / M.max())."
        )
    return reg


def marginals(a, b, n, m, numItermax, stopThr, xp):
    """The checked histograms on their supports, the supports (None: all)
    and the maps of full indices into them."""
    check_int(numItermax, "numItermax", minimum=0)
    check_nonnegative(stopThr, "stopThr")  # 0: run exactly numItermax iterations, as in POT
    a = _marginal(a, "a", n, xp)
    b = _marginal(b, "b", m, xp)
    sa, sb = float(xp.sum(a)), float(xp.sum(b))
    if abs(sa - sb) > 1e-6 * max(sa, sb):
        raise ValueError(
            f"`a` and `b` must have the same total mass; got {sa:.10g} and {sb:.10g}. "
            "Normalise them (a / a.sum(), b / b.sum()) or use unbalanced OT."
        )
    rows, row_map = _support(xp, a)
    cols, col_map = _support(xp, b)
    if rows is not None:
        a = xp.take(a, rows)
    if cols is not None:
        b = xp.take(b, cols)
    return a, b, rows, cols, row_map, col_map


# Largest rounding (in units of the exponent) of P's entries that a plan may carry: 1%.
_PLAN_RESOLUTION = 1e-2


def warn_not_converged(name, err, stopThr, numItermax):
    warnings.warn(
        f"{name} did not converge: the marginal error is {err:.3g} > stopThr={stopThr:g} after "
        f"numItermax={numItermax} iterations. Increase `numItermax`, or the regularisation `reg`.",
        UserWarning,
        stacklevel=4,
    )


def marginal_error(problem, r, c):
    """L1 marginal error ``||P 1 - a||_1 + ||P^T 1 - b||_1``."""
    xp = problem.xp
    return float(xp.sum(xp.abs(r - problem.a)) + xp.sum(xp.abs(c - problem.b)))


class Solution:
    """What an OT solver returns to the front doors: potentials on the
    support, the error history, passes over n x n arrays and extra log keys."""

    def __init__(self, f, g, errs, passes, extra=None):
        self.f = f
        self.g = g
        self.errs = errs
        self.passes = passes
        self.extra = extra or {}

    @property
    def err(self):
        return self.errs[-1] if self.errs else math.inf


def _log_dict(problem, sol, passes):
    F, G = problem.full_potentials(sol.f, sol.g)
    xp = problem.xp
    with np.errstate(over="ignore"):  # POT's scalings overflow at small reg: inf, as there
        u, v = xp.exp(F / problem.reg), xp.exp(G / problem.reg)
    out = {
        "niter": len(sol.errs),
        "err": list(sol.errs),
        "f": F,
        "g": G,
        "log_u": F / problem.reg,
        "log_v": G / problem.reg,
        "u": u,  # POT's scalings, exp(f / reg)
        "v": v,
        "n_passes": passes,
    }
    out.update(sol.extra)
    return out


def _check(sol, numItermax, stopThr, warn, name):
    if warn and not sol.err < stopThr:
        warn_not_converged(name, sol.err, stopThr, numItermax)


def plan_result(problem, sol, numItermax, stopThr, log, warn, name):
    """The plan (one more pass, into a new array), or ``(plan, log)``."""
    _check(sol, numItermax, stopThr, warn, name)
    plan = problem.plan(sol.f, sol.g)
    return (plan, _log_dict(problem, sol, sol.passes + 1)) if log else plan


def cost_result(problem, sol, numItermax, stopThr, log, warn, name):
    """The linear cost <P, M>, accumulated in one pass without storing P: a
    0-d array of ``M``'s library and dtype (a NumPy scalar for NumPy), as
    POT returns it."""
    _check(sol, numItermax, stopThr, warn, name)
    xp = problem.xp
    cost = problem.transport_cost(sol.f, sol.g)
    cost = problem.dtype.type(cost) if xp is np else xp.asarray(cost, dtype=problem.dtype)
    return (cost, _log_dict(problem, sol, sol.passes + 1)) if log else cost


def is_batched(b):
    """Whether ``b`` holds several target histograms (a 2-D array, one per
    column), which POT's Sinkhorn functions accept."""
    return _given(b) and len(getattr(b, "shape", np.shape(b))) == 2


def batched_costs(solve, a, b, M, reg, numItermax, stopThr, verbose, log, warn, warmstart, name, **options):
    """POT's several target histograms: the cost for each column of ``b``
    (POT's ``sinkhorn`` and ``sinkhorn2`` both return these losses), and
    with ``log`` the logs' arrays stacked along a last axis."""
    from ._cost import GridCost

    xp = get_namespace(a if _given(a) else None, b, None if isinstance(M, GridCost) else M)
    b = xp.asarray(b)
    costs, logs = [], []
    for k in range(b.shape[1]):
        start = None if warmstart is None else tuple(w[:, k] if getattr(w, "ndim", 1) == 2 else w for w in warmstart)
        problem = prepare(a, b[:, k], M, reg, numItermax, stopThr, grid=takes_grid(solve))
        sol = solve(problem, numItermax, stopThr, verbose, start, **options)
        cost, entry = cost_result(problem, sol, numItermax, stopThr, True, warn, name)
        costs.append(float(cost))
        logs.append(entry)
    costs = xp.asarray(costs, dtype=problem.dtype)
    if not log:
        return costs
    out = {key: xp.stack([entry[key] for entry in logs], axis=-1) for key in ("f", "g", "log_u", "log_v", "u", "v")}
    out["niter"] = max(entry["niter"] for entry in logs)
    out["err"] = [entry["err"] for entry in logs]
    out["n_passes"] = sum(entry["n_passes"] for entry in logs)
    return costs, out


def takes_grid(solve):
    """Whether ``solve`` makes its passes through the problem's methods
    only, so that a :class:`~secondorder.ot.GridCost` needs no dense matrix
    (the solvers that do are marked ``solve.takes_grid = True``)."""
    return getattr(solve, "takes_grid", False)


def run_solver(solve, name, a, b, M, reg, numItermax, stopThr, verbose, log, warn, warmstart, result=plan_result,
               **options):
    """What a POT-style front door returns, from its arguments: ``result``
    (:func:`plan_result` or :func:`cost_result`) of ``solve`` on the
    prepared problem, or for a 2-D ``b`` the costs of its columns."""
    if is_batched(b):
        return batched_costs(solve, a, b, M, reg, numItermax, stopThr, verbose, log, warn, warmstart, name, **options)
    problem = prepare(a, b, M, reg, numItermax, stopThr, grid=takes_grid(solve))
    if result is plan_result and problem.dense and problem.xp is np and getattr(solve, "uses_plan_out", False):
        # (only for a solver that lays its arrays in it: for the others the plan's array made before the solve
        # would be held beside theirs)
        problem.plan_out = populated(problem.dims, problem.dtype)
    sol = solve(problem, numItermax, stopThr, verbose, warmstart, **options)
    return result(problem, sol, numItermax, stopThr, log, warn, name)

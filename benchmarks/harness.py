"""``python -m secondorder bench``: every solver against its anchor, one process.

The harness lives with the asv suite, outside the installed package; the
entry point finds it in the clone that ``secondorder`` is installed from.

Each row runs one method on one problem to the same gradient tolerance and
reports iterations, evaluations of ``fun``, ``jac`` and the Hessian (or
Hessian-vector products), the gradient norm reached, the best wall time over
a few repeats, and that time over the time of ``secondorder`` on the same
problem (above 1: ``secondorder`` is faster).
"""

import math
import time
import warnings

import numpy as np
from scipy.optimize import minimize as scipy_minimize

from secondorder import minimize
from secondorder._timing import (
    HEADER,
    MinimizeRun,
    run_gns,
    run_scipy,
    scipy_applicable,
)
from secondorder._timing import best_time as _best_time
from secondorder.optimize import problems

__all__ = [
    "MinimizeRun",
    "bench_glm",
    "bench_mfac",
    "bench_minimize",
    "bench_ot",
    "bench_trust_region",
    "glm_problem",
    "main",
    "run_glm",
    "run_gns",
    "run_ot",
    "run_scipy",
    "run_trust_region",
]

SCIPY_METHODS = ("trust-exact", "trust-ncg", "Newton-CG", "L-BFGS-B")
SCIPY_TRUST = ("trust-exact", "trust-ncg", "trust-krylov")
# Curvature choices of method="trust-region" benchmarked against scipy's trust methods.
TRUST_VARIANTS = ("exact-dense", "exact-hessp", "precond-diag-fisher", "hutchinson", "mfac")


def trust_region_kwargs(problem, variant):
    """minimize's keyword arguments for a curvature variant of trust-region."""
    if variant == "exact-dense":
        return {"hess": problem.hess}
    if variant == "exact-hessp":
        return {"hessp": problem.hessp}
    if variant == "precond-diag-fisher":
        return {"hessp": problem.hessp, "options": {"curvature_options": {"preconditioner": "diag-fisher"}}}
    return {"hessp": problem.hessp, "options": {"curvature": variant}}


def run_trust_region(problem, variant, gtol=1e-8, repeat=3):
    kwargs = trust_region_kwargs(problem, variant)
    options = dict(kwargs.pop("options", {}))
    options["maxiter"] = 20000

    def call():
        return minimize(problem.fun, problem.x0, jac=problem.jac, method="trust-region", tol=gtol, options=options, **kwargs)

    res, seconds = _best_time(call, repeat)
    return MinimizeRun(problem, f"tr:{variant}", res, seconds)


def _scipy_rows(problem, methods, ref, gtol, repeat, out):
    """scipy's ``methods`` on ``problem``, each row timed against ``ref``
    (a single run when ``ref`` took a second or more)."""
    runs = []
    for method in methods:
        if not scipy_applicable(problem, method):
            continue
        run = run_scipy(problem, method, gtol, repeat if ref.seconds < 1 else 1)
        out(run.row(ref.seconds))
        runs.append(run)
    return runs


def _selected_problems(names):
    """The foundation problems (large sizes) whose name contains one of ``names`` (all without)."""
    return [p for p in problems.foundation_problems(large=True) if not names or any(n in p.name for n in names)]


def bench_minimize(names=None, gtol=1e-8, repeat=3, out=print):
    """The ``minimize`` table: gns and scipy's Newton-type methods."""
    out("minimize: time to ||g|| <= %.0e; 'vs gns' = method time / gns time" % gtol)
    out(HEADER)
    rows = []
    for problem in _selected_problems(names):
        # Warm-up (numba compilation, BLAS threads) outside the timings.
        run_gns(problem, gtol, repeat=1)
        ref = run_gns(problem, gtol, repeat)
        out(ref.row(ref.seconds))
        rows.append(ref)
        paper = run_gns(problem, gtol, repeat if ref.seconds < 1 else 1, variant="reference")
        out(paper.row(ref.seconds))
        rows.append(paper)
        if problem.approx_hess is not None:
            # the paper's setting: the same method on an approximate Hessian
            approx = run_gns(problem, gtol, repeat, approx=True)
            out(approx.row(ref.seconds))
            rows.append(approx)
        rows += _scipy_rows(problem, SCIPY_METHODS, ref, gtol, repeat, out)
    return rows


def bench_trust_region(names=None, gtol=1e-8, repeat=3, out=print):
    """``method="trust-region"`` with each curvature model against scipy's
    trust-region methods (time ratio against ``tr:exact-dense``, or
    ``tr:exact-hessp`` where the dense Hessian is too large)."""
    out("\ntrust-region: time to ||g|| <= %.0e; 'vs gns' column = time / time of tr:exact" % gtol)
    out(HEADER)
    rows = []
    for problem in _selected_problems(names):
        ref = None
        for variant in TRUST_VARIANTS:
            if not scipy_applicable(problem, variant):
                continue
            run_trust_region(problem, variant, gtol, repeat=1)  # warm-up
            run = run_trust_region(problem, variant, gtol, repeat)
            ref = ref or run
            out(run.row(ref.seconds))
            rows.append(run)
        rows += _scipy_rows(problem, SCIPY_TRUST, ref, gtol, repeat, out)
    return rows


def _fits_in_memory(nbytes, fraction=0.4):
    import os

    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return True
    return nbytes <= fraction * total


def bench_mfac(dims=(100_000, 1_000_000), windows=(64, 256, 1024), dtypes=("float32", "float64"), repeat=5, out=print):
    """M-FAC's step (add a gradient + IHVP) against the floor of two passes
    over the window (``G g`` and ``G^T y``, the GEMVs any method must do)
    and against refactoring ``A`` with an O(m^3) Cholesky at every step."""
    import scipy.linalg

    from secondorder.curvature import MFAC

    out("\nM-FAC: update + IHVP per step, against two GEMVs over G (the floor) and an O(m^3) refactor per step;")
    out("'protocol' is the drivers' pair update(x, g) + solve(g)")
    out(f"{'d':>9} {'m':>5} {'dtype':>8} {'step ms':>9} {'floor ms':>9} {'step/floor':>10} {'protocol/floor':>14} "
        f"{'refactor ms':>12} {'refactor/step':>13}")
    rng = np.random.default_rng(0)
    rows = []
    for d in dims:
        for m in windows:
            for dtype in dtypes:
                dt = np.dtype(dtype)
                if not _fits_in_memory(m * d * dt.itemsize * 1.2):
                    out(f"{d:>9} {m:>5} {dtype:>8}   skipped: G needs {m * d * dt.itemsize / 2**30:.1f} GiB")
                    continue
                G = rng.standard_normal((m, d), dtype=np.float32).astype(dt, copy=False)
                model = MFAC(m, damp=1e-4)
                model.fill(G)
                del G
                g = rng.standard_normal(d).astype(dt)
                model.update_and_ihvp(g)  # factor once
                model.update_and_ihvp(g)  # compile the factor-update kernel
                _, step = _best_time(lambda: model.update_and_ihvp(g), repeat)
                _, protocol = _best_time(lambda: (model.update(None, g), model.solve(g)), repeat)
                window = model._G
                y = rng.standard_normal(m).astype(dt)
                _, floor = _best_time(lambda: (window @ g, window.T @ y), repeat)
                K = model._K
                damp = model.damp

                def refactor():
                    # The same step with A factored from scratch (the O(m^3)
                    # setup of the reference implementation).
                    col = window @ g
                    A = K / damp
                    A[np.arange(m), np.arange(m)] += m
                    c = scipy.linalg.cho_factor(A, check_finite=False)
                    z = scipy.linalg.cho_solve(c, col.astype(np.float64), check_finite=False)
                    return g / damp - window.T @ z.astype(dt) / damp**2

                _, full = _best_time(refactor, max(2, repeat // 2))
                out(
                    f"{d:>9} {m:>5} {dtype:>8} {1e3 * step:>9.2f} {1e3 * floor:>9.2f} {step / floor:>10.2f} "
                    f"{protocol / floor:>14.2f} {1e3 * full:>12.2f} {full / step:>13.2f}"
                )
                rows.append({"d": d, "m": m, "dtype": dtype, "step": step, "floor": floor, "protocol": protocol,
                             "refactor": full})
                del model, window, K
    return rows


def ot_problem(kind, n, reg_seed):
    """(a, b, M) of an OT benchmark, the squared Euclidean cost scaled to
    max 1: ``"clouds"``, 2-D uniform point clouds; ``"apart"``, two Gaussian
    clouds six standard deviations apart (the costs vary little relative
    to their size: a spread plan); ``"images"``, two random images on a
    square grid of about ``n`` cells with half of each one's cells empty;
    ``"assignment"``, the random assignment problem of Tang et al.
    (C ~ U[0, 1])."""
    from secondorder.ot import dist, grid_cost

    rng = np.random.default_rng(reg_seed)
    a = np.full(n, 1.0 / n)
    b = a.copy()
    if kind == "assignment":
        M = rng.random((n, n))
    elif kind == "images":
        side = int(round(np.sqrt(n)))
        M = grid_cost((side, side))
        a, b = (rng.random(side * side) * (rng.random(side * side) < 0.5) for _ in range(2))
        a, b = a / a.sum(), b / b.sum()
    else:
        x = rng.standard_normal((n, 2)) if kind == "apart" else rng.random((n, 2))
        y = rng.standard_normal((n, 2)) + np.array([6.0, 0.0]) if kind == "apart" else rng.random((n, 2))
        M = dist(x, y)
    M /= M.max()
    return a, b, M


def _l1_error(P, a, b):
    return float(np.abs(P.sum(axis=1) - a).sum() + np.abs(P.sum(axis=0) - b).sum())


def run_ot(method, a, b, M, reg, stopThr=1e-9, max_iter=None):
    """One OT solve: (seconds, iterations, L1 marginal error of the plan).

    POT and RegOT stop on other norms (POT: L2 of the column marginal;
    RegOT: L2 of the dual gradient); they are given ``stopThr / sqrt(n)``,
    which guarantees the L1 target, and the error of the plan each returns
    is measured the same way for all.
    """
    import time as _time

    n = M.shape[0]
    if method.endswith("@grid"):
        # the same images' cost as a GridCost (ot_problem scales it to max 1): no n x n matrix in the solve
        from secondorder.ot import GridCost

        side = int(round(math.sqrt(n)))
        M = GridCost((side, side), spacing=1.0 / ((side - 1) * math.sqrt(2.0)))
        method = method[: -len("@grid")]
    if method.startswith("so:"):
        from secondorder import ot as so_ot

        t0 = _time.perf_counter()
        P, log = so_ot.sinkhorn(a, b, M, reg, method=method[3:], stopThr=stopThr, numItermax=max_iter or 10**6, log=True, warn=False)
        seconds = _time.perf_counter() - t0
        return seconds, log["niter"], _l1_error(P, a, b), log
    if method == "pot:emd":
        import ot as pot

        t0 = _time.perf_counter()
        P = pot.emd(a, b, M, numItermax=10**8)
        seconds = _time.perf_counter() - t0
        return seconds, 0, _l1_error(P, a, b), {}
    if method.startswith("pot:"):
        import ot as pot

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # POT's epsilon scaling warns from its inner solves whatever `warn` says
            t0 = _time.perf_counter()
            P, log = pot.sinkhorn(a, b, M, reg, method=method[4:], stopThr=stopThr / np.sqrt(n),
                                  numItermax=max_iter or 10**6, log=True, warn=False)
            seconds = _time.perf_counter() - t0
        return seconds, log.get("niter", log.get("n_iter", 0)), _l1_error(P, a, b), log
    if method == "regot:ssns":
        import regot

        Mf = np.asfortranarray(M)
        t0 = _time.perf_counter()
        res = regot.sinkhorn_ssns(Mf, a, b, reg, tol=stopThr / np.sqrt(n), max_iter=max_iter or 1000)
        seconds = _time.perf_counter() - t0
        return seconds, res.niter, _l1_error(res.plan, a, b), {}
    raise ValueError(method)


def bench_ot(sizes=(500, 1000, 2000), regs=(1e-2, 1e-3), draws=3, assignment_size=500, max_iter=None, large=(3000, 10000),
             grid_sides=(128,), out=print):
    """SNS and our Sinkhorns against POT's exact solver (``emd``, the
    network simplex), POT's ``sinkhorn`` and ``sinkhorn_log`` and RegOT's
    ``sinkhorn_ssns``, the entropic ones to an L1 marginal error of 1e-9;
    uniform clouds, clouds apart and half-empty images.

    ``max_iter`` caps the iterations of every method (default: a million
    for the Sinkhorns, RegOT's 1000).  ``large``: sizes of uniform clouds
    and half-empty images at the smallest ``reg`` where only SNS and
    ``ot.emd`` run.  Images are also solved with their cost as a
    :class:`~secondorder.ot.GridCost` (``so:sns@grid``), and alone that
    way and by ``ot.emd`` on square grids of ``grid_sides``."""
    import importlib.util
    import math

    have_pot = importlib.util.find_spec("ot") is not None
    have_regot = importlib.util.find_spec("regot") is not None
    out("\nOT: time to an L1 marginal error of 1e-9 ('vs sns' = method time / sns time)")
    out(f"{'problem':<26} {'method':<16} {'iters':>7} {'L1 err':>9} {'time s':>9} {'vs sns':>8}")
    methods = ["so:sns", "so:sinkhorn"]
    if have_pot:
        methods += ["pot:emd", "pot:sinkhorn"]
    if have_regot:
        methods.append("regot:ssns")
    # numba compilation and caches outside the timings
    a, b, M = ot_problem("clouds", 50, 0)
    for m in ("so:sns", "so:sinkhorn_log", "so:sinkhorn"):
        run_ot(m, a, b, M, 1e-2)
    for kind in ("clouds", "images"):  # the Newton stage's kernels, also on a cost restricted to a support
        run_ot("so:sns", *ot_problem(kind, 64, 0), 1e-3)
    run_ot("so:sns@grid", *ot_problem("images", 64, 0), 1e-3)
    # (kind, n, reg, whether only SNS and ot.emd run)
    cases = (
        [("assignment", assignment_size, 1 / 1200, False)]
        + [("clouds", n, reg, False) for n in sizes for reg in regs]
        + [(kind, n, min(regs), False) for kind in ("apart", "images") for n in sizes[:2]]
        + [(kind, n, min(regs), True) for kind in ("clouds", "images") for n in large]
        + [("images", side * side, min(regs), True) for side in grid_sides]
    )
    ratios = {}
    for kind, n, reg, exact_only in cases:
        for draw in range(draws if (kind, n, reg) == ("clouds", max(sizes), min(regs)) else 1):
            a, b, M = ot_problem(kind, n, draw)
            label = f"{kind} n={n} reg={reg:.2g}" + (f" #{draw}" if draw else "")
            ref = None
            for m in methods[:1] + (["so:sns@grid"] if kind == "images" else []) + methods[1:]:
                if m in ("pot:sinkhorn", "regot:ssns") and kind in ("apart", "images"):
                    continue  # minutes on these at small reg: the exact solver is the anchor there
                if exact_only and m not in ("so:sns", "pot:emd", "so:sns@grid"):
                    continue
                if m == "so:sns" and kind == "images" and n > max(large):
                    continue  # the grid's size: its dense cost is for ot.emd
                seconds, iters, err, _ = run_ot(m, a, b, M, reg, max_iter=max_iter)
                ref = ref or seconds
                ratios.setdefault((kind, n, reg, m), []).append(seconds / ref)
                out(f"{label:<26} {m:<16} {iters:>7} {err:>9.1e} {seconds:>9.3f} {seconds / ref:>8.2f}")
            # per-iteration cost of the log-domain Sinkhorns, POT's capped (it
            # needs minutes to converge at small reg)
            if have_pot and kind in ("clouds", "assignment") and not exact_only:
                t_so, it_so, _, _ = run_ot("so:sinkhorn_log", a, b, M, reg, stopThr=1e-300, max_iter=50)
                t_pot, it_pot, _, _ = run_ot("pot:sinkhorn_log", a, b, M, reg, stopThr=1e-300, max_iter=50)
                per_so, per_pot = t_so / max(it_so, 1), t_pot / max(it_pot, 1)
                out(
                    f"{label:<26} {'log per iter':<16} {'':>7} {'':>9} {per_so:>9.5f} "
                    f"{'':>8}  pot:sinkhorn_log {per_pot:.5f} s/iter = {per_pot / per_so:.1f}x ours"
                )
    if have_pot:
        # POT's other methods, ours against theirs (greedy Greenkhorn needs O(n) iterations per Sinkhorn one:
        # a small problem)
        a, b, M = ot_problem("clouds", 300, 0)
        label = "clouds n=300 reg=0.01"
        for m in ("so:sinkhorn_epsilon_scaling", "pot:sinkhorn_epsilon_scaling", "so:greenkhorn", "pot:greenkhorn",
                  "pot:emd"):
            seconds, iters, err, _ = run_ot(m, a, b, M, 1e-2, max_iter=max_iter)
            out(f"{label:<26} {m:<16} {iters:>7} {err:>9.1e} {seconds:>9.3f}")
    key = ("clouds", max(sizes), min(regs))
    for m in methods[1:]:
        r = ratios.get(key + (m,))
        if r:
            out(f"geometric mean over {len(r)} draws at n={key[1]}, reg={key[2]:g}: {m} / so:sns = "
                f"{math.exp(sum(math.log(x) for x in r) / len(r)):.2f}")
    return ratios


GLM_PROBLEMS = {
    "binary-200000x100": dict(kind="binary", n=200_000, d=100),
    "binary-50000x500": dict(kind="binary", n=50_000, d=500),
    "softmax-100000x100x10": dict(kind="softmax", n=100_000, d=100, K=10),
    "digits-softmax": dict(kind="digits"),
    "sparse-100000x20000": dict(kind="sparse", n=100_000, d=20_000, density=1e-3),
}


def glm_problem(name, scale=1.0, seed=0):
    """(X, y) of a GLM benchmark; ``scale`` shrinks the sample count (tests).

    Labels are drawn from the model itself (a logistic or softmax model with
    weights of unit total scale), so the classes overlap and the solution
    is well defined at scikit-learn's default ``C = 1``.
    """
    spec = GLM_PROBLEMS[name]
    rng = np.random.default_rng(seed)
    if spec["kind"] == "digits":
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        X = (X - X.mean(0)) / np.maximum(X.std(0), 1e-12)
        return X, y
    n, d = max(50, int(spec["n"] * scale)), spec["d"]
    if spec["kind"] == "sparse":
        import scipy.sparse

        X = scipy.sparse.random(n, d, density=spec["density"], format="csr", random_state=seed, data_rvs=rng.standard_normal)
        w = 3.0 * rng.standard_normal(d)
        z = X @ w
    else:
        X = rng.standard_normal((n, d))
        W = 3.0 * rng.standard_normal((spec.get("K", 1), d)) / np.sqrt(d)
        z = X @ W.T
    if spec["kind"] == "softmax":
        y = np.argmax(z + rng.gumbel(size=z.shape), axis=1)
    else:
        y = (rng.random(n) < 1.0 / (1.0 + np.exp(-np.ravel(z)))).astype(int)
    return X, y


class NumpyLogisticLoss:
    """The L2 logistic (binary or softmax) loss as a scipy user writes it:
    vectorised NumPy and BLAS, two passes over ``X`` per gradient and per
    Hessian-vector product.  The anchor's objective for scipy's methods."""

    def __init__(self, X, y, alpha):
        from scipy.special import expit, logsumexp

        self.X, self.alpha = X, alpha
        self.n, self.d = X.shape
        classes, y = np.unique(y, return_inverse=True)
        self.K = 1 if classes.shape[0] == 2 else classes.shape[0]
        self.Y = y.astype(float) if self.K == 1 else np.eye(self.K)[y]
        self._expit, self._logsumexp = expit, logsumexp
        self._w = None

    def _unpack(self, w):
        W = w[: self.K * self.d].reshape(self.K, self.d)
        return W, w[self.K * self.d :]

    def value_and_grad(self, w):
        W, b = self._unpack(w)
        Z = self.X @ W.T + b
        if self.K == 1:
            z = Z[:, 0]
            value = np.mean(np.logaddexp(0.0, z) - self.Y * z)
            self._P = self._expit(z)
            R = (self._P - self.Y)[:, None] / self.n
        else:
            lse = self._logsumexp(Z, axis=1)
            value = np.mean(lse - (Z * self.Y).sum(1))
            self._P = np.exp(Z - lse[:, None])
            R = (self._P - self.Y) / self.n
        self._w = w.copy()
        value += 0.5 * self.alpha * float(np.sum(W * W))
        gW = np.asarray(self.X.T @ R).T + self.alpha * W
        return value, np.concatenate([gW.ravel(), R.sum(0)])

    def hessp(self, w, v):
        if self._w is None or not np.array_equal(w, self._w):
            self.value_and_grad(w)
        V, vb = self._unpack(v)
        U = self.X @ V.T + vb
        if self.K == 1:
            R = (self._P * (1.0 - self._P))[:, None] * U / self.n
        else:
            R = self._P * (U - (self._P * U).sum(1, keepdims=True)) / self.n
        HV = np.asarray(self.X.T @ R).T + self.alpha * V
        return np.concatenate([HV.ravel(), R.sum(0)])


def run_glm(method, X, y, gtol=1e-8):
    """Fit L2 logistic regression (C = 1) to a gradient norm of ``gtol`` on
    the scaled objective: (seconds, iterations, gradient norm reached).

    scikit-learn's and scipy's solvers stop on other tests (max-abs
    gradient, step sizes, function change); they get ``gtol / sqrt(p)``
    and no function-change stop where that can be set, and the gradient norm
    each reaches is measured with the same loss for all.  scipy's methods
    run on :class:`NumpyLogisticLoss`, the loss a scipy user writes.
    """
    import warnings

    from secondorder.linear_model import LogisticLoss, LogisticRegression, SoftmaxLoss

    classes = np.unique(y)
    K = classes.shape[0]
    d = X.shape[1]
    p = (1 if K == 2 else K) * (d + 1)
    tol = gtol / np.sqrt(p)
    n = X.shape[0]
    loss = LogisticLoss(X, y, alpha=1.0 / n) if K == 2 else SoftmaxLoss(X, y, alpha=1.0 / n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        if method.startswith("so:"):
            clf = LogisticRegression(solver=method[3:], tol=gtol, max_iter=1000).fit(X, y)
        elif method.startswith("sk:"):
            from sklearn.linear_model import LogisticRegression as SKLogisticRegression

            clf = SKLogisticRegression(solver=method[3:], tol=tol, max_iter=10000).fit(X, y)
        else:
            w0 = np.zeros(loss.n_params)
            ref = NumpyLogisticLoss(X, y, 1.0 / n)
            if method == "scipy:L-BFGS-B":
                res = scipy_minimize(ref.value_and_grad, w0, jac=True, method="L-BFGS-B",
                                     options={"gtol": tol, "ftol": 0.0, "maxiter": 10000})
            else:
                res = scipy_minimize(ref.value_and_grad, w0, jac=True, hessp=ref.hessp, method="Newton-CG",
                                     options={"xtol": 1e-14, "maxiter": 1000})
        seconds = time.perf_counter() - t0
    if method.startswith("scipy:"):
        w, nit = res.x, res.nit
    else:
        coef, intercept = clf.coef_, clf.intercept_
        if K > 2:
            intercept = intercept - intercept.mean()
        w = np.concatenate([np.ravel(coef), np.ravel(intercept)]).astype(np.float64)
        nit = int(np.max(clf.n_iter_))
    return seconds, nit, float(np.linalg.norm(loss.grad(w)))


def glm_methods(name):
    """The methods that apply to a problem (newton-cholesky forms the dense
    Hessian: not at 20,000 features)."""
    ours = ["so:auto", "so:gns", "so:trust-region"]
    anchors = ["sk:lbfgs", "sk:newton-cg", "sk:newton-cholesky", "scipy:L-BFGS-B", "scipy:Newton-CG"]
    if GLM_PROBLEMS[name].get("d", 0) > 2000:
        anchors.remove("sk:newton-cholesky")
    return ours + anchors


def bench_glm(names=None, gtol=1e-8, scale=1.0, repeat=2, out=print):
    """Logistic and softmax regression against scikit-learn and scipy (best
    time of ``repeat`` runs each).

    Methods are compared at the same final gradient norm: an anchor that
    stops short of ``gtol`` (scipy's Newton-CG stops on its step size, or
    when the curvature along a CG direction falls below ``3 eps``) is
    compared with gns run to the gradient norm that anchor reached.  The
    summary line is the smallest of these ratios over the anchors.
    Returns ``{problem: (ratio, anchor)}``."""
    import math

    out(f"\nLogistic regression (C = 1): time to a gradient norm of {gtol:g} ('vs auto' = method time / the default's)")
    out(f"{'problem':<24} {'method':<20} {'iters':>6} {'||g||':>9} {'time s':>8} {'vs auto':>7}")
    # numba compilation and caches outside the timings
    for name in ("binary-200000x100", "softmax-100000x100x10", "sparse-100000x20000"):
        Xs, ys = glm_problem(name, scale=1e-3)
        run_glm("so:gns", Xs, ys)
    summary = {}

    def best(method, X, y, tol):
        runs = []
        for _ in range(max(1, repeat)):
            # OpenBLAS threads spin for a while after a call and take the
            # cores from whatever runs next: every run starts from rest.
            time.sleep(0.2)
            runs.append(run_glm(method, X, y, tol))
        return min(runs)

    for name in GLM_PROBLEMS:
        if names and not any(k in name for k in names):
            continue
        X, y = glm_problem(name, scale=scale)
        ref = None
        results = {}
        for method in glm_methods(name):
            seconds, nit, gnorm = results[method] = best(method, X, y, gtol)
            ref = ref or seconds
            out(f"{name:<24} {method:<20} {nit:>6} {gnorm:>9.1e} {seconds:>8.3f} {seconds / ref:>7.2f}")
        ratio, anchor = math.inf, None
        for method, (seconds, _, gnorm) in results.items():
            if method.startswith("so:"):
                continue
            matched = ref
            if gnorm > gtol and math.isfinite(gnorm):
                # the default to the gradient norm this anchor stopped at
                matched, nit, reached = best("so:auto", X, y, gnorm)
                out(f"{name:<24} {'so:auto to ' + format(gnorm, '.1e'):<20} {nit:>6} {reached:>9.1e} {matched:>8.3f} "
                    f"{seconds / matched:>7.2f}  (vs {method})")
            if seconds / matched < ratio:
                ratio, anchor = seconds / matched, method
        summary[name] = (ratio, anchor)
        out(f"{name:<24} fastest anchor / the default at the same final gradient norm = {ratio:.2f} ({anchor})")
    return summary


def _stochastic(*args, **kwargs):
    """The stochastic optimisers' tables (``benchmarks/harness_stochastic.py``,
    imported when asked for: it needs scikit-learn, and PyTorch for two of
    its tables)."""
    from benchmarks.harness_stochastic import bench_stochastic

    return bench_stochastic(*args, **kwargs)


def _gpu(*args, **kwargs):
    """The GPU table (``benchmarks/harness_gpu.py``); without a
    device it says so and runs nothing."""
    from benchmarks.harness_gpu import bench_gpu

    return bench_gpu(*args, **kwargs)


def _glm_grid(*args, **kwargs):
    """The estimators' defaults against every scikit-learn solver over a
    grid of shapes (``benchmarks/harness_glm_grid.py``)."""
    from benchmarks.harness_glm_grid import bench_glm_grid

    return bench_glm_grid(*args, **kwargs)


def _dask(*args, **kwargs):
    """The Dask tables (``benchmarks/harness_dask.py``): secondorder against
    dask-ml on a local cluster of worker processes, on the problems of the
    Dask guide; the worst ratio of dask-ml's fastest to ours."""
    from benchmarks.harness_dask import PROBLEMS, bench_dask

    ratios = [bench_dask(n, d, partitions, *args, correlated=correlated, **kwargs)
              for n, d, partitions, correlated in PROBLEMS]
    print(f"dask: worst fastest dask-ml / fastest secondorder = {min(ratios):.2f}")
    return min(ratios)


SUITES = {
    "minimize": bench_minimize,
    "trust-region": bench_trust_region,
    "glm": bench_glm,
    "ot": bench_ot,
    "glm-grid": _glm_grid,
    "mfac": bench_mfac,
    "stochastic": _stochastic,
    "gpu": _gpu,
    "dask": _dask,
}



def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(prog="python -m secondorder bench", description=__doc__.splitlines()[0])
    parser.add_argument("suites", nargs="*", help=f"which tables, of {', '.join(SUITES)} (default: all)")
    parser.add_argument("--only", nargs="*", help="run only problems whose name contains one of these")
    parser.add_argument("--repeat", type=int, default=3, help="timing repeats (best is kept)")
    parser.add_argument("--gtol", type=float, default=1e-8)
    parser.add_argument("--mfac-dims", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--mfac-windows", type=int, nargs="*", default=[64, 256, 1024])
    parser.add_argument("--glm-scale", type=float, default=1.0, help="fraction of the GLM problems' samples")
    parser.add_argument("--ot-sizes", type=int, nargs="*", default=[500, 1000, 2000])
    parser.add_argument("--ot-draws", type=int, default=3)
    parser.add_argument("--ot-assignment-size", type=int, default=500)
    parser.add_argument("--ot-max-iter", type=int, default=None, help="iteration cap of every OT method")
    parser.add_argument("--ot-large", type=int, nargs="*", default=[3000, 10_000],
                        help="sizes of the clouds and images where only SNS and ot.emd run")
    parser.add_argument("--ot-grid-sides", type=int, nargs="*", default=[128],
                        help="sides of the square images solved with a GridCost and by ot.emd alone")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per learning rate (stochastic table)")
    parser.add_argument("--no-charlm", action="store_true", help="skip the character-level transformer (stochastic)")
    parser.add_argument("--gpu", action="store_true", help="the GPU table only (the same as the suite name gpu)")
    parser.add_argument("--gpu-ot-sizes", type=int, nargs="*", default=[10_000, 20_000])
    args = parser.parse_args(argv)
    unknown = sorted(set(args.suites) - set(SUITES))
    if unknown:
        parser.error(f"unknown suite(s) {', '.join(unknown)}; choose from {', '.join(SUITES)}")
    suites = ["gpu"] if args.gpu else (args.suites or list(SUITES))
    if "minimize" in suites:
        bench_minimize(args.only, args.gtol, args.repeat)
    if "trust-region" in suites:
        bench_trust_region(args.only, args.gtol, args.repeat)
    if "glm" in suites:
        bench_glm(args.only, args.gtol, scale=args.glm_scale, repeat=min(args.repeat, 2))
    if "glm-grid" in suites:
        _glm_grid(args.only, scale=args.glm_scale, repeat=min(args.repeat, 2))
    if "ot" in suites:
        bench_ot(tuple(args.ot_sizes), draws=args.ot_draws, assignment_size=args.ot_assignment_size, max_iter=args.ot_max_iter,
                 large=tuple(args.ot_large), grid_sides=tuple(args.ot_grid_sides))
    if "mfac" in suites:
        bench_mfac(tuple(args.mfac_dims), tuple(args.mfac_windows), repeat=max(args.repeat, 3))
    if "stochastic" in suites:
        _stochastic(seeds=tuple(range(args.seeds)), charlm=not args.no_charlm)
    if "dask" in suites:
        _dask(repeat=max(1, min(args.repeat, 2)))
    if "gpu" in suites:
        _gpu(ot_sizes=tuple(args.gpu_ot_sizes), repeat=args.repeat)

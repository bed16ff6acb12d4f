"""The estimators with default settings against every scikit-learn solver,
over a grid of shapes: ``python -m secondorder bench glm-grid``.

Each case fits L2 logistic regression with ``tol=1e-8`` and our defaults
(``solver="auto"``), and each scikit-learn solver (lbfgs, newton-cg,
newton-cholesky, sag, saga) with the loosest ``tol`` of a ladder at which it
reaches a gradient norm of 1e-6 on the same objective (scikit-learn's
objective: the mean loss plus ``||W||^2 / (2 C n)``).  The ratio is the time
of scikit-learn's fastest solver over ours: above 1 means ours is faster.
"""

import time
import warnings

import numpy as np

# The grid: each row varies the shape, the kind of data, the conditioning
# (features whose scales spread over ``spread``; ``correlated`` mixes them)
# and C.  n from 10^3 to 10^6, d from 10 to 10^4.
GRID = {
    "binary-1000000x10": dict(n=1_000_000, d=10),
    "binary-1000x10-C1e4": dict(n=1000, d=10, C=1e4),
    "binary-3000x100": dict(n=3000, d=100),
    "binary-10000x30": dict(n=10_000, d=30),
    "binary-100000x100-unscaled1e3": dict(n=100_000, d=100, spread=1e3),
    "binary-10000x1000-C1e-2": dict(n=10_000, d=1000, C=1e-2),
    "binary-2000x10000": dict(n=2000, d=10_000),
    "binary-30000x200-correlated": dict(n=30_000, d=200, correlated=True, C=10.0),
    "sparse-100000x10000-C1e4": dict(n=100_000, d=10_000, sparse=1e-3, C=1e4),
    "sparse-300000x1000-softmax5": dict(n=300_000, d=1000, sparse=1e-2, K=5),
    "softmax-100000x50x10-unscaled1e2": dict(n=100_000, d=50, K=10, spread=1e2, C=1e2),
    "softmax-30000x300x3-correlated": dict(n=30_000, d=300, K=3, correlated=True),
    "softmax-1000x10x3": dict(n=1000, d=10, K=3),
    "digits-softmax": dict(kind="digits"),
    "digits-softmax-unscaled-C1e2": dict(kind="digits", raw=True, C=1e2),
}

SKLEARN_SOLVERS = ("lbfgs", "newton-cg", "newton-cholesky", "sag", "saga")
GOAL = 1e-6  # the gradient norm an anchor must reach
TOL = 1e-8  # ours


def grid_problem(name, scale=1.0, seed=0):
    """``(X, y, C)`` of a grid case; ``scale`` shrinks the sample count."""
    spec = dict(GRID[name])
    C = spec.pop("C", 1.0)
    rng = np.random.default_rng(seed)
    if spec.get("kind") == "digits":
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        if not spec.get("raw"):
            X = (X - X.mean(0)) / np.maximum(X.std(0), 1e-12)
        return X, y, C
    n, d, K = max(200, int(spec["n"] * scale)), spec["d"], spec.get("K", 2)
    scales = np.logspace(0, np.log10(spec.get("spread", 1.0)), d)
    rng.shuffle(scales)
    if spec.get("sparse"):
        import scipy.sparse

        X = scipy.sparse.random(n, d, density=spec["sparse"], format="csr", random_state=seed,
                                data_rvs=rng.standard_normal)
        X = (X @ scipy.sparse.diags(scales)).tocsr()
        nnz_per_row = spec["sparse"] * d
    else:
        X = rng.standard_normal((n, d))
        if spec.get("correlated"):
            # a random mixing with a near-duplicate column: condition number ~1e6
            X = X @ (np.eye(d) + 2.0 * rng.standard_normal((d, d)) / np.sqrt(d))
            X[:, 1] = X[:, 0] + 1e-3 * rng.standard_normal(n)
        X *= scales
        nnz_per_row = d
    W = 3.0 * rng.standard_normal((K if K > 2 else 1, d)) / scales / np.sqrt(nnz_per_row)
    Z = np.asarray(X @ W.T)
    if K > 2:
        y = np.argmax(Z + rng.gumbel(size=Z.shape), axis=1)
    else:
        y = (rng.random(n) < 1.0 / (1.0 + np.exp(-Z[:, 0]))).astype(int)
    return X, y, C


def _gradient_norm(X, y, C, coef, intercept):
    from secondorder.linear_model import LogisticLoss, SoftmaxLoss

    n = X.shape[0]
    K = np.unique(y).shape[0]
    if K == 2:
        loss = LogisticLoss(X, y, alpha=1.0 / (C * n))
    else:
        loss = SoftmaxLoss(X, y, alpha=1.0 / (C * n))
        intercept = intercept - intercept.mean()
    w = np.concatenate([np.ravel(coef), np.ravel(intercept)]).astype(np.float64)
    return float(np.linalg.norm(loss.grad(w)))


def fit(method, X, y, C, tol):
    """(seconds, iterations, gradient norm, what ran) of one fit."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        time.sleep(0.2)  # BLAS threads from the last call at rest
        t0 = time.perf_counter()
        if method == "ours":
            from secondorder.linear_model import LogisticRegression

            clf = LogisticRegression(C=C, tol=tol, max_iter=1000).fit(X, y)
            label = clf.solver_
        else:
            from sklearn.linear_model import LogisticRegression

            # sag and saga count epochs: 300 of them bound their time on the largest cases
            max_iter = 300 if method in ("sag", "saga") else 1000
            clf = LogisticRegression(C=C, solver=method, tol=tol, max_iter=max_iter).fit(X, y)
            label = f"tol={tol:g}"
        seconds = time.perf_counter() - t0
    return seconds, int(np.max(clf.n_iter_)), _gradient_norm(X, y, C, clf.coef_, clf.intercept_), label


def _ladder(p):
    """scikit-learn tolerances from loose to tight (its tests bound the
    largest gradient entry or the step, not the gradient norm)."""
    return (GOAL, GOAL / np.sqrt(p), 1e-2 * GOAL / np.sqrt(p))


def anchor(method, X, y, C, repeat, beat=np.inf):
    """``(row, why)``: the best time of ``method`` at the loosest tolerance of
    the ladder that reaches :data:`GOAL`, or ``None`` and the reason: none
    does, the dense Hessian of newton-cholesky would not fit, or a run
    took longer than ``beat`` (the fastest anchor so far; a tighter
    tolerance only takes longer, so the solver cannot be the fastest)."""
    K = np.unique(y).shape[0]
    p = (1 if K == 2 else K) * (X.shape[1] + 1)
    if method == "newton-cholesky" and p > 3000:
        return None, "not run: its dense Hessian is too large"
    for tol in _ladder(p):
        first = fit(method, X, y, C, tol)
        if first[2] <= GOAL:
            return min([first] + [fit(method, X, y, C, tol) for _ in range(repeat - 1)]), None
        if first[0] > beat:
            return None, f"slower than the fastest ({first[0]:.3f} s at tol={tol:g}, ||g|| = {first[2]:.1e})"
    return None, f"did not reach {GOAL:g} (||g|| = {first[2]:.1e} at tol={tol:g})"


def bench_glm_grid(names=None, scale=1.0, repeat=2, out=print):
    """The grid table; returns ``{case: (ratio, fastest anchor)}``."""
    from secondorder.linear_model import LogisticRegression

    out(f"\nLogistic regression, defaults (tol={TOL:g}) against every scikit-learn solver reaching ||g|| <= {GOAL:g} "
        "(ratio = anchor time / ours)")
    out(f"{'case':<34} {'method':<16} {'iters':>6} {'||g||':>9} {'time s':>8} {'ratio':>7}  note")
    X, y, C = grid_problem("binary-1000x10-C1e4")
    LogisticRegression().fit(X, y)  # numba caches loaded outside the timings
    summary = {}
    for name in GRID:
        if names and not any(k in name for k in names):
            continue
        X, y, C = grid_problem(name, scale)
        ours = min(fit("ours", X, y, C, TOL) for _ in range(max(1, repeat)))
        out(f"{name:<34} {'ours':<16} {ours[1]:>6} {ours[2]:>9.1e} {ours[0]:>8.3f} {1.0:>7.2f}  {ours[3]}")
        best = (np.inf, None)
        for method in SKLEARN_SOLVERS:
            row, why = anchor(method, X, y, C, repeat, best[0])
            if row is None:
                out(f"{name:<34} {'sk:' + method:<16} {'':>6} {'':>9} {'':>8} {'':>7}  {why}")
                continue
            out(f"{name:<34} {'sk:' + method:<16} {row[1]:>6} {row[2]:>9.1e} {row[0]:>8.3f} {row[0] / ours[0]:>7.2f}  "
                f"{row[3]}")
            best = min(best, (row[0], method))
        ratio = best[0] / ours[0]
        summary[name] = (ratio, best[1])
        out(f"{name:<34} fastest scikit-learn / ours = {ratio:.2f} ({best[1]})")
    if summary:
        worst = min(summary, key=lambda k: summary[k][0])
        out(f"worst case: {worst} at {summary[worst][0]:.2f}")
    return summary

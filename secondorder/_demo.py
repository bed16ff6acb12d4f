"""``python -m secondorder demo``: a short tour of what the library solves.

Each part solves real problems, prints what it solved and how fast against
the library users would otherwise reach for, and adds panels to a
convergence plot (written when matplotlib is installed).
"""

import numpy as np

from ._timing import run_gns, run_scipy
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
        out(f"{problem.name}: n = {problem.x0.size}")
        out(f"  {'method':<16} {'iterations':>10} {'f evals':>8} {'||g||':>9} {'time ms':>9} {'vs gns':>7}")
        traces = {}
        methods = ["gns", "trust-exact", "L-BFGS-B"]
        if problem.approx_hess is not None:
            methods.insert(1, "gns:approx")  # the paper's setting: an approximate Hessian
        for method in methods:
            if method == "gns":
                run = gns
            elif method == "gns:approx":
                run = run_gns(problem, repeat=3, approx=True)
            else:
                run = run_scipy(problem, method, repeat=3)
            r = run.res
            out(
                f"  {method:<16} {r.nit:>10} {r.nfev:>8} {run.gnorm:>9.1e} "
                f"{1e3 * run.seconds:>9.2f} {run.seconds / gns.seconds:>7.2f}"
            )
            trace = _Trace(problem)
            if method.startswith("gns"):
                run_gns(problem, repeat=1, callback=trace, approx=method == "gns:approx")
            else:
                run_scipy(problem, method, repeat=1, callback=trace)
            traces[method] = trace.gnorms
        if problem.approx_name:
            out(f"  (gns:approx uses the {problem.approx_name} approximation)")
        panels.append(_Curves(problem.name, traces, "iteration", "gradient norm"))
    return panels


class _Curves:
    """A plot panel: one semilog curve per method."""

    def __init__(self, title, traces, xlabel, ylabel, lead="gns", xlog=False):
        self.title, self.traces, self.xlabel, self.ylabel, self.lead = title, traces, xlabel, ylabel, lead
        self.xlog = xlog

    def draw(self, ax):
        for label, values in self.traces.items():
            # a trace is its values, or (iterations, values)
            its, values = values if isinstance(values, tuple) else (np.arange(len(values)), values)
            ax.semilogy(its, np.maximum(values, 1e-16), label=label, lw=1.6 if label == self.lead else 1.0)
        if self.xlog:
            ax.set_xscale("symlog", linthresh=10)
        ax.set_title(self.title, fontsize=10)
        ax.set_xlabel(self.xlabel)
        ax.set_ylabel(self.ylabel)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8)


class _Image:
    """A plot panel: an image, optionally with arrows on it."""

    def __init__(self, title, image, cmap="gray", arrows=None):
        self.title, self.image, self.cmap, self.arrows = title, image, cmap, arrows

    def draw(self, ax):
        ax.imshow(self.image, cmap=self.cmap, interpolation="nearest")
        if self.arrows is not None:
            # segments from each cell to where its mass goes, a dot at the end
            y, x, dy, dx = self.arrows
            ax.plot(np.stack([x, x + dx]), np.stack([y, y + dy]), color="tab:red", lw=0.8)
            ax.plot(x + dx, y + dy, "o", color="tab:red", ms=1.5)
        ax.set_title(self.title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])


def _sample_images(size):
    """Two grey-level images shipped with matplotlib (a portrait and an MRI
    slice), block-averaged to ``size x size``; two synthetic blobs when
    matplotlib is not installed."""
    try:
        import matplotlib.pyplot as plt
        from matplotlib import cbook

        with cbook.get_sample_data("grace_hopper.jpg") as fh:
            portrait = plt.imread(fh)[..., :3].mean(axis=-1)
        with cbook.get_sample_data("s1045.ima.gz") as fh:
            mri = np.frombuffer(fh.read(), "<u2").reshape(256, 256).astype(float)
        names = ("portrait (grace_hopper.jpg)", "MRI slice (s1045.ima.gz)")
        images = (portrait, mri)
    except ImportError:
        t = np.linspace(-1, 1, 128)
        xx, yy = np.meshgrid(t, t)
        images = (np.exp(-8 * ((xx + 0.3) ** 2 + yy**2)), np.exp(-4 * (xx**2 + (yy - 0.4) ** 2)))
        names = ("blob A", "blob B")
    out = []
    for image in images:
        h, w = image.shape
        side = min(h, w) // size * size
        top, left = (h - side) // 2, (w - side) // 2
        crop = image[top : top + side, left : left + side]
        out.append(crop.reshape(size, side // size, size, side // size).mean(axis=(1, 3)))
    return names, out


def part_ot(size=32, regs=(1e-3, 3e-4), out=print):
    """Part 2: W2 between two images by Sinkhorn-Newton-Sparse against POT."""
    import time
    import warnings

    from . import ot

    out(f"\n== 2. Optimal transport: W2 between two {size}x{size} images, Sinkhorn-Newton-Sparse ==")
    names, (source, target) = _sample_images(size)
    a, b = source.ravel() / source.sum(), target.ravel() / target.sum()
    M = ot.grid_cost(source.shape)  # squared distances in the unit square
    out(f"{names[0]} -> {names[1]}: n = {a.size} cells, {int((b == 0).sum())} empty target cells")
    try:
        import ot as pot
    except ImportError:
        pot = None
        out("  (install POT for the comparison: pip install pot)")
    if pot is not None:
        t0 = time.perf_counter()
        exact = pot.emd2(a, b, M)
        out(f"  exact W2^2 (ot.emd2) = {exact:.6f} in {time.perf_counter() - t0:.3f} s")
    out(f"  {'reg':>7} {'method':<14} {'iterations':>10} {'L1 err':>9} {'<P, M>':>9} {'time s':>8} {'vs sns':>7}")
    traces = {}
    P_last = None
    # compile or load the kernels first: Sinkhorn's, and the Newton stage's (the same images at 8 x 8 take Newton steps)
    ot.sinkhorn(a, b, M, 1e-2, method="sns")
    small = _sample_images(8)[1]
    ot.sinkhorn(*(image.ravel() / image.sum() for image in small), ot.grid_cost(small[0].shape), 1e-3, method="sns")
    for reg in regs:
        t0 = time.perf_counter()
        P, log = ot.sinkhorn(a, b, M, reg, method="sns", stopThr=1e-9, numItermax=100000, log=True)
        t_sns = time.perf_counter() - t0
        err = np.abs(P.sum(1) - a).sum() + np.abs(P.sum(0) - b).sum()
        out(
            f"  {reg:>7.0e} {'so sns':<14} {log['niter']:>10} {err:>9.1e} {float((P * M).sum()):>9.6f} "
            f"{t_sns:>8.3f} {1.0:>7.2f}   ({log['n_sinkhorn']} Sinkhorn + {log['n_newton']} Newton)"
        )
        traces[f"sns reg={reg:g}"] = log["err"]
        P_last = P
        if pot is None:
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t0 = time.perf_counter()
            P2, log2 = pot.sinkhorn(a, b, M, reg, stopThr=1e-9 / np.sqrt(a.size), numItermax=100000, log=True, warn=False)
            t_pot = time.perf_counter() - t0
        err2 = np.abs(P2.sum(1) - a).sum() + np.abs(P2.sum(0) - b).sum()
        failed = not np.isfinite(err2) or err2 > 1e-6 or any("numerical errors" in str(w.message) for w in caught)
        out(
            f"  {reg:>7.0e} {'POT sinkhorn':<14} {log2['niter']:>10} {err2:>9.1e} {float(np.nansum(P2 * M)):>9.6f} "
            f"{t_pot:>8.3f} {t_pot / t_sns:>7.2f}" + ("   (POT: numerical errors, plan unusable)" if failed else "")
        )
        if "err" in log2 and not failed:
            # POT records its own error (L2, columns) every 10 iterations
            traces[f"POT sinkhorn reg={reg:g} (L2 err)"] = (10 * np.arange(len(log2["err"])), log2["err"])
    # Where each source cell sends its mass: the barycentric map of the plan.
    coords = np.indices(source.shape).reshape(2, -1).T.astype(float)
    mass = P_last.sum(axis=1, keepdims=True)
    dest = (P_last @ coords) / np.where(mass > 0, mass, 1.0)
    step = max(1, size // 8)
    pick = [i for i in range(a.size) if coords[i, 0] % step == step // 2 and coords[i, 1] % step == step // 2]
    arrows = (coords[pick, 0], coords[pick, 1], dest[pick, 0] - coords[pick, 0], dest[pick, 1] - coords[pick, 1])
    return [
        _Image("source: " + names[0], source, arrows=arrows),
        _Image("target: " + names[1], target),
        _Image(f"plan log10 P (reg={regs[-1]:g})", np.log10(P_last + 1e-12), cmap="magma"),
        _Curves("OT marginal error", traces, "iteration", "L1 marginal error", lead=f"sns reg={regs[-1]:g}", xlog=True),
    ]


def part_glm(out=print):
    """Part 3: softmax regression on scikit-learn's digits against scikit-learn."""
    import time
    import warnings

    out("\n== 3. Softmax regression on load_digits (1797 x 64, 10 classes), C = 1, to ||g|| <= 1e-8 ==")
    try:
        from sklearn.datasets import load_digits
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression as SKLogisticRegression
    except ImportError:
        out("  (install scikit-learn for this part: pip install scikit-learn)")
        return []
    from .linear_model import LogisticRegression, SoftmaxLoss

    X, y = load_digits(return_X_y=True)
    X = (X - X.mean(0)) / np.maximum(X.std(0), 1e-12)
    n = X.shape[0]
    loss = SoftmaxLoss(X, y, alpha=1.0 / n)

    def gnorm(clf):
        b = clf.intercept_ - clf.intercept_.mean()
        return float(np.linalg.norm(loss.grad(np.concatenate([clf.coef_.ravel(), b]).astype(np.float64))))

    tol_sk = 1e-8 / np.sqrt(loss.n_params)
    fits = {
        "gns": lambda it: LogisticRegression(solver="gns", tol=1e-8, max_iter=it),
        "trust-region": lambda it: LogisticRegression(solver="trust-region", tol=1e-8, max_iter=it),
        "sklearn lbfgs": lambda it: SKLogisticRegression(solver="lbfgs", tol=tol_sk, max_iter=it),
        "sklearn newton-cg": lambda it: SKLogisticRegression(solver="newton-cg", tol=tol_sk, max_iter=it),
    }
    out(f"  {'method':<18} {'iterations':>10} {'||g||':>9} {'accuracy':>9} {'time s':>8} {'vs gns':>7}")
    traces = {}
    ref = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        LogisticRegression(max_iter=2).fit(X[:200], y[:200])  # compile or load the kernels first
        for name, make in fits.items():
            best = np.inf
            for _ in range(3):  # best of three, or one run when it is slow
                t0 = time.perf_counter()
                clf = make(10000).fit(X, y)
                best = min(best, time.perf_counter() - t0)
                if best > 0.5:
                    break
            ref = ref or best
            nit = int(np.max(clf.n_iter_))
            out(f"  {name:<18} {nit:>10} {gnorm(clf):>9.1e} {clf.score(X, y):>9.4f} {best:>8.3f} {best / ref:>7.2f}")
            # the convergence curve: the iterate after k iterations is the fit
            # with max_iter=k (every solver here is deterministic)
            ks = sorted({int(k) for k in np.unique(np.geomspace(1, nit, num=min(nit, 14)).round())})
            traces[name] = (np.array([0] + ks), np.array([float(np.linalg.norm(loss.grad(loss.initial_params())))] +
                                                       [gnorm(make(k).fit(X, y)) for k in ks]))
    return [_Curves("digits softmax regression", traces, "iteration", "gradient norm", xlog=True)]


def part_stochastic(out=print):
    """Part 4: the stochastic optimisers against AdamW, training softmax
    regression on digits from minibatches."""
    import time

    out("\n== 4. Stochastic optimisers: softmax regression on load_digits, batch 64, 10 epochs, cosine schedule ==")
    try:
        from ._timing import digits
    except ImportError:  # pragma: no cover - scikit-learn is in the demo extra
        return []
    try:
        X, y = digits()
    except ImportError:
        out("  (install scikit-learn for this part: pip install scikit-learn)")
        return []
    from .linear_model import SoftmaxLoss
    from .stochastic import minimize

    loss = SoftmaxLoss(X, y, alpha=1e-3)
    mb = loss.minibatch()
    # learning rates: each method's best point of `python -m secondorder bench stochastic`'s grid
    runs = {"adamw": 0.0316, "sophia-h": 0.0316, "adahessian": 0.0316, "namo": 0.178, "soaa": 0.0316, "mfac": 0.178}
    out(f"  {'method':<12} {'lr':>7} {'train loss':>11} {'vs adamw':>9} {'HVPs':>5} {'ms/step':>8}")
    traces, base = {}, None
    for method, lr in runs.items():
        options = {"lr": lr, "schedule": "cosine"}
        if method == "namo":
            options["shapes"] = [(10, 64), (10,)]
        if method == "mfac":
            options.update(ngrads=32, damp=0.1)
        t0 = time.perf_counter()
        res = minimize(mb.fun, loss.initial_params(), mb.data, method=method, hessp=mb.hessp, batch_size=64,
                       epochs=10, seed=0, options=options)
        ms = 1e3 * (time.perf_counter() - t0) / res.nit
        final = loss.value(res.x)
        base = base or final
        out(f"  {method:<12} {lr:>7.3g} {final:>11.5f} {final / base:>9.3f} {res.nhvp:>5} {ms:>8.2f}")
        smooth = np.convolve(res.loss_history, np.ones(29) / 29, mode="valid")
        traces[method] = smooth
    return [_Curves("digits softmax, minibatch loss (moving mean)", traces, "step", "loss", lead="adamw")]


def _plot(rows, path):
    """One figure row per demo part."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    width = max(len(row) for row in rows)
    fig, axes = plt.subplots(len(rows), width, figsize=(4.5 * width, 3.8 * len(rows)), squeeze=False)
    for ax_row, row in zip(axes, rows):
        for ax, panel in zip(ax_row, row):
            panel.draw(ax)
        for ax in ax_row[len(row) :]:
            ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(prog="python -m secondorder demo", description=__doc__.splitlines()[0])
    parser.add_argument("--plot", default="secondorder_demo.png", help="where to write the convergence plot")
    args = parser.parse_args(argv)
    rows = [part_minimize(), part_ot(), part_glm(), part_stochastic()]
    rows = [row for row in rows if row]
    path = _plot(rows, args.plot)
    print(f"\nconvergence plot written to {path}" if path else "\n(install matplotlib for the convergence plot)")

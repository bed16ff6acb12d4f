r"""Test problems for Newton-type methods, shared by tests, benchmarks and the demo.

Each problem is a :class:`Problem` with ``fun``, ``jac``, ``hess``, ``hessp``,
a starting point ``x0`` and, where the literature uses one, an approximate
Hessian ``approx_hess``.  All computations follow the dtype of ``x``.
"""

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import rosen, rosen_der, rosen_hess, rosen_hess_prod
from scipy.special import expit, log_expit, logsumexp, softmax

__all__ = [
    "Problem",
    "rosenbrock",
    "quadratic",
    "quartic",
    "logistic_regression",
    "logsumexp_problem",
    "foundation_problems",
]


@dataclass
class Problem:
    """A smooth unconstrained problem ``min f(x)``."""

    name: str
    fun: object
    jac: object
    x0: np.ndarray
    hess: object = None
    hessp: object = None
    approx_hess: object = None
    approx_name: str = ""
    jac_samples: object = None
    x_star: np.ndarray = None
    meta: dict = field(default_factory=dict)

    def astype(self, dtype):
        """The same problem started from ``x0`` in ``dtype``."""
        return Problem(**{**self.__dict__, "x0": self.x0.astype(dtype)})


def rosenbrock(n=2):
    r"""Extended Rosenbrock :math:`\sum_i 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2`
    from the standard start ``(-1.2, 1, -1.2, 1, ...)``, with scipy's
    ``rosen`` family as oracles."""
    x0 = np.tile([-1.2, 1.0], n // 2 + 1)[:n]
    return Problem(f"rosenbrock-{n}", rosen, rosen_der, x0, hess=rosen_hess, hessp=rosen_hess_prod)


def quadratic(n=50, cond=1e3, seed=0):
    r"""Strongly convex quadratic :math:`\tfrac12 x^T A x - b^T x` with
    eigenvalues spread log-uniformly over ``[1, cond]``."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    A = (Q * np.logspace(0, np.log10(cond), n)) @ Q.T
    A = (A + A.T) / 2
    b = rng.standard_normal(n)

    def fun(x):
        return 0.5 * x @ (A.astype(x.dtype) @ x) - b.astype(x.dtype) @ x

    def jac(x):
        return A.astype(x.dtype) @ x - b.astype(x.dtype)

    def hess(x):
        return A.astype(x.dtype)

    def hessp(x, p):
        return A.astype(x.dtype) @ p

    return Problem(
        f"quadratic-{n}", fun, jac, np.zeros(n), hess=hess, hessp=hessp, x_star=np.linalg.solve(A, b)
    )


def quartic(n=30, m=60, seed=1):
    r"""Convex quartic :math:`\tfrac14 \sum_i (a_i^T x - b_i)^4` with ``m > n``
    random rows (an inconsistent system, so the Hessian is positive definite
    at the minimiser but the function is far from quadratic)."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, n)) / np.sqrt(n)
    b = rng.standard_normal(m)

    def fun(x):
        r = A.astype(x.dtype) @ x - b.astype(x.dtype)
        return 0.25 * np.sum(r**4)

    def jac(x):
        Ax = A.astype(x.dtype)
        r = Ax @ x - b.astype(x.dtype)
        return Ax.T @ r**3

    def hess(x):
        Ax = A.astype(x.dtype)
        r = Ax @ x - b.astype(x.dtype)
        return Ax.T @ ((3 * r**2)[:, None] * Ax)

    def hessp(x, p):
        Ax = A.astype(x.dtype)
        r = Ax @ x - b.astype(x.dtype)
        return Ax.T @ (3 * r**2 * (Ax @ p))

    return Problem(f"quartic-{n}", fun, jac, np.full(n, 2.0), hess=hess, hessp=hessp)


def logistic_regression(n_samples=2000, n_features=50, alpha=1e-3, seed=2):
    r"""L2-regularised logistic regression
    :math:`\frac1m \sum_i \log(1 + e^{-y_i x_i^T w}) + \frac\alpha2 \|w\|^2`
    on synthetic data with labels in {-1, +1}, with an exact ``hessp``."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_features))
    w_true = rng.standard_normal(n_features)
    y = np.where(rng.random(n_samples) < expit(X @ w_true), 1.0, -1.0)
    m = float(n_samples)

    def fun(w):
        z = y.astype(w.dtype) * (X.astype(w.dtype) @ w)
        return -np.sum(log_expit(z)) / m + 0.5 * alpha * (w @ w)

    def jac(w):
        Xw = X.astype(w.dtype)
        yw = y.astype(w.dtype)
        return Xw.T @ (-yw * expit(-yw * (Xw @ w))) / m + alpha * w

    def _weights(w):
        p = expit(X.astype(w.dtype) @ w)
        return p * (1 - p) / m

    def hess(w):
        Xw = X.astype(w.dtype)
        return Xw.T @ (_weights(w)[:, None] * Xw) + alpha * np.eye(n_features, dtype=w.dtype)

    def hessp(w, p):
        Xw = X.astype(w.dtype)
        return Xw.T @ (_weights(w) * (Xw @ p)) + alpha * p

    def jac_samples(w):
        # Gradient of sample i's term l_i(w) + alpha/2 ||w||^2, so that jac is their mean.
        Xw = X.astype(w.dtype)
        yw = y.astype(w.dtype)
        return (-yw * expit(-yw * (Xw @ w)))[:, None] * Xw + alpha * w

    return Problem(
        f"logistic-{n_samples}x{n_features}",
        fun,
        jac,
        np.zeros(n_features),
        hess=hess,
        hessp=hessp,
        jac_samples=jac_samples,
    )


def logsumexp_problem(n=100, m=300, mu=1.0, seed=3124):
    r"""The LogSumExp problem of the GNS paper,
    :math:`f(x) = \mu \log \sum_i \exp((a_i^T x - b_i)/\mu)`.

    ``A`` and ``b`` are drawn from U[-1, 1]; the rows are then shifted by the
    gradient at 0 (:math:`a_i \leftarrow a_i - \nabla f(0)`, which leaves the
    softmax weights unchanged) so that ``x* = 0`` is the minimiser.  With
    ``p = softmax((Ax - b)/mu)``, the Hessian is
    :math:`\frac1\mu (A^T \mathrm{diag}(p) A - \nabla f \nabla f^T)` and the
    weighted Gauss-Newton approximation drops the rank-one term:
    :math:`\frac1\mu A^T \mathrm{diag}(p) A \succeq \nabla^2 f`.
    """
    rng = np.random.default_rng(seed)
    A = rng.uniform(-1, 1, (m, n))
    b = rng.uniform(-1, 1, m)
    A = A - (A.T @ softmax(-b / mu))[None, :]

    def _p(x):
        return softmax((A.astype(x.dtype) @ x - b.astype(x.dtype)) / mu)

    def fun(x):
        return mu * logsumexp((A.astype(x.dtype) @ x - b.astype(x.dtype)) / mu)

    def jac(x):
        return A.astype(x.dtype).T @ _p(x)

    def gauss_newton(x):
        Ax = A.astype(x.dtype)
        return Ax.T @ (_p(x)[:, None] * Ax) / mu

    def hess(x):
        g = jac(x)
        return gauss_newton(x) - np.outer(g, g) / mu

    def hessp(x, v):
        Ax = A.astype(x.dtype)
        p = _p(x)
        Av = Ax @ v
        return Ax.T @ (p * (Av - p @ Av)) / mu

    x0 = rng.uniform(-1, 1, n)
    return Problem(
        f"logsumexp-{n}",
        fun,
        jac,
        x0,
        hess=hess,
        hessp=hessp,
        approx_hess=gauss_newton,
        approx_name="weighted Gauss-Newton",
        x_star=np.zeros(n),
    )


def foundation_problems(large=True):
    """The problems of the ``minimize`` test and benchmark suite."""
    problems = [
        rosenbrock(2),
        rosenbrock(10),
        rosenbrock(100),
        quadratic(),
        quartic(),
        logistic_regression(),
        logsumexp_problem(),
    ]
    if large:
        problems.append(rosenbrock(1000))
    return problems

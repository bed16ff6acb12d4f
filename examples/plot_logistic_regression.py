"""
Logistic regression: a drop-in for scikit-learn's estimator
===========================================================

:class:`secondorder.linear_model.LogisticRegression` minimises the objective
of scikit-learn's ``LogisticRegression``, so it finds the same coefficients;
it gets there with a second-order method whose passes over ``X`` are fused
numba kernels.  The loss underneath also plugs into
:func:`secondorder.minimize` with any of its curvature approximations.
"""

import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression as SKLogisticRegression
from sklearn.preprocessing import StandardScaler

import secondorder as so
from secondorder.linear_model import LogisticRegression, SoftmaxLoss

X, y = load_digits(return_X_y=True)
X = StandardScaler().fit_transform(X)
LogisticRegression(max_iter=3).fit(X[:100], y[:100])  # the first fit compiles or loads the kernels

for name, clf in [
    ("secondorder, solver='auto'", LogisticRegression(tol=1e-8)),
    ("scikit-learn newton-cg", SKLogisticRegression(solver="newton-cg", tol=1e-10, max_iter=1000)),
]:
    t0 = time.perf_counter()
    clf.fit(X, y)
    print(f"{name:>24}: {time.perf_counter() - t0:.3f} s, accuracy {clf.score(X, y):.4f}")

# The same fit through minimize, with the exact Hessian and with the
# weighted Gauss-Newton approximation of the GNS paper.
loss = SoftmaxLoss(X, y, alpha=1.0 / X.shape[0])
fig, ax = plt.subplots(figsize=(5, 3.5))
for kind in ("exact", "gauss-newton", "fisher"):
    gnorms = []
    so.minimize(
        loss.value_and_grad,
        loss.initial_params(),
        jac=True,
        hess=loss.curvature(kind),
        method="gns",
        options={"gtol": 1e-8, "maxiter": 500},
        callback=lambda intermediate_result: gnorms.append(np.linalg.norm(intermediate_result.jac)),
    )
    ax.semilogy(gnorms, label=kind)
ax.set_xlabel("iteration")
ax.set_ylabel("gradient norm")
ax.legend()
fig.tight_layout()
plt.show()

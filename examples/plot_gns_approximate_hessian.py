"""
Regularised Newton with an approximate Hessian
==============================================

The LogSumExp problem :math:`f(x) = \\mu \\log \\sum_i e^{(a_i^T x - b_i)/\\mu}`
has the Hessian :math:`\\frac1\\mu(A^T \\mathrm{diag}(p) A - \\nabla f \\nabla f^T)`.
Dropping the rank-one term gives the weighted Gauss-Newton matrix, which is
cheaper to form and always positive semi-definite. ``method="gns"``
regularises with :math:`\\lambda = \\|g\\|/\\gamma`, so it converges with the
approximation as it does with the exact Hessian.
"""

import matplotlib.pyplot as plt
import numpy as np

import secondorder as so
from secondorder.optimize import problems

problem = problems.logsumexp_problem(n=100, m=300)
curves = {}
for label, hess in [("exact Hessian", problem.hess), ("weighted Gauss-Newton", problem.approx_hess)]:
    gnorms = []
    res = so.minimize(
        problem.fun,
        problem.x0,
        jac=problem.jac,
        hess=hess,
        tol=1e-10,
        callback=lambda intermediate_result: gnorms.append(np.linalg.norm(intermediate_result.jac)),
    )
    curves[label] = gnorms
    print(f"{label:>22}: {res.nit} iterations, {res.nfev} evaluations, |x - x*| = {np.abs(res.x).max():.1e}")

for label, gnorms in curves.items():
    plt.semilogy(gnorms, label=label)
plt.xlabel("iteration")
plt.ylabel("gradient norm")
plt.legend()
plt.show()

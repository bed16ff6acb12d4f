"""
Stochastic second-order methods from NumPy callables
====================================================

:func:`secondorder.stochastic.minimize` trains a model given as callables
over minibatches: ``fun(x, batch)`` (loss and gradient), and where a method
asks for them ``hessp(x, v, batch)`` (AdaHessian, Sophia-H) or
``sampled_jac(x, batch, rng)`` (Sophia-G).  Here the model is softmax
regression on the digits, whose minibatch callables come from
:meth:`SoftmaxLoss.minibatch`, and the target is the exact optimum from the
deterministic Newton solver.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler

import secondorder as so
from secondorder.linear_model import SoftmaxLoss
from secondorder.stochastic import minimize

X, y = load_digits(return_X_y=True)
X = StandardScaler().fit_transform(X)
loss = SoftmaxLoss(X, y, alpha=1e-3)
optimum = so.minimize(loss.value_and_grad, loss.initial_params(), jac=True, hess=loss.curvature()).fun
mb = loss.minibatch()

# each method's best learning rate on the grid of `python -m secondorder bench stochastic`
runs = {
    "adamw": {"lr": 0.0316},
    "sophia-g": {"lr": 0.00562},
    "sophia-h": {"lr": 0.0316},
    "adahessian": {"lr": 0.0316},
    "namo-d": {"lr": 0.178, "shapes": [(10, 64), (10,)]},
}
fig, ax = plt.subplots(figsize=(6, 4))
for method, options in runs.items():
    res = minimize(mb.fun, loss.initial_params(), mb.data, method=method, hessp=mb.hessp,
                   sampled_jac=mb.sampled_jac, batch_size=64, epochs=10, seed=0,
                   options={"schedule": "cosine", **options})
    gap = loss.value(res.x) / optimum - 1
    print(f"{method:<11} training loss {loss.value(res.x):.5f} ({100 * gap:.2f}% above the optimum), "
          f"{res.nhvp} Hessian-vector products, {res.nsjev} sampled-label gradients")
    ax.semilogy(np.convolve(res.loss_history, np.ones(29) / 29, mode="valid"), label=method)
ax.axhline(optimum, color="k", lw=0.8, ls="--", label="optimum")
ax.set_xlabel("step")
ax.set_ylabel("minibatch loss (moving mean)")
ax.legend()
plt.show()

"""
The same optimisers as ``torch.optim`` classes
==============================================

:mod:`secondorder.torch` wraps the same functional core as
``torch.optim.Optimizer`` subclasses.  Methods that need Hessian-vector
products take a closure that returns the loss: the optimiser builds the
double-backward graph itself, and releases it after the step.  Here a small
MLP is trained on the digits with AdaHessian, Sophia-H and NAMO-D against
``torch.optim.AdamW``.
"""

import matplotlib.pyplot as plt
import torch
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler

import secondorder.torch as so_torch

X, y = load_digits(return_X_y=True)
X = torch.as_tensor(StandardScaler().fit_transform(X), dtype=torch.float32)
y = torch.as_tensor(y)


def make_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Tanh(), torch.nn.Linear(64, 10))


optimisers = {
    "torch AdamW": lambda p: torch.optim.AdamW(p, lr=1e-2),
    "AdaHessian": lambda p: so_torch.AdaHessian(p, lr=0.18),
    "Sophia-H": lambda p: so_torch.SophiaH(p, lr=1e-2),
    "NAMO-D": lambda p: so_torch.NAMOD(p, lr=0.03),
}
fig, ax = plt.subplots(figsize=(6, 4))
for name, make in optimisers.items():
    model = make_model()
    opt = make(model.parameters())
    losses = []
    gen = torch.Generator().manual_seed(0)
    for epoch in range(5):
        for idx in torch.randperm(len(y), generator=gen).split(64):

            def closure():
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(model(X[idx]), y[idx])
                if isinstance(opt, torch.optim.AdamW):
                    loss.backward()  # the torch.optim convention; ours accept it too
                return loss

            losses.append(float(opt.step(closure).detach()))
    with torch.no_grad():
        final = float(torch.nn.functional.cross_entropy(model(X), y))
    print(f"{name:<12} final training loss {final:.4f}")
    ax.semilogy(torch.tensor(losses).unfold(0, 28, 1).mean(1), label=name)
ax.set_xlabel("step")
ax.set_ylabel("minibatch loss (moving mean)")
ax.legend()
plt.show()

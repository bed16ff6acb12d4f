r"""Orthogonalisation by the quintic Newton-Schulz iteration (Muon's).

For a matrix :math:`G = U S V^T`, the iteration

.. math::

    X_0 = G / \|G\|_F, \qquad A_k = X_k X_k^T, \qquad
    X_{k+1} = a X_k + (b A_k + c A_k^2) X_k

with :math:`(a, b, c) = (3.4445, -4.7750, 2.0315)` drives every singular
value of :math:`X` towards an interval around 1 in five steps, so
:math:`X_5 \approx U V^T`, the orthogonal polar factor (the coefficients
maximise the slope at zero, so the singular values end in about
[0.7, 1.2] rather than at 1).  The iteration runs on the wide side
(:math:`X X^T` is the smaller Gram matrix).

``eps_mode="clamp"`` divides by :math:`\max(\|G\|_F, \epsilon)`
(:class:`torch.optim.Muon`); ``"add"`` by :math:`\|G\|_F + \epsilon`
(Keller Jordan's Muon and the NAMO code).  The references run in
bfloat16; ``dtype`` chooses the working precision (the array's own by
default: bfloat16 is not in the array API standard), and the result comes
back in the input's dtype.

References
----------
.. [1] K. Jordan et al., "Muon: An optimizer for hidden layers in neural
   networks", 2024, https://kellerjordan.github.io/posts/muon/.
"""

__all__ = ["newton_schulz", "NS_COEFFICIENTS"]

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def newton_schulz(xp, G, steps=5, coefficients=NS_COEFFICIENTS, eps=1e-7, eps_mode="clamp", dtype=None):
    """The approximate orthogonal polar factor of the 2-D array ``G``."""
    if G.ndim != 2:
        raise ValueError(f"newton_schulz needs a 2-D array; got shape {tuple(G.shape)}.")
    a, b, c = coefficients
    out_dtype = G.dtype
    X = G if dtype is None else xp.astype(G, dtype)
    wide = G.shape[0] <= G.shape[1]
    if not wide:
        X = xp.matrix_transpose(X)
    norm = xp.linalg.vector_norm(X)
    X = X / (xp.clip(norm, min=eps) if eps_mode == "clamp" else norm + eps)
    for _ in range(steps):
        A = X @ xp.matrix_transpose(X)
        X = a * X + (b * A + c * (A @ A)) @ X
    if not wide:
        X = xp.matrix_transpose(X)
    return X if X.dtype == out_dtype else xp.astype(X, out_dtype)


def resolve_dtype(xp, name):
    """A dtype of namespace ``xp`` from its name (``None`` stays ``None``):
    ``"bfloat16"`` exists on PyTorch and JAX only."""
    if name is None or not isinstance(name, str):
        return name
    dtype = getattr(xp, name, None)
    if dtype is None:
        module = xp.__name__.split(".")[-1]
        try:
            backend = __import__(module)
            dtype = getattr(backend, name, None)
        except ImportError:
            dtype = None
    if dtype is None:
        raise ValueError(f"`ns_dtype` {name!r} is not a dtype of {xp.__name__}; use None (the parameters' dtype).")
    return dtype

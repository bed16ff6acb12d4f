"""Trust-region subproblem in an eigenbasis (NumPy/CuPy reference).

Given the eigenvalues ``w`` of a symmetric H and the coordinates ``b = Q^T g``
of the gradient in its eigenbasis, solve

    min_c  b.c + c.diag(w).c / 2   subject to  ||c|| <= radius.

The solution is ``c_i = -b_i / (w_i + sigma)`` with ``sigma >= max(0, -w_min)``
and ``sigma (||c|| - radius) = 0`` (Moré and Sorensen 1983).  When the step is
not interior, ``sigma`` is the root of the secular equation
``1/||c(sigma)|| = 1/radius``, which is nearly linear in ``sigma``; Newton's
method on it converges monotonically from the left of the root, and a bracket
keeps iterates that start on the right inside the domain.  In the hard case
(b orthogonal to the eigenspace of ``w_min``) the step is completed along an
eigenvector of ``w_min`` up to the boundary.

The computation runs in float64 whatever the input dtype.
"""

import numpy as np

from ..._backend import get_namespace

RTOL = 1e-12
MAXITER = 200


def trust_region_eig(w, b, radius):
    """Exact trust-region step in an eigenbasis.

    Parameters
    ----------
    w : (n,) array
        Eigenvalues of H, any order.
    b : (n,) array
        Gradient in the eigenbasis, ``Q^T g``.
    radius : float
        Trust-region radius, > 0.

    Returns
    -------
    c : (n,) float64 array
        Step in the eigenbasis (``s = Q c``).
    sigma : float
        Lagrange multiplier of the norm constraint.
    hard : bool
        Whether the hard case was met.
    """
    xp = get_namespace(w, b)
    w = xp.asarray(w, dtype=xp.float64)
    b = xp.asarray(b, dtype=xp.float64)
    radius = float(radius)
    j = int(xp.argmin(w))
    wmin = float(w[j])
    if wmin > 0.0:
        c = -b / w
        if float(xp.sqrt(xp.dot(c, c))) <= radius:
            return c, 0.0, False
    lo = max(0.0, -wmin)
    wscale = float(xp.max(xp.abs(w))) if w.size else 0.0
    tiny_w = 1e-14 * max(wscale, 1.0)
    bnorm = float(xp.sqrt(xp.dot(b, b)))
    near = (w - wmin) <= tiny_w
    if wmin <= 0.0:
        # Hard case: the gradient has (almost) no weight on the eigenspace of
        # the smallest eigenvalue and the shifted step stays inside the ball.
        bnear = float(xp.sqrt(xp.dot(b[near], b[near]))) if bool(xp.any(near)) else 0.0
        if bnear <= 1e-14 * max(bnorm, 1e-300):
            c = xp.where(near, 0.0, -b / xp.where(near, 1.0, w + lo))
            cnorm2 = float(xp.dot(c, c))
            if cnorm2 <= radius * radius:
                c[j] = np.sqrt(radius * radius - cnorm2)
                return c, lo, True
    hi = lo + bnorm / radius
    sigma = 0.0 if wmin > 0.0 else lo + 1e-3 * (hi - lo)
    for _ in range(MAXITER):
        d = w + sigma
        c = b / d
        phi = float(xp.sqrt(xp.dot(c, c)))
        if abs(phi - radius) <= RTOL * radius:
            break
        if phi > radius:
            lo = sigma
        else:
            hi = sigma
        q = float(xp.dot(c, c / d))
        step = (phi * phi / q) * (phi / radius - 1.0) if q > 0.0 else 0.0
        new = sigma + step
        if not (lo < new < hi) or step == 0.0:
            new = 0.5 * (lo + hi)
        if new == sigma:
            break
        sigma = new
    return -b / (w + sigma), sigma, False

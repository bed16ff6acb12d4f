"""Trust-region subproblem in an eigenbasis (numba).

Same algorithm and results as
:func:`secondorder._kernels.fallback.trust.trust_region_eig`; each secular
Newton iteration is one fused pass over the eigenvalues instead of four
NumPy passes and their temporaries.
"""

import math

import numpy as np

from ..._backend import jit
from ..fallback.trust import MAXITER, RTOL


@jit
def _phi_q(w, b, sigma):
    # ||b/(w+sigma)|| and sum b^2/(w+sigma)^3 in one pass.
    s2 = 0.0
    q = 0.0
    for i in range(w.shape[0]):
        d = w[i] + sigma
        c = b[i] / d
        s2 += c * c
        q += c * c / d
    return math.sqrt(s2), q


@jit
def _solve(w, b, radius):
    n = w.shape[0]
    c = np.empty(n, dtype=np.float64)
    j = 0
    wmin = np.inf
    wscale = 0.0
    bnorm2 = 0.0
    for i in range(n):
        if w[i] < wmin:
            wmin = w[i]
            j = i
        wscale = max(wscale, abs(w[i]))
        bnorm2 += b[i] * b[i]
    bnorm = math.sqrt(bnorm2)
    if wmin > 0.0:
        s2 = 0.0
        for i in range(n):
            c[i] = -b[i] / w[i]
            s2 += c[i] * c[i]
        if math.sqrt(s2) <= radius:
            return c, 0.0, False
    lo = max(0.0, -wmin)
    tiny_w = 1e-14 * max(wscale, 1.0)
    if wmin <= 0.0:
        bnear2 = 0.0
        for i in range(n):
            if w[i] - wmin <= tiny_w:
                bnear2 += b[i] * b[i]
        if math.sqrt(bnear2) <= 1e-14 * max(bnorm, 1e-300):
            s2 = 0.0
            for i in range(n):
                if w[i] - wmin <= tiny_w:
                    c[i] = 0.0
                else:
                    c[i] = -b[i] / (w[i] + lo)
                    s2 += c[i] * c[i]
            if s2 <= radius * radius:
                c[j] = math.sqrt(radius * radius - s2)
                return c, lo, True
    hi = lo + bnorm / radius
    sigma = 0.0 if wmin > 0.0 else lo + 1e-3 * (hi - lo)
    for _ in range(MAXITER):
        phi, q = _phi_q(w, b, sigma)
        if abs(phi - radius) <= RTOL * radius:
            break
        if phi > radius:
            lo = sigma
        else:
            hi = sigma
        step = (phi * phi / q) * (phi / radius - 1.0) if q > 0.0 else 0.0
        new = sigma + step
        if not (lo < new < hi) or step == 0.0:
            new = 0.5 * (lo + hi)
        if new == sigma:
            break
        sigma = new
    for i in range(n):
        c[i] = -b[i] / (w[i] + sigma)
    return c, sigma, False


def trust_region_eig(w, b, radius):
    """Exact trust-region step in an eigenbasis; see the fallback's docstring."""
    w = np.ascontiguousarray(w, dtype=np.float64)
    b = np.ascontiguousarray(b, dtype=np.float64)
    c, sigma, hard = _solve(w, b, float(radius))
    return c, float(sigma), bool(hard)

"""The functional core against hand-written forms of the official rules."""

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from secondorder.stochastic import (
    MFAC,
    NAMO,
    NAMOD,
    SOAA,
    AdaHessian,
    AdamW,
    Muon,
    SophiaG,
    SophiaH,
    apply_updates,
    newton_schulz,
)

SHAPES = [(6, 4), (4,), (3, 2, 2, 2)]


def _sequence(n_steps, seed=0, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s) for s in shapes] for _ in range(n_steps)]


def _run(method, n_steps, oracles=lambda t, params: {}, seed=0, shapes=SHAPES):
    rng = np.random.default_rng(seed + 1)
    params = [rng.standard_normal(s) for s in shapes]
    state = method.init(params)
    grads = _sequence(n_steps, seed, shapes)
    for t in range(n_steps):
        updates, state = method.update(grads[t], state, params, **oracles(t, params))
        params = apply_updates(params, updates)
    return params, state


def _hvp_oracles(seed=5, shapes=SHAPES):
    """Probes and a fixed diagonal-plus-noise 'Hessian' per step."""
    rng = np.random.default_rng(seed)
    cache = {}

    def oracles(t, params):
        if t not in cache:
            z = [rng.choice([-1.0, 1.0], size=s) for s in shapes]
            hz = [zi * (1.0 + rng.random(zi.shape)) + 0.3 * rng.standard_normal(zi.shape) for zi in z]
            cache[t] = {"probes": z, "hvp": hz}
        return cache[t]

    return oracles


def test_adamw_hand_written():
    lr, (b1, b2), eps, wd = 1e-2, (0.9, 0.999), 1e-8, 0.05
    params, _ = _run(AdamW(lr=lr, weight_decay=wd), 30)
    rng = np.random.default_rng(1)
    ref = [rng.standard_normal(s) for s in SHAPES]
    m = [np.zeros(s) for s in SHAPES]
    v = [np.zeros(s) for s in SHAPES]
    for t, grads in enumerate(_sequence(30), start=1):
        for i, g in enumerate(grads):
            ref[i] = ref[i] * (1 - lr * wd)
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            ref[i] = ref[i] - lr / (1 - b1**t) * m[i] / (np.sqrt(v[i]) / math.sqrt(1 - b2**t) + eps)
    for p, r in zip(params, ref):
        assert_allclose(p, r, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("power", [1.0, 0.5])
def test_adahessian_official_rule(power):
    lr, (b1, b2), eps, wd = 0.1, (0.9, 0.999), 1e-4, 1e-3
    oracles = _hvp_oracles()
    params, _ = _run(AdaHessian(lr=lr, weight_decay=wd, hessian_power=power), 25, oracles)
    rng = np.random.default_rng(1)
    ref = [rng.standard_normal(s) for s in SHAPES]
    m = [np.zeros(s) for s in SHAPES]
    v = [np.zeros(s) for s in SHAPES]
    for t, grads in enumerate(_sequence(25), start=1):
        hz = oracles(t - 1, None)["hvp"]
        for i, g in enumerate(grads):
            D = np.abs(hz[i])
            if D.ndim == 4:  # conv kernel: mean over the kernel's spatial dimensions
                D = np.broadcast_to(D.mean(axis=(2, 3), keepdims=True), D.shape)
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * D * D
            denom = np.sqrt(v[i]) ** power / math.sqrt(1 - b2**t) ** power + eps
            ref[i] = ref[i] - lr * (m[i] / (1 - b1**t) / denom + wd * ref[i])
    for p, r in zip(params, ref):
        assert_allclose(p, r, rtol=1e-12, atol=1e-14)


def test_adahessian_spatial_modes():
    method = AdaHessian(spatial_average="row")
    z, hz = np.ones((3, 4)), np.arange(12.0).reshape(3, 4) - 5
    assert_allclose(method.diagonal_estimate(np, z, hz)[:, 0], np.abs(hz).mean(axis=1))
    blocks = AdaHessian(spatial_average=4).diagonal_estimate(np, z, hz)
    assert_allclose(blocks, np.repeat(np.abs(hz).reshape(3, 4).mean(axis=1), 4).reshape(3, 4))
    signed = AdaHessian(spatial_average=4, signed_blocks=True).diagonal_estimate(np, z, hz)
    assert_allclose(signed, np.repeat(np.abs(hz.mean(axis=1)), 4).reshape(3, 4))
    assert AdaHessian(spatial_average="none").diagonal_estimate(np, z, hz).shape == (3, 4)


def _sophia_reference(kind, n_steps, k, lr, b1, b2, rho, wd, eps, bs, oracles, guard="relu"):
    rng = np.random.default_rng(1)
    ref = [rng.standard_normal(s) for s in SHAPES]
    m = [np.zeros(s) for s in SHAPES]
    h = [np.zeros(s) for s in SHAPES]
    for i_step, grads in enumerate(_sequence(n_steps)):
        # the reference's loop: step, then at iter % k == k - 1 refresh h
        for i, g in enumerate(grads):
            ref[i] = ref[i] * (1 - lr * wd)
            m[i] = b1 * m[i] + (1 - b1) * g
            if kind == "G":
                ratio = np.minimum(np.abs(m[i]) / (rho * bs * h[i] + eps), 1.0)
            elif guard == "relu":
                ratio = np.minimum(np.abs(m[i]) / (rho * np.maximum(h[i], 0) + eps), 1.0)
            else:
                ratio = np.minimum(np.abs(m[i]) / np.maximum(rho * h[i], eps), 1.0)
            ref[i] = ref[i] - lr * np.sign(m[i]) * ratio
        if i_step % k == k - 1:
            o = oracles(i_step + 1, None)
            for i in range(len(SHAPES)):
                est = o["sampled_grad"][i] ** 2 if kind == "G" else o["probes"][i] * o["hvp"][i]
                h[i] = b2 * h[i] + (1 - b2) * est
    return ref


def test_sophia_g_official_rule():
    rng = np.random.default_rng(9)
    samples = {}

    def oracles(t, params):
        if t % 3 == 0 and t > 0:
            samples.setdefault(t, [rng.standard_normal(s) * 0.1 for s in SHAPES])
            return {"sampled_grad": samples[t]}
        return {}

    method = SophiaG(lr=1e-2, rho=0.05, bs=64, update_interval=3)
    params, state = _run(method, 20, oracles)
    ref = _sophia_reference("G", 20, 3, 1e-2, 0.965, 0.99, 0.05, 0.1, 1e-15, 64, oracles)
    for p, r in zip(params, ref):
        assert_allclose(p, r, rtol=1e-12, atol=1e-14)
    assert sorted(method.needs({"step": 3})) == ["sampled_grad"] and not method.needs({"step": 4})
    assert not method.needs({"step": 0})


@pytest.mark.parametrize("guard", ["relu", "max"])
def test_sophia_h_official_rule(guard):
    inner = _hvp_oracles()

    def oracles(t, params):
        return inner(t, params) if t % 4 == 0 and t > 0 else {}

    params, _ = _run(SophiaH(lr=1e-2, update_interval=4, guard=guard), 21, oracles)
    ref = _sophia_reference("H", 21, 4, 1e-2, 0.9, 0.99, 10.0, 1e-2, 1e-12, None, inner, guard=guard)
    for p, r in zip(params, ref):
        assert_allclose(p, r, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("scope", ["global", "tensor"])
def test_soaa_rule(scope):
    lr, (b1, b2), gamma, wd, eps, T = 1e-2, (0.9, 0.999), 0.1, 1e-3, 1e-8, 50
    losses = np.linspace(3.0, 1.0, 30) + 0.1 * np.sin(np.arange(30))

    params, state = _run(
        SOAA(lr=lr, weight_decay=wd, total_steps=T, fisher_scope=scope), 30, lambda t, p: {"loss": losses[t]}
    )
    rng = np.random.default_rng(1)
    ref = [rng.standard_normal(s) for s in SHAPES]
    m = [np.zeros(s) for s in SHAPES]
    v = [np.zeros(s) for s in SHAPES]
    d, lavg, pred = 1.0, 0.0, 0.0
    for t, grads in enumerate(_sequence(30), start=1):
        m = [b1 * a + (1 - b1) * g for a, g in zip(m, grads)]
        v = [b2 * a + (1 - b2) * g * g for a, g in zip(v, grads)]
        mh = np.concatenate([a.ravel() for a in m]) / (1 - b1**t)
        vh = np.concatenate([a.ravel() for a in v]) / (1 - b2**t)
        if scope == "global":
            F = (1 + mh @ mh / np.sum(vh + eps)) * vh
        else:
            F, start = np.empty_like(vh), 0
            for s in SHAPES:
                sl = slice(start, start + math.prod(s))
                F[sl] = (1 + mh[sl] @ mh[sl] / np.sum(vh[sl] + eps)) * vh[sl]
                start += math.prod(s)
        u = d * mh / (np.maximum(d * F, np.sqrt(vh)) + eps)
        flat = np.concatenate([a.ravel() for a in ref])
        flat = flat - lr * wd * flat - lr * u
        ref, start = [], 0
        for s in SHAPES:
            ref.append(flat[start : start + math.prod(s)].reshape(s))
            start += math.prod(s)
        loss = losses[t - 1]
        lavg = b1 * lavg + (1 - b1) * loss
        frac = (t - 1) / T
        d = min(1 + gamma**frac, max((1 - gamma) ** frac, d * (lavg / (1 - b1**t) - loss) / max(pred, eps)))
        pred = lr * (mh @ u - 0.5 * vh @ (u * u))
    for p, r in zip(params, ref):
        assert_allclose(p, r, rtol=1e-10, atol=1e-13)
    assert state["radius"] == pytest.approx(d, rel=1e-10)


def _ns_reference(G, steps=5, add_eps=True):
    a, b, c = 3.4445, -4.7750, 2.0315
    X = G.T if G.shape[0] > G.shape[1] else G
    X = X / (np.linalg.norm(X) + 1e-7 if add_eps else max(np.linalg.norm(X), 1e-7))
    for _ in range(steps):
        A = X @ X.T
        X = a * X + (b * A + c * A @ A) @ X
    return X.T if G.shape[0] > G.shape[1] else X


@pytest.mark.parametrize("shape", [(8, 5), (5, 8), (6, 6)])
def test_newton_schulz_orthogonalises(shape):
    G = np.random.default_rng(0).standard_normal(shape)
    O = newton_schulz(np, G)
    assert O.shape == shape
    s = np.linalg.svd(O, compute_uv=False)
    assert s.min() > 0.6 and s.max() < 1.25  # the quintic's band around 1
    U, _, Vt = np.linalg.svd(G, full_matrices=False)
    assert np.linalg.norm(O - U @ Vt) / np.linalg.norm(U @ Vt) < 0.35
    assert_allclose(O, _ns_reference(G, add_eps=False), rtol=1e-12)
    assert_allclose(newton_schulz(np, G.astype(np.float32)), O, rtol=1e-4, atol=1e-5)


def _namo_reference(n_steps, col, lr=1e-2, wd=0.1, mu=0.95, mu2=0.99, eps=1e-8, s=0.2, c=0.75, shapes=SHAPES):
    rng = np.random.default_rng(1)
    ref = [rng.standard_normal(sh) for sh in shapes]
    buf = [np.zeros((sh[0], math.prod(sh[1:]))) if len(sh) >= 2 else None for sh in shapes]
    v = [np.zeros(math.prod(sh[1:])) if col else 0.0 for sh in shapes]
    m1 = [np.zeros(sh) for sh in shapes]
    m2 = [np.zeros(sh) for sh in shapes]
    for t, grads in enumerate(_sequence(n_steps, shapes=shapes), start=1):
        for i, g in enumerate(grads):
            p = ref[i]
            if buf[i] is None:  # the AdamW backup: eps before the bias correction
                m1[i] = 0.9 * m1[i] + 0.1 * g
                m2[i] = 0.95 * m2[i] + 0.05 * g * g
                step = m1[i] / (1e-8 + np.sqrt(m2[i])) / ((1 - 0.9**t) / math.sqrt(1 - 0.95**t))
                ref[i] = p * (1 - lr * wd) - lr * step
                continue
            G = g.reshape(buf[i].shape)
            P = p.reshape(buf[i].shape)
            if col:
                v[i] = mu2 * v[i] + (1 - mu2) * np.sum(G * G, axis=0)
            else:
                v[i] = mu2 * v[i] + (1 - mu2) * np.sum(G * G)
            buf[i] = mu * buf[i] + (1 - mu) * G
            M = (1 - mu) * G + mu * buf[i]
            O = _ns_reference(M)
            base = lr * math.sqrt(1 - mu2**t) / (1 - mu**t + 1e-12)
            shape_factor = s * math.sqrt(max(p.shape[0], p.shape[1]))
            if col:
                sc = np.linalg.norm(M, axis=0) / (np.sqrt(v[i]) + eps)
                sc = np.clip(sc, c * sc.mean(), sc.mean() / c)
                decay = np.maximum(0, 1 - wd * np.minimum(sc * base, 1))
                P = P * decay - O * np.minimum(sc * base * shape_factor, 1)
            else:
                a = base * np.linalg.norm(M) / (math.sqrt(v[i]) + eps)
                P = P * (1 - wd * min(a, 1)) - min(a * shape_factor, 1) * O
            ref[i] = P.reshape(p.shape)
    return ref


@pytest.mark.parametrize("cls, col", [(NAMO, False), (NAMOD, True)])
def test_namo_official_rule(cls, col):
    params, _ = _run(cls(), 15)
    for p, r in zip(params, _namo_reference(15, col)):
        assert_allclose(p, r, rtol=1e-9, atol=1e-12)


def test_namo_unclamped_is_the_paper_step():
    # With the clamps off and a large shape: W <- W(1 - wd a) - a s sqrt(max) O, no cap at 1.
    method = NAMO(lr=1.0, clamp=False)
    p = [np.random.default_rng(0).standard_normal((4, 3))]
    g = [np.random.default_rng(1).standard_normal((4, 3))]
    updates, _ = method.update(g, method.init(p), p)
    M = 0.05 * g[0] + 0.95 * (0.05 * g[0])
    a = 1.0 * math.sqrt(1 - 0.99) / (1 - 0.95 + 1e-12) * np.linalg.norm(M) / (math.sqrt(0.01) * np.linalg.norm(g[0]) + 1e-8)
    assert a > 1  # the clamp would have bitten
    assert_allclose(updates[0], -0.1 * a * p[0] - a * 0.2 * 2.0 * _ns_reference(M), rtol=1e-9)


def test_muon_matches_the_rule():
    params, _ = _run(Muon(lr=0.02, adjust_lr_fn="match_rms_adamw"), 10, shapes=[(6, 4)])
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((6, 4))
    buf = np.zeros((6, 4))
    for grads in _sequence(10, shapes=[(6, 4)]):
        g = grads[0]
        buf = buf + 0.05 * (g - buf)
        O = _ns_reference(g + 0.95 * (buf - g), add_eps=False)
        ref = ref * (1 - 0.02 * 0.1) - 0.02 * 0.2 * math.sqrt(6) * O
    assert_allclose(params[0], ref, rtol=1e-10)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_mfac_is_a_dense_fisher_solve(momentum):
    lr, wd, m, damp = 0.1, 1e-2, 4, 1e-1
    params, _ = _run(MFAC(lr=lr, momentum=momentum, weight_decay=wd, ngrads=m, damp=damp), 9)
    rng = np.random.default_rng(1)
    flat = np.concatenate([rng.standard_normal(s).ravel() for s in SHAPES])
    window, vel = [], np.zeros_like(flat)
    for grads in _sequence(9):
        g = np.concatenate([a.ravel() for a in grads]) + wd * flat
        window = (window + [g])[-m:]
        F = damp * np.eye(flat.size) + sum(np.outer(w, w) for w in window) / m  # zeros fill the window
        u = np.linalg.solve(F, g)
        if momentum:
            vel = momentum * vel + (1 - momentum) * u
            u = vel
        flat = flat - lr * u
    assert_allclose(np.concatenate([p.ravel() for p in params]), flat, rtol=1e-8)


def test_float32_stays_float32():
    for method in [AdamW(), AdaHessian(), SophiaH(), SOAA(), NAMO(), NAMOD(), Muon(), MFAC(ngrads=4)]:
        params = [np.ones((3, 2), dtype=np.float32), np.ones(2, dtype=np.float32)]
        state = method.init(params)
        grads = [np.full((3, 2), 0.5, np.float32), np.full(2, 0.5, np.float32)]
        z = [np.ones((3, 2), np.float32), np.ones(2, np.float32)]
        updates, _ = method.update(grads, state, params, loss=1.0, hvp=z, probes=z)
        assert all(u.dtype == np.float32 for u in updates), type(method).__name__


def test_bad_input():
    with pytest.raises(TypeError, match="unknown option.*lr"):
        AdamW(learning_rate=1e-3)
    with pytest.raises(ValueError, match="betas"):
        AdamW(betas=(0.9, 1.5))
    with pytest.raises(ValueError, match="spatial_average"):
        AdaHessian(spatial_average="rows")
    params = [np.zeros(3)]
    state = AdaHessian().init(params)
    with pytest.raises(ValueError, match="needs `hvp`"):
        AdaHessian().update([np.ones(3)], state, params)
    with pytest.raises(ValueError, match=r"grads\[0\]"):
        AdamW().update([np.ones(4)], AdamW().init(params), params)
    with pytest.raises(TypeError, match="real floating"):
        AdamW().init([np.zeros(3, dtype=int)])
    with pytest.raises(ValueError, match="needs `loss`"):
        SOAA().update([np.ones(3)], SOAA().init(params), params)


def test_inputs_unchanged():
    params = [np.ones((3, 2))]
    grads = [np.full((3, 2), 0.5)]
    state = NAMO().init(params)
    before = (params[0].copy(), grads[0].copy())
    _, new = NAMO().update(grads, state, params)
    assert_allclose(params[0], before[0])
    assert_allclose(grads[0], before[1])
    assert state["step"] == 0 and new["step"] == 1

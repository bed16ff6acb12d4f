"""The PyTorch front ends: equivalence with the reference optimisers,
closures, param groups, state_dict, errors."""

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
so_torch = pytest.importorskip("secondorder.torch")

pytestmark = pytest.mark.torch


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3)).double()


def _data(seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(40, 5, generator=g, dtype=torch.float64), torch.randint(0, 3, (40,), generator=g)


def _loss(model, X, y):
    return torch.nn.functional.cross_entropy(model(X), y)


def _assert_same(m1, m2, rtol=1e-10):
    for p, q in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=rtol, atol=1e-12)


@pytest.mark.parametrize("foreach", [True, False])
def test_sophiag_matches_the_official_sophiag(foreach):
    sophia = pytest.importorskip("sophia_opt")
    X, y = _data()
    ours_m, ref_m = _model(), _model()
    ours = so_torch.SophiaG(ours_m.parameters(), lr=1e-2, rho=0.05, weight_decay=0.1, foreach=foreach)
    ref = sophia.SophiaG(ref_m.parameters(), lr=1e-2, rho=0.05, weight_decay=0.1)
    for it in range(100):
        for model, opt in ((ours_m, ours), (ref_m, ref)):
            opt.zero_grad()
            _loss(model, X[it % 4 :: 4], y[it % 4 :: 4]).backward()
            opt.step(bs=10)
            if it % 10 == 9:  # the reference loop's GNB refresh, with the same sampled labels
                opt.zero_grad()
                logits = model(X)
                gen = torch.Generator().manual_seed(it)
                y_hat = torch.multinomial(torch.softmax(logits.detach(), -1), 1, generator=gen).squeeze(-1)
                torch.nn.functional.cross_entropy(logits, y_hat).backward()
                opt.update_hessian()
    _assert_same(ours_m, ref_m)


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")
def test_adahessian_matches_torch_optimizer():
    torch_optimizer = pytest.importorskip("torch_optimizer")
    X, y = _data()
    ours_m, ref_m = _model(), _model()
    ours = so_torch.AdaHessian(ours_m.parameters(), lr=0.05, weight_decay=1e-3)
    ref = torch_optimizer.Adahessian(ref_m.parameters(), lr=0.05, weight_decay=1e-3, hessian_power=1.0)
    for it in range(100):
        for model, opt in ((ours_m, ours), (ref_m, ref)):
            opt.zero_grad()
            _loss(model, X[it % 4 :: 4], y[it % 4 :: 4]).backward(create_graph=True)
            torch.manual_seed(1000 + it)  # the same Rademacher probes
            opt.step()
    _assert_same(ours_m, ref_m)


@pytest.mark.parametrize("which", ["adamw", "muon"])
def test_adamw_and_muon_match_torch(which, monkeypatch):
    X, y = _data()
    if which == "adamw":
        ours_cls, ref_cls, kw = so_torch.AdamW, torch.optim.AdamW, {"lr": 1e-2, "weight_decay": 0.05}
    else:
        # torch's Muon orthogonalises in bfloat16 (compared on its own below); the rest of its rule
        # (momentum, Nesterov, shape factor, decay) is compared here with both in float64.
        import torch.optim._muon as muon_module
        from array_api_compat import array_namespace

        from secondorder.stochastic import newton_schulz

        def float64_ns(grad, coefficients, steps, eps):
            return newton_schulz(array_namespace(grad), grad, steps, coefficients, eps)

        monkeypatch.setattr(muon_module, "_zeropower_via_newtonschulz", float64_ns)
        ours_cls, ref_cls, kw = so_torch.Muon, torch.optim.Muon, {"lr": 2e-2}
    torch.manual_seed(0)
    ours_w = torch.nn.Parameter(torch.randn(7, 5, dtype=torch.float64))
    ref_w = torch.nn.Parameter(ours_w.detach().clone())
    ours, ref = ours_cls([ours_w], **kw), ref_cls([ref_w], **kw)
    for it in range(50):
        for w, opt in ((ours_w, ours), (ref_w, ref)):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(X[it % 4 :: 4] @ w.T[:, :3], y[it % 4 :: 4]).backward()
            opt.step()
    np.testing.assert_allclose(ours_w.detach().numpy(), ref_w.detach().numpy(), rtol=1e-10, atol=1e-13)


def test_newton_schulz_matches_torch_muon():
    from torch.optim._muon import _zeropower_via_newtonschulz

    from secondorder.stochastic import newton_schulz
    from array_api_compat import array_namespace

    G = torch.randn(16, 9, generator=torch.Generator().manual_seed(3))
    ref = _zeropower_via_newtonschulz(G, (3.4445, -4.7750, 2.0315), 5, 1e-7).float()
    xp = array_namespace(G)
    ours_bf16 = newton_schulz(xp, G, dtype=torch.bfloat16)
    np.testing.assert_allclose(ours_bf16.numpy(), ref.numpy(), atol=0.02)
    ours_exact = newton_schulz(xp, G.double())
    np.testing.assert_allclose(ours_exact.numpy(), ref.double().numpy(), atol=0.05)


@pytest.mark.parametrize("name", ["AdaHessian", "SophiaH", "SOAA", "NAMO", "NAMOD", "Muon", "MFAC", "AdamW"])
def test_every_class_trains_from_params_and_lr_with_a_closure(name):
    X, y = _data()
    model = _model()
    lr = {"AdaHessian": 0.1, "SophiaH": 1e-2, "SOAA": 1e-2, "NAMO": 2e-2, "NAMOD": 2e-2, "Muon": 2e-2, "MFAC": 1e-3, "AdamW": 1e-2}[name]
    opt = getattr(so_torch, name)(model.parameters(), lr=lr)
    first = float(_loss(model, X, y).detach())

    def closure():
        opt.zero_grad()
        return _loss(model, X, y)  # no backward: the optimiser builds what it needs

    for _ in range(60):
        opt.step(closure)
    assert float(_loss(model, X, y).detach()) < 0.9 * first
    for p in model.parameters():
        assert p.grad is None or p.grad.grad_fn is None  # no graph left behind


def test_closure_that_calls_backward_and_state_dict_round_trip():
    X, y = _data()
    model = _model()
    opt = so_torch.NAMO([{"params": [model[0].weight, model[2].weight]},
                         {"params": [model[0].bias, model[2].bias], "orthogonalize": False, "lr": 1e-3}], lr=2e-2)

    def closure():
        opt.zero_grad()
        loss = _loss(model, X, y)
        loss.backward()
        return loss

    for _ in range(5):
        opt.step(closure)
    twin = copy.deepcopy(model)
    opt2 = so_torch.NAMO([{"params": [twin[0].weight, twin[2].weight]},
                          {"params": [twin[0].bias, twin[2].bias], "orthogonalize": False, "lr": 1e-3}], lr=2e-2)
    opt2.load_state_dict(opt.state_dict())
    for _ in range(3):
        opt.step(closure)

        def closure2():
            opt2.zero_grad()
            loss = _loss(twin, X, y)
            loss.backward()
            return loss

        opt2.step(closure2)
    _assert_same(model, twin, rtol=1e-12)
    assert "m1" in opt.state[model[0].bias] and "buf" in opt.state[model[0].weight]


def test_errors_and_nonfinite():
    X, y = _data()
    model = _model()
    opt = so_torch.AdaHessian(model.parameters())
    _loss(model, X, y).backward()
    with pytest.raises(RuntimeError, match="create_graph=True"):
        opt.step()
    with pytest.raises(TypeError, match="unknown option"):
        so_torch.NAMO(model.parameters(), learning_rate=1.0)
    soaa = so_torch.SOAA(model.parameters())
    with pytest.raises(ValueError, match="needs the loss"):
        soaa.step()
    sgd_like = so_torch.AdamW(model.parameters(), lr=1e-2)
    before = [p.detach().clone() for p in model.parameters()]
    for p in model.parameters():
        p.grad = torch.full_like(p, float("nan"))
    sgd_like.step()
    assert sgd_like.n_skipped == 1
    for p, q in zip(model.parameters(), before):
        assert torch.equal(p.detach(), q)
    strict = so_torch.AdamW(model.parameters(), on_nonfinite="raise")
    from secondorder.stochastic import NonFiniteStepError

    with pytest.raises(NonFiniteStepError):
        strict.step()


def test_numpy_driver_takes_torch_tensors():
    from secondorder.stochastic import minimize

    g = torch.Generator().manual_seed(0)
    A = torch.randn(200, 6, generator=g, dtype=torch.float64)
    b = A @ torch.arange(6.0, dtype=torch.float64) + 0.01 * torch.randn(200, generator=g, dtype=torch.float64)

    def fun(x, batch):
        Ab, bb = batch
        r = Ab @ x - bb
        return float(0.5 * (r * r).mean()), Ab.T @ r / len(bb)

    def hessp(x, v, batch):
        Ab, _ = batch
        return Ab.T @ (Ab @ v) / Ab.shape[0]

    for method, options in (("adahessian", {"lr": 0.3}), ("mfac", {"lr": 0.3, "ngrads": 8, "damp": 1.0}),
                            ("namo", {"lr": 0.3})):
        res = minimize(fun, torch.zeros(6, dtype=torch.float64), (A, b), method=method, hessp=hessp,
                       batch_size=20, epochs=40, seed=0, options={"schedule": "cosine", **options})
        assert torch.is_tensor(res.x) and res.x.dtype == torch.float64
        assert float(torch.linalg.vector_norm(res.x - torch.arange(6.0, dtype=torch.float64))) < 0.1, method


def test_sophiag_closure_forms():
    X, y = _data()
    model = _model()
    opt = so_torch.SophiaG(model.parameters(), lr=1e-2)
    first = float(_loss(model, X, y).detach())
    gen = torch.Generator().manual_seed(0)
    for it in range(40):
        opt.step(lambda: _loss(model, X, y), bs=40)
        if it % 10 == 9:

            def sampled():
                logits = model(X)
                labels = torch.multinomial(torch.softmax(logits.detach(), -1), 1, generator=gen).squeeze(-1)
                return torch.nn.functional.cross_entropy(logits, labels)

            opt.update_hessian(sampled)
    assert float(_loss(model, X, y).detach()) < 0.8 * first
    assert opt.oracle_counts["sampled_grad"] == 4
    assert float(opt.state[next(model.parameters())]["h"].abs().sum()) > 0


def test_hessian_product_with_a_parameter_of_constant_gradient():
    w = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    b = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))  # enters linearly: its gradient has no graph
    opt = so_torch.SophiaH([w, b], lr=0.1, update_interval=1)
    for _ in range(3):
        opt.step(lambda: (w**2).sum() + b.sum())
    assert float(opt.state[b]["h"].abs().sum()) == 0.0  # its Hessian rows are zero
    assert float(opt.state[w]["h"].min()) > 0.0  # 2 on the diagonal, seen through the probes


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")
@pytest.mark.parametrize("name", ["AdamW", "SophiaH", "SOAA", "AdaHessian"])
def test_batched_groups_equal_tensor_by_tensor(name):
    """The element-wise methods run once per group on the concatenated tensors;
    the numbers are those of the core tensor by tensor, through a state_dict
    round trip and a step where one parameter has no gradient."""
    from secondorder import stochastic

    X, y = _data()
    model = _model()
    twin = copy.deepcopy(model)
    kw = {"lr": 1e-2}
    opt = getattr(so_torch, name)(model.parameters(), **kw)
    core = {"AdamW": stochastic.AdamW, "SophiaH": stochastic.SophiaH, "SOAA": stochastic.SOAA,
            "AdaHessian": stochastic.AdaHessian}[name](**kw)
    params = [p.detach().clone() for p in twin.parameters()]
    state = None
    for it in range(12):
        frozen = it == 5  # the last bias gets no gradient at this step
        opt.zero_grad()
        loss = _loss(model, X, y)
        loss.backward(create_graph=name in ("SophiaH", "AdaHessian"))
        if frozen:
            list(model.parameters())[-1].grad = None
        torch.manual_seed(it)
        opt.step(loss=loss) if name == "SOAA" else opt.step()
        if it == 6:
            saved = opt.state_dict()
            opt = getattr(so_torch, name)(model.parameters(), **kw)
            opt.load_state_dict(saved)
        # the core, tensor by tensor, on the same gradients and probes
        for p, q in zip(twin.parameters(), params):
            p.data.copy_(q)
        twin.zero_grad()
        tl = _loss(twin, X, y)
        grads = list(torch.autograd.grad(tl, list(twin.parameters()), create_graph=True))
        use = list(range(len(params) - 1)) if frozen else list(range(len(params)))
        if state is None:
            state = core.init([params[i] for i in use])
        sub_state = {k: ([v[i] for i in use] if k in core.per_param else v) for k, v in state.items()}
        oracles = {"loss": float(tl.detach())} if name == "SOAA" else {}
        if "hvp" in core.needs(sub_state):
            torch.manual_seed(it)
            z = [2 * torch.randint_like(params[i], high=2) - 1 for i in use]
            hz = torch.autograd.grad([grads[i] for i in use], list(twin.parameters()), grad_outputs=z, allow_unused=True)
            oracles.update(probes=z, hvp=[h if h is not None else torch.zeros_like(params[i]) for i, h in zip(use, hz)])
        updates, sub_state = core.update([grads[i].detach() for i in use], sub_state, [params[i] for i in use], **oracles)
        for i, u in zip(use, updates):
            params[i] = params[i] + u
        for k in core.per_param:
            full = list(state[k])
            for j, i in enumerate(use):
                full[i] = sub_state[k][j]
            sub_state[k] = full
        state = sub_state
    for p, q in zip(model.parameters(), params):
        np.testing.assert_allclose(p.detach().numpy(), q.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")
@pytest.mark.parametrize("name, options", [("SophiaG", {}), ("SophiaH", {}), ("SophiaH", {"guard": "max"})])
def test_sophia_foreach_equals_the_core(name, options):
    """The multi-tensor in-place step gives the numbers of the array-API core:
    with the estimate refreshed (inside the step or by update_hessian), a
    parameter whose first gradient comes late, and steps skipped for a NaN
    gradient and an inf estimate, which leave parameters and state as they were."""
    X, y = _data()
    models = [_model(), _model()]
    if name == "SophiaH":
        options["update_interval"] = 3
    opts = [getattr(so_torch, name)(m.parameters(), lr=1e-2, weight_decay=0.1, foreach=f, **options)
            for m, f in zip(models, (True, False))]
    for it in range(25):
        for model, opt in zip(models, opts):
            opt.zero_grad()
            _loss(model, X[it % 4 :: 4], y[it % 4 :: 4]).backward(create_graph=name == "SophiaH")
            if it < 4:
                list(model.parameters())[-1].grad = None  # the last bias joins at step 5
            if it == 10:
                list(model.parameters())[0].grad[0, 0] = float("nan")
            torch.manual_seed(it)
            opt.step(bs=10) if name == "SophiaG" else opt.step()
            if name == "SophiaG" and it % 5 == 4:
                opt.zero_grad()
                _loss(model, X, torch.roll(y, it)).backward()
                if it == 14:
                    list(model.parameters())[1].grad[0] = float("inf")
                opt.update_hessian()
    assert opts[0].n_skipped == opts[1].n_skipped == (2 if name == "SophiaG" else 1)
    _assert_same(*models, rtol=1e-12)
    for p, q in zip(*(m.parameters() for m in models)):
        for key in ("m", "h"):
            np.testing.assert_allclose(opts[0].state[p][key].numpy(), opts[1].state[q][key].numpy(), rtol=1e-12, atol=1e-14)


def test_sparse_gradients_are_a_clear_error():
    emb = torch.nn.Embedding(10, 3, sparse=True)
    opt = so_torch.AdamW(emb.parameters())
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="sparse gradients"):
        opt.step()

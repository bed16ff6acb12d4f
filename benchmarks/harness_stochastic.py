"""The stochastic optimisers against AdamW (and Muon) at a fixed step budget.

Every method, the baselines too, is tuned on the same 5-point learning-rate
grid (``LR_GRID``, log-spaced from 1e-3 to 1) with a cosine schedule, over
several seeds, in one thread; the table reports, at each method's best
learning rate, the median final training loss (over the full training set),
the time per step and the oracle calls per step.
"""

import math
import time
import warnings

import numpy as np

from secondorder._timing import digits

__all__ = ["LR_GRID", "bench_stochastic", "charlm_run", "digits", "mlp_run", "softmax_run", "stdlib_corpus"]

LR_GRID = tuple(float(v) for v in np.logspace(-3, 0, 5))
NUMPY_METHODS = ("adamw", "adahessian", "sophia-g", "sophia-h", "soaa", "muon", "namo", "namo-d", "mfac")
TORCH_METHODS = ("torch.AdamW", "torch.Muon", "AdaHessian", "SophiaG", "SophiaH", "SOAA", "NAMO", "NAMOD", "MFAC")
# the references, run where installed: sophia-opt's SophiaG and torch-optimizer's Adahessian
REFERENCES = ("ref.SophiaG", "ref.Adahessian")


def _options(method):
    extra = {"mfac": {"ngrads": 32, "damp": 0.1}}.get(method, {})
    if method in ("muon", "namo", "namo-d"):
        extra["shapes"] = [(10, 64), (10,)]
    return extra


def softmax_run(method, lr, seed, epochs=10, batch_size=64, data=None):
    """Softmax regression on digits through ``stochastic.minimize``:
    (final training loss, seconds per step, oracle calls per step)."""
    from secondorder.linear_model import SoftmaxLoss
    from secondorder.stochastic import minimize

    X, y = data if data is not None else digits()
    loss = SoftmaxLoss(X, y, alpha=1e-3)
    mb = loss.minibatch()
    t0 = time.perf_counter()
    res = minimize(
        mb.fun, loss.initial_params(), mb.data, method=method, hessp=mb.hessp, sampled_jac=mb.sampled_jac,
        batch_size=batch_size, epochs=epochs, seed=seed, options={"lr": lr, "schedule": "cosine", **_options(method)},
    )
    seconds = (time.perf_counter() - t0) / res.nit
    calls = (res.njev + res.nhvp + res.nsjev) / res.nit
    return loss.value(res.x), seconds, calls


def _optimisers(method, lr, model, matrix_params):
    """The optimisers of one run: ``matrix_params`` are the hidden matrices
    (Muon-type methods orthogonalise those only; embeddings, heads and
    vectors take their AdamW rule)."""
    import torch

    from secondorder import torch as so_torch

    matrices = set(map(id, matrix_params))
    hidden = [p for p in model.parameters() if id(p) in matrices]
    rest = [p for p in model.parameters() if id(p) not in matrices]
    if method == "torch.AdamW":
        return [torch.optim.AdamW(model.parameters(), lr=lr)]
    if method == "ref.SophiaG":
        import sophia_opt

        return [sophia_opt.SophiaG(model.parameters(), lr=lr)]
    if method == "ref.Adahessian":
        import torch_optimizer

        return [torch_optimizer.Adahessian(model.parameters(), lr=lr, hessian_power=1.0)]
    if method == "torch.Muon":
        return [torch.optim.Muon(hidden, lr=lr), torch.optim.AdamW(rest, lr=lr, betas=(0.9, 0.95), weight_decay=0)]
    if method in ("Muon", "NAMO", "NAMOD"):
        groups = [{"params": hidden}, {"params": rest, "orthogonalize": False}]
        return [getattr(so_torch, method)(groups, lr=lr)]
    extra = {"ngrads": 32, "damp": 0.1} if method == "MFAC" else {}
    return [getattr(so_torch, method)(model.parameters(), lr=lr, **extra)]


def _train_torch(method, lr, seed, model, matrix_params, batches, forward):
    """Train ``model`` on ``batches`` (a list of (inputs, targets)) with a
    cosine schedule; ``forward(model, inputs)`` gives the logits.  Returns
    (seconds per step, oracle calls per step)."""
    import torch

    opts = _optimisers(method, lr, model, matrix_params)
    schedulers = [torch.optim.lr_scheduler.CosineAnnealingLR(o, len(batches)) for o in opts]
    gen = torch.Generator().manual_seed(seed)
    calls = 0

    def loss_of(logits, targets):
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

    t0 = time.perf_counter()
    for nit, (xb, yb) in enumerate(batches):

        def closure():
            for o in opts:
                o.zero_grad()
            return loss_of(forward(model, xb), yb)

        if method == "ref.Adahessian":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # the reference's create_graph reference cycle
                closure().backward(create_graph=True)
            opts[0].step()
            opts[0].zero_grad(set_to_none=True)
            calls += 1
        elif method in ("torch.AdamW", "torch.Muon", "SophiaG", "ref.SophiaG"):
            closure().backward()
            for o in opts:
                o.step(bs=yb.numel()) if method.endswith("SophiaG") else o.step()
            if method.endswith("SophiaG") and nit % 10 == 9:
                # the reference loop's Gauss-Newton-Bartlett refresh: labels sampled from the model
                logits = forward(model, xb)
                probs = torch.softmax(logits.detach().reshape(-1, logits.shape[-1]), -1)
                sampled = torch.multinomial(probs, 1, generator=gen).reshape(yb.shape)
                opts[0].zero_grad()
                loss_of(logits, sampled).backward()
                opts[0].update_hessian()
                calls += 1
        else:
            opts[0].step(closure)
        calls += 1
        for sch in schedulers:
            sch.step()
    seconds = (time.perf_counter() - t0) / len(batches)
    calls += sum(getattr(o, "oracle_counts", {}).get("hvp", 0) for o in opts)
    return seconds, calls / len(batches)


def mlp_run(method, lr, seed, epochs=10, batch_size=64, data=None, hidden=128):
    """A 64-128-128-10 tanh MLP on digits with a PyTorch optimiser:
    (final training loss, seconds per step, oracle calls per step)."""
    import torch

    X, y = data if data is not None else digits()
    Xt, yt = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, hidden), torch.nn.Tanh(),
        torch.nn.Linear(hidden, 10),
    )
    gen = torch.Generator().manual_seed(seed)
    batches = [(Xt[idx], yt[idx]) for _ in range(epochs) for idx in torch.randperm(len(yt), generator=gen).split(batch_size)]
    seconds, calls = _train_torch(method, lr, seed, model, [model[2].weight], batches, lambda m, xb: m(xb))
    with torch.no_grad():
        final = float(torch.nn.functional.cross_entropy(model(Xt), yt))
    return (final if math.isfinite(final) else math.inf), seconds, calls


_CORPUS = {}


def stdlib_corpus():
    """The top-level ``*.py`` files of this Python's standard library, sorted
    and concatenated, as indices into a 96-character vocabulary (printable
    ASCII and newline; anything else becomes ``?``).  Returns (codes,
    description) with the Python version and the corpus's sha256, since the
    standard library changes between versions."""
    if "codes" not in _CORPUS:
        import glob
        import hashlib
        import os
        import platform
        import sysconfig

        files = sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "*.py")))
        text = "".join(open(f, encoding="utf-8", errors="replace").read() for f in files)
        raw = np.frombuffer(text.encode("ascii", errors="replace"), dtype=np.uint8)
        codes = np.where(raw == 10, 95, np.where((raw >= 32) & (raw < 127), raw.astype(np.int64) - 32, 31))
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        _CORPUS["codes"] = codes.astype(np.int64)
        _CORPUS["about"] = f"CPython {platform.python_version()} stdlib, {len(files)} files, {len(text)} chars, sha256 {digest}"
    return _CORPUS["codes"], _CORPUS["about"]


def _char_transformer(vocab, d, heads, layers, context):
    import torch

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = torch.nn.LayerNorm(d), torch.nn.LayerNorm(d)
            self.qkv, self.proj = torch.nn.Linear(d, 3 * d), torch.nn.Linear(d, d)
            self.fc, self.out = torch.nn.Linear(d, 4 * d), torch.nn.Linear(4 * d, d)
            self.register_buffer("mask", torch.full((context, context), float("-inf")).triu(1))

        def forward(self, x):
            B, T, _ = x.shape
            q, k, v = self.qkv(self.ln1(x)).reshape(B, T, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
            # attention written out: the fused CPU kernel has no double backward (Hessian-vector products)
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // heads) + self.mask[:T, :T], dim=-1)
            x = x + self.proj((att @ v).transpose(1, 2).reshape(B, T, d))
            return x + self.out(torch.nn.functional.gelu(self.fc(self.ln2(x))))

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.tok, self.pos = torch.nn.Embedding(vocab, d), torch.nn.Embedding(context, d)
            self.blocks = torch.nn.ModuleList(Block() for _ in range(layers))
            self.ln, self.head = torch.nn.LayerNorm(d), torch.nn.Linear(d, vocab)

        def forward(self, idx):
            x = self.tok(idx) + self.pos.weight[: idx.shape[1]]
            for block in self.blocks:
                x = block(x)
            return self.head(self.ln(x))

    return Model()


def charlm_run(method, lr, seed, steps=400, batch_size=16, context=48, d=32, heads=4, layers=2, data=None):
    """A 2-layer character-level transformer on the standard library's
    sources: (final validation loss, seconds per step, oracle calls per step)."""
    import torch

    codes = torch.as_tensor(data if data is not None else stdlib_corpus()[0])
    split = int(0.95 * len(codes))
    train, valid = codes[:split], codes[split:]
    torch.manual_seed(seed)
    model = _char_transformer(96, d, heads, layers, context)
    gen = torch.Generator().manual_seed(seed)

    def batch(source, generator):
        start = torch.randint(0, len(source) - context - 1, (batch_size,), generator=generator)
        rows = start[:, None] + torch.arange(context + 1)
        chunk = source[rows]
        return chunk[:, :-1], chunk[:, 1:]

    batches = [batch(train, gen) for _ in range(steps)]
    hidden = [p for name, p in model.named_parameters() if p.ndim == 2 and name.startswith("blocks")]
    seconds, calls = _train_torch(method, lr, seed, model, hidden, batches, lambda m, xb: m(xb))
    vgen = torch.Generator().manual_seed(12345)
    with torch.no_grad():
        losses = []
        for _ in range(20):
            xb, yb = batch(valid, vgen)
            logits = model(xb)
            losses.append(float(torch.nn.functional.cross_entropy(logits.reshape(-1, 96), yb.reshape(-1))))
    final = float(np.mean(losses))
    return (final if math.isfinite(final) else math.inf), seconds, calls


def timed_steps(run, lrs, data, short, reps=5):
    """Seconds per step of each method at its learning rate (``lrs``), the
    median of ``reps`` short runs taken in turn (method after method, round
    after round), so that a slow spell of the machine hits every method
    alike; a method timed alone over minutes can be 30% off on a shared
    machine."""
    times = {m: [] for m in lrs}
    for rep in range(reps):
        for method, lr in lrs.items():
            times[method].append(run(method, lr, rep, data=data, **short)[1])
    return {m: float(np.median(v)) for m, v in times.items()}


def _table(title, run, methods, baseline, seeds, data, out, short):
    out(f"\n{title}: best learning rate of {', '.join(f'{v:g}' for v in LR_GRID)} (cosine), median of {len(seeds)} seeds")
    rows = {}
    for method in (baseline,) + tuple(m for m in methods if m != baseline):
        best = None
        for lr in LR_GRID:
            runs = [run(method, lr, seed, data=data) for seed in seeds]
            losses = np.array([r[0] for r in runs])
            median = float(np.median(losses))
            if best is None or median < best[1]:
                q75, q25 = np.percentile(losses, [75, 25])
                best = (lr, median, float(q75 - q25), float(np.mean([r[2] for r in runs])))
        rows[method] = best
        out(f"  tuned {method:<14} lr {best[0]:.3g}  loss {best[1]:.4g}")
    seconds = timed_steps(run, {m: r[0] for m, r in rows.items()}, data, short)
    out(f"{'method':<14} {'lr':>7} {'loss':>10} {'IQR':>9} {'ms/step':>8} {'x time':>7} {'calls':>6} {'loss/base':>9}")
    base_loss, base_time = rows[baseline][1], seconds[baseline]
    for method, (lr, median, iqr, calls) in rows.items():
        out(f"{method:<14} {lr:>7.3g} {median:>10.4g} {iqr:>9.2g} {1e3 * seconds[method]:>8.3f} "
            f"{seconds[method] / base_time:>7.2f} {calls:>6.2f} {median / base_loss:>9.3f}")
    winner = min(rows, key=lambda m: rows[m][1])
    out(f"lowest loss: {winner} ({rows[winner][1] / base_loss:.3f} x {baseline}'s); ms/step: median of 5 short runs "
        "taken in turn")
    return {m: rows[m] + (seconds[m],) for m in rows}


def _installed(reference):
    import importlib.util

    return importlib.util.find_spec({"ref.SophiaG": "sophia_opt", "ref.Adahessian": "torch_optimizer"}[reference]) is not None


def _print(line):
    print(line, flush=True)


def bench_stochastic(seeds=(0, 1, 2), charlm=True, out=_print):
    """Softmax regression (NumPy driver) and an MLP (PyTorch front end) on
    digits, and a character-level transformer on the standard library's
    sources, every method tuned on ``LR_GRID``, one thread."""
    from threadpoolctl import threadpool_limits

    data = digits()
    results = {}
    with threadpool_limits(1):
        results["softmax-digits"] = _table(
            "softmax regression on digits, NumPy driver, batch 64, 10 epochs",
            softmax_run, NUMPY_METHODS, "adamw", seeds, data, out, {"epochs": 2},
        )
        try:
            import torch
        except ImportError:
            out("\nMLP on digits: skipped (PyTorch is not installed)")
            return results
        methods = TORCH_METHODS + tuple(r for r in REFERENCES if _installed(r))
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            results["mlp-digits"] = _table(
                "MLP 64-128-128-10 on digits, PyTorch front end, batch 64, 10 epochs",
                mlp_run, methods, "torch.AdamW", seeds, data, out, {"epochs": 2},
            )
            if charlm:
                codes, about = stdlib_corpus()
                results["charlm-stdlib"] = _table(
                    f"character-level transformer (2 layers, d 32, context 48, batch 16, 400 steps; validation "
                    f"loss) on {about}",
                    charlm_run, methods, "torch.AdamW", seeds, codes, out, {"steps": 60},
                )
        finally:
            torch.set_num_threads(threads)
    return results

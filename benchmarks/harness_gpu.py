"""``python -m secondorder bench gpu``: the GPU kernels against the CPU path,
POT's GPU backends and the memory-bandwidth floor.

Every row times one pass (or one solve) on the device and reports it
against the floor: the bytes the pass must move (the cost matrix, ``X`` or
M-FAC's window, read once) over the device's copy bandwidth, measured first.
A ratio near 1 means the kernel runs at the speed of memory.  The CPU path
(numba) and POT's CuPy backend, where it has the method, are timed on the
same data in the same process.

Without a usable CUDA device (CuPy with a device), the suite says so and
runs nothing.  The tests run it on tiny sizes with NumPy arrays and the
GPU kernel table in numba's simulator, which checks the code, not the
figures.
"""

import time

import numpy as np

from secondorder._backend import cupy_available, kernels, use_kernels

__all__ = ["bench_gpu"]


def _sync(xp):
    if xp.__name__.split(".")[0] == "cupy":
        xp.cuda.Device().synchronize()


def _best(xp, call, repeat):
    """(result, best seconds) of ``repeat`` synchronised calls."""
    best, result = np.inf, None
    for _ in range(repeat):
        _sync(xp)
        t0 = time.perf_counter()
        result = call()
        _sync(xp)
        best = min(best, time.perf_counter() - t0)
    return result, best


def copy_bandwidth(xp, nbytes=1 << 28, repeat=5):
    """Bytes per second of a device-to-device copy (read + write)."""
    a = xp.ones(nbytes // 8)
    b = xp.empty_like(a)
    _, seconds = _best(xp, lambda: b.__setitem__(slice(None), a), repeat)
    return 2 * a.nbytes / seconds


def _host(a):
    return a.get() if hasattr(a, "get") else np.asarray(a)


def _row(out, name, seconds, floor, others):
    extra = "".join(f" {k} {v * 1e3:9.2f} ms ({v / seconds:6.2f}x)" for k, v in others.items())
    out(f"{name:<38} {seconds * 1e3:10.2f} ms  floor {floor * 1e3:8.2f} ms ({seconds / floor:5.2f}x){extra}")


def _try(out, name, make_row):
    try:
        make_row()
    except Exception as exc:  # one failing row does not hide the others
        out(f"{name:<38} failed: {type(exc).__name__}: {exc}")


def bench_gpu(ot_sizes=(10_000, 20_000), reg=1e-3, glm_shape=(2_000_000, 200), mfac_shape=(10_000_000, 1024),
              repeat=3, cpu=True, xp=None, out=print):
    """The GPU table; ``xp=None`` takes CuPy when a device is usable."""
    if xp is None:
        if not cupy_available():
            out("no usable CUDA device (CuPy with a device): the GPU tables were not run")
            return {}
        import cupy as xp
    from secondorder import ot
    from secondorder.curvature import MFAC

    bandwidth = copy_bandwidth(xp, nbytes=min(1 << 28, 8 * max(ot_sizes) ** 2))
    out(f"device copy bandwidth {bandwidth / 1e9:.1f} GB/s; floors are bytes read once over it")
    gpu, host = kernels(name="gpu"), kernels(name="cpu")
    rng = np.random.default_rng(0)

    for n in ot_sizes:
        x, y = rng.random((n, 2)), rng.random((n, 2))
        M_host = ot.dist(x, y)
        M_host /= M_host.max()
        M = xp.asarray(M_host)
        a = xp.full(n, 1.0 / n)
        pass_floor = M.nbytes / bandwidth

        def sweep_row(n=n, M=M, M_host=M_host, a=a, pass_floor=pass_floor):
            g, f = xp.zeros(n), xp.empty(n)
            _, seconds = _best(xp, lambda: (gpu.lse_rows(M, g, reg, f), gpu.lse_cols(M, f, reg, g)), repeat)
            others = {}
            if cpu:
                gh, fh = np.zeros(n), np.empty(n)
                others["cpu"] = _best(np, lambda: (host.lse_rows(M_host, gh, reg, fh), host.lse_cols(M_host, fh, reg, gh)),
                                      repeat)[1]
            _pot_sweep(xp, others, a, M, reg, repeat)
            _row(out, f"log-Sinkhorn sweep n={n}", seconds, 2 * pass_floor, others)

        def sns_row(n=n, M=M, M_host=M_host, a=a, pass_floor=pass_floor):
            with use_kernels("gpu"):
                (P, log), seconds = _best(xp, lambda: ot.sinkhorn(a, a, M, reg, method="sns", log=True), 1)
            others = {}
            if cpu and n <= 10_000:
                others["cpu"] = _best(np, lambda: ot.sinkhorn(_host(a), _host(a), M_host, reg, method="sns"), 1)[1]
            _row(out, f"SNS solve n={n} ({log['niter']} it, {log['n_passes']} passes)", seconds,
                 log["n_passes"] * pass_floor, others)

        _try(out, f"log-Sinkhorn sweep n={n}", sweep_row)
        _try(out, f"SNS solve n={n}", sns_row)
        del M

    def glm_row():
        n, d = glm_shape
        X = xp.asarray(rng.standard_normal((n, d), dtype=np.float32))
        y = xp.asarray((rng.random(n) < 0.5).astype(np.float64))
        sw, coef = xp.ones(n), xp.asarray(rng.standard_normal(d).astype(np.float32) / np.sqrt(d))
        r, h = xp.empty(n), xp.empty(n)
        _, seconds = _best(xp, lambda: gpu.logistic_grad(X, y, sw, coef, 0.0, r, h), repeat)
        others = {}
        if cpu:
            Xh, yh, swh, ch = _host(X), _host(y), _host(sw), _host(coef)
            rh, hh = np.empty(n), np.empty(n)
            others["cpu"] = _best(np, lambda: host.logistic_grad(Xh, yh, swh, ch, 0.0, rh, hh), repeat)[1]
        # X is read twice (X w, then X^T r) by the BLAS; the floor counts one read
        _row(out, f"logistic gradient {n}x{d} float32", seconds, X.nbytes / bandwidth, others)

    def mfac_row():
        d, m = mfac_shape
        model = MFAC(m, damp=1e-4)
        model.fill(xp.asarray(rng.standard_normal((m, d), dtype=np.float32)))
        g = xp.asarray(rng.standard_normal(d, dtype=np.float32))
        model.update_and_ihvp(g)
        model.update_and_ihvp(g)
        _, seconds = _best(xp, lambda: model.update_and_ihvp(g), repeat)
        # the step reads the window twice (G g, then G^T z)
        _row(out, f"M-FAC step d={d:.0e} m={m} float32", seconds, 2 * m * d * 4 / bandwidth, {})

    _try(out, "logistic gradient", glm_row)
    _try(out, "M-FAC step", mfac_row)
    return {"bandwidth": bandwidth}


def _pot_sweep(xp, others, a, M, reg, repeat):
    """POT's log-domain Sinkhorn on the same device arrays, 10 iterations, per
    iteration (a sweep), where POT and its backend for ``xp`` are installed."""
    try:
        import ot as pot
    except ImportError:
        return
    if xp is np:
        return
    iters = 10
    _, seconds = _best(xp, lambda: pot.sinkhorn(a, a, M, reg, method="sinkhorn_log", numItermax=iters, stopThr=0.0),
                       max(1, repeat - 1))
    others["POT"] = seconds / iters

"""The asv suite imports and runs a combination (asv itself is not needed)."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_minimize_suite_runs_one_combination():
    mod = _load("bench_minimize")
    bench = mod.Minimize()
    bench.setup("quadratic-50", "gns")
    bench.time_solve("quadratic-50", "gns")
    assert bench.track_nit("quadratic-50", "gns") >= 1
    assert bench.track_gnorm("quadratic-50", "gns") <= -8
    with pytest.raises(NotImplementedError):
        bench.setup("rosenbrock-1000", "trust-exact")


def test_trust_region_suite_runs_one_combination():
    mod = _load("bench_trust_region")
    bench = mod.TrustRegion()
    bench.setup("quartic-30", "tr:mfac")
    assert bench.track_nit("quartic-30", "tr:mfac") >= 1
    bench.setup("quartic-30", "trust-krylov")
    bench.time_solve("quartic-30", "trust-krylov")
    with pytest.raises(NotImplementedError):
        bench.setup("rosenbrock-1000", "tr:exact-dense")


def test_mfac_suite_runs_a_small_case():
    mod = _load("bench_mfac")
    bench = mod.MFACStep()
    bench.setup(5000, 16, "float32")
    bench.time_step(5000, 16, "float32")
    bench.time_floor_two_gemv(5000, 16, "float32")


def test_ot_suite_runs_small_cases():
    mod = _load("bench_ot")
    bench = mod.PointClouds()
    bench.setup(500, 1e-2, 0, "so:sns")
    bench.time_solve(500, 1e-2, 0, "so:sns")
    assert bench.track_l1_error(500, 1e-2, 0, "so:sns") < 1e-9
    ra = mod.RandomAssignment()
    ra.setup("so:sns")
    assert ra.track_iterations("so:sns") <= 60
    other = mod.OtherMethods()
    other.setup("so:sinkhorn_epsilon_scaling")
    assert other.track_l1_error("so:sinkhorn_epsilon_scaling") < 1e-9
    hard = mod.HardGeometry()
    hard.setup("apart", 1000, "so:sns")
    assert hard.track_iterations("apart", 1000, "so:sns") >= 1
    hard.setup("images", 1000, "so:sns@grid")
    assert hard.track_iterations("images", 1000, "so:sns@grid") >= 1
    with pytest.raises(NotImplementedError):
        hard.setup("apart", 1000, "so:sns@grid")
    per = mod.LogSinkhornPerIteration()
    per.setup(500, "so:sinkhorn_log")
    per.time_50_iterations(500, "so:sinkhorn_log")


def test_glm_suite_runs_small_cases():
    mod = _load("bench_glm")
    bench = mod.LogisticFit()
    bench.setup("digits-softmax", "so:gns")
    bench.time_fit("digits-softmax", "so:gns")
    assert bench.track_gradient_norm("digits-softmax", "so:gns") <= 1e-8
    assert bench.track_iterations("digits-softmax", "so:gns") >= 1
    with pytest.raises(NotImplementedError):
        bench.setup("sparse-100000x20000", "sk:newton-cholesky")
    grid = mod.DefaultsGrid()
    grid.setup("digits-softmax", "ours")
    assert grid.track_gradient_norm("digits-softmax", "ours") <= 1e-8
    grid.setup("digits-softmax", "sk:newton-cg")
    assert grid.track_gradient_norm("digits-softmax", "sk:newton-cg") <= 1e-6


def test_glm_grid_table_runs_small():
    from benchmarks.harness_glm_grid import bench_glm_grid

    lines = []
    summary = bench_glm_grid(["binary-1000x10", "softmax-30000"], scale=0.01, repeat=1, out=lines.append)
    assert set(summary) == {"binary-1000x10-C1e4", "softmax-30000x300x3-correlated"}
    assert all(ratio > 0 for ratio, _ in summary.values())
    assert "worst case" in lines[-1]


def test_stochastic_suite_runs_small_cases():
    mod = _load("bench_stochastic")
    bench = mod.SoftmaxDigits()
    bench.setup("sophia-h")
    bench.time_10_epochs("sophia-h")
    from benchmarks.harness_stochastic import mlp_run, softmax_run

    loss, seconds, calls = softmax_run("adahessian", 0.3, 0, epochs=1)
    assert loss < 2.3 and seconds > 0 and calls == 2.0
    pytest.importorskip("torch")
    for method in ("torch.Muon", "SophiaG", "NAMOD"):
        loss, seconds, calls = mlp_run(method, 0.03, 0, epochs=1, hidden=16)
        assert loss < 2.3


def test_gpu_suite_skips_without_a_device():
    from secondorder._backend import cupy_available

    mod = _load("bench_gpu")
    if cupy_available():
        pytest.skip("a device is present: the suite runs")
    with pytest.raises(NotImplementedError):
        mod.SinkhornGPU().setup(10_000, "gpu")
    with pytest.raises(NotImplementedError):
        mod.MFACStepGPU().setup()


def test_dask_suite_runs_one_combination_and_the_table_compares_with_scikit_learn():
    pytest.importorskip("distributed")
    mod = _load("bench_dask")
    bench = mod.DaskLogisticFit()
    bench.setup("so:trust-region")
    try:
        bench.time_fit("so:trust-region")
        assert bench.track_rounds("so:trust-region") >= 2
    finally:
        bench.teardown("so:trust-region")
    from benchmarks.harness_dask import bench_dask

    lines = []
    bench_dask(n=4000, d=5, partitions=2, repeat=1, out=lines.append, correlated=True)
    rows = [line for line in lines if line.startswith("so:")]
    assert len(rows) == 4
    assert all(float(row.split()[-1]) < 1e-6 for row in rows)  # every solver reaches scikit-learn's coefficients

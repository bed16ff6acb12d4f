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

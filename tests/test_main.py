"""The command line: info, bench and demo run and print what they promise."""

import subprocess
import sys

from secondorder.__main__ import main


def test_info(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "numba_threads" in out and "numba_cache_dir" in out and "cupy" in out


def test_bench_rows(capsys):
    assert main(["bench", "minimize", "trust-region", "--only", "quadratic", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    for method in ("gns", "trust-exact", "trust-ncg", "trust-krylov", "Newton-CG", "L-BFGS-B"):
        assert method in out
    for variant in ("tr:exact-dense", "tr:exact-hessp", "tr:precond-diag-fisher", "tr:hutchinson", "tr:mfac"):
        assert variant in out
    assert "vs gns" in out


def test_bench_mfac_rows(capsys):
    assert main(["bench", "mfac", "--mfac-dims", "2000", "--mfac-windows", "8", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "step/floor" in out and "float32" in out and "float64" in out


def test_bench_ot_rows(capsys):
    args = ["bench", "ot", "--ot-sizes", "60", "--ot-draws", "2", "--ot-assignment-size", "60", "--ot-max-iter", "3000",
            "--ot-large", "90", "--ot-grid-sides", "12"]
    assert main(args) == 0
    out = capsys.readouterr().out
    for kind, methods in (("clouds n=90 ", {"so:sns", "pot:emd"}), ("images n=90 ", {"so:sns", "so:sns@grid", "pot:emd"}),
                          ("images n=144 ", {"so:sns@grid", "pot:emd"})):
        large = [line for line in out.splitlines() if line.startswith(kind)]
        assert {line.split()[3] for line in large} == methods
    for name in ("assignment n=60", "clouds n=60 reg=0.001 #1", "so:sns", "pot:sinkhorn", "regot:ssns", "per iter",
                 "pot:emd", "apart n=60", "images n=60", "so:greenkhorn", "pot:sinkhorn_epsilon_scaling"):
        assert name in out
    assert "geometric mean over 2 draws" in out


def test_bench_rejects_unknown_suite():
    import pytest

    with pytest.raises(SystemExit):
        main(["bench", "frobnicate"])


def test_demo_writes_plot(tmp_path, capsys):
    path = tmp_path / "demo.png"
    assert main(["demo", "--plot", str(path)]) == 0
    out = capsys.readouterr().out
    assert "gns" in out and "trust-exact" in out
    assert path.exists() and path.stat().st_size > 10_000


def test_usage_and_unknown_command():
    assert main([]) == 2
    assert main(["frobnicate"]) == 2
    # the module is runnable as a script
    done = subprocess.run([sys.executable, "-m", "secondorder", "info"], capture_output=True, text=True)
    assert done.returncode == 0 and "secondorder" in done.stdout


def test_bench_glm_rows(capsys):
    assert main(["bench", "glm", "--glm-scale", "0.002", "--only", "binary-200000", "sparse", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    for name in ("binary-200000x100", "sparse-100000x20000", "so:auto", "so:gns", "sk:lbfgs", "scipy:Newton-CG", "so:auto to", "fastest anchor / the default at the same final gradient norm"):
        assert name in out
    assert "sk:newton-cholesky" not in out.split("sparse-100000x20000", 1)[1]

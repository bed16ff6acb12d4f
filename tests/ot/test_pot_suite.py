"""POT's own ``test_bregman.py`` against our solvers (the plugin
``tests/ot/pot_shim.py``): every POT test that calls one of our functions
passes, but for the differences we make on purpose.

POT's wheels do not ship its tests: point ``SECONDORDER_POT_TESTS`` at the
``test/`` folder of a POT checkout (with its ``conftest.py``) to run it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

POT_TESTS = os.environ.get("SECONDORDER_POT_TESTS")

# POT tests whose failure is a difference we make on purpose
DIFFERENCES = {
    "test_nan_warning": "reg=0 is an error here (POT warns and returns NaN)",
    "test_implemented_methods": "sinkhorn2 also takes greenkhorn and epsilon scaling here (POT raises)",
    "test_sinkhorn2_gradients": "no automatic differentiation through the solvers",
}


@pytest.mark.skipif(not POT_TESTS, reason="set SECONDORDER_POT_TESTS to the test/ folder of a POT checkout "
                                          "(POT's wheels do not ship its tests)")
def test_pot_bregman_suite_passes_against_ours(tmp_path):
    report = tmp_path / "report.json"
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, SECONDORDER_POT_REPORT=str(report),
               PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.ot.pot_shim",
                    str(Path(POT_TESTS) / "test_bregman.py")], cwd=POT_TESTS, env=env, capture_output=True, timeout=1800)
    result = json.loads(report.read_text())
    used, outcomes = result["used"], result["outcomes"]
    assert len(used) >= 60  # the tests of the functions we replace
    failed = [t for t in used if outcomes.get(t) != "passed"]
    unexpected = [t for t in failed if t.split("::")[-1].split("[")[0] not in DIFFERENCES]
    assert not unexpected, unexpected

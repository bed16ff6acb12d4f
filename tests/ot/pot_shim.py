"""A pytest plugin that runs POT's own tests against :mod:`secondorder.ot`.

Loaded with ``-p tests.ot.pot_shim`` in a pytest run of POT's test files, it
replaces POT's entropic solvers (``ot.sinkhorn``, ``ot.sinkhorn2`` and their
``ot.bregman`` versions, ``sinkhorn_log``, ``sinkhorn_stabilized``,
``sinkhorn_epsilon_scaling``, ``greenkhorn``) and ``ot.dist`` by ours, and
writes to ``$SECONDORDER_POT_REPORT`` (JSON) which tests called them and how
each test ended.  ``tests/ot/test_pot_suite.py`` runs it.
"""

import functools
import json
import os

import pytest

_BREGMAN = ("sinkhorn", "sinkhorn2", "sinkhorn_log", "sinkhorn_stabilized", "sinkhorn_epsilon_scaling", "greenkhorn")
_current = {"test": None}
_report = {"used": [], "outcomes": {}}


def _tracked(func):
    @functools.wraps(func)
    def call(*args, **kwargs):
        if _current["test"] not in _report["used"]:
            _report["used"].append(_current["test"])
        return func(*args, **kwargs)

    return call


def pytest_configure(config):
    import ot
    import ot.bregman

    from secondorder import ot as ours

    for name in ("sinkhorn", "sinkhorn2"):
        setattr(ot, name, _tracked(getattr(ours, name)))
    ot.dist = ours.dist
    for name in _BREGMAN:
        setattr(ot.bregman, name, _tracked(getattr(ours, name)))


@pytest.fixture(autouse=True)
def _which_test(request):
    _current["test"] = request.node.nodeid
    yield


def pytest_runtest_logreport(report):
    if report.when == "call" or report.outcome != "passed":
        _report["outcomes"][report.nodeid] = report.outcome


def pytest_sessionfinish(session, exitstatus):
    with open(os.environ["SECONDORDER_POT_REPORT"], "w") as fh:
        json.dump(_report, fh)

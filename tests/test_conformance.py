"""Every conformance probe of ../shared/conformance prints exactly what Stackless 3.7.5 printed.

The probes' own runner (run.py) does the comparison; each probe is one test here.
"""
import importlib.util
import sys

import pytest

from conftest import SHARED

PROBES = SHARED / "conformance"

def load_runner():
    spec = importlib.util.spec_from_file_location("conformance_run", PROBES / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


runner = load_runner()


@pytest.mark.parametrize("name", runner.probe_names(None))
def test_probe(name):
    problem = runner.run_probe(sys.executable, name, 120)
    assert problem is None, problem

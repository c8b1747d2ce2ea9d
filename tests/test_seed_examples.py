"""The programs our users showed us run unchanged and print what Stackless 3.7.5 printed.

Each ../shared/seed-examples/NAME.py runs as a subprocess (cwd = that folder); its stdout must
equal NAME.expected, or NAME.ARG.expected when run with argument ARG.
"""
import shutil

import pytest

from conftest import SHARED, run_python

SEEDS = SHARED / "seed-examples"


def cases():
    for expected in sorted(SEEDS.glob("*.expected")):
        parts = expected.name[: -len(".expected")].split(".", 1)
        name, arg = parts[0], (parts[1] if len(parts) > 1 else None)
        if (SEEDS / (name + ".py")).exists():
            yield pytest.param(name, arg, id=name + ("-" + arg if arg else ""))


@pytest.fixture(scope="module")
def seed_dir(tmp_path_factory):
    """A copy of the seed folder: pickled_tasklet writes its pickle into its cwd."""
    d = tmp_path_factory.mktemp("seeds") / "seed-examples"
    shutil.copytree(SEEDS, d)
    return d


@pytest.mark.parametrize("name,arg", list(cases()))
def test_seed_example(name, arg, seed_dir):
    # recursion.py prints the length of a 16326-digit number: CPython 3.11+ limits int->str
    # conversion to 4300 digits (CVE-2020-10735) unless told otherwise; Stackless 3.7 had
    # no such limit. The program itself is run unchanged.
    env = {"PYTHONINTMAXSTRDIGITS": "0"}
    args = [arg] if arg else []
    if arg and (seed_dir / arg).suffix == ".pickle":
        # the second step of a pickling example loads what its first step wrote
        (seed_dir / arg).unlink(missing_ok=True)
        first = run_python(None, script=seed_dir / (name + ".py"), cwd=seed_dir, env=env)
        assert first.returncode == 0, first.stderr
        assert (seed_dir / arg).exists()
    proc = run_python(None, *args, script=seed_dir / (name + ".py"), cwd=seed_dir, env=env,
                      timeout=300)
    expected = (SEEDS / (name + (("." + arg) if arg else "") + ".expected")).read_text()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == expected

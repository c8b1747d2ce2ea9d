"""Shared helpers for the test suite.

Every test starts and must end with the calling thread's scheduler idle: the main tasklet
current and alone in the run queue. A test that leaves tasklets behind fails, and they are
killed so that the next test starts clean.
"""
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

import stackless

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get("STACKLESS_SHARED", ROOT.parent / "shared")).resolve()

def open_fds():
    """How many file descriptors the process has open (I/O tests compare before/after)."""
    return len(os.listdir("/proc/self/fd"))


# Numbers worth reporting (bytes per tasklet, ...) collected by tests for the summary.
REPORT = []


def report(line):
    REPORT.append(line)


def pytest_terminal_summary(terminalreporter):
    if REPORT:
        terminalreporter.section("stackless measurements")
        for line in REPORT:
            terminalreporter.write_line(line)


def run_python(source=None, *args, script=None, cwd=None, env=None, timeout=120):
    """Run a Python program in a fresh interpreter (the one running the tests).

    source: program text (dedented), or script: path of a file. Returns CompletedProcess
    with text stdout/stderr.
    """
    cmd = [sys.executable]
    if script is not None:
        cmd.append(str(script))
    else:
        cmd += ["-c", textwrap.dedent(source)]
    cmd += [str(a) for a in args]
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(cmd, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(autouse=True)
def idle_scheduler():
    assert stackless.current is stackless.main, "a previous test left the scheduler busy"
    yield
    leftovers = []
    t = stackless.main.next
    while t is not None and t is not stackless.main:
        leftovers.append(t)
        t = t.next
    for t in leftovers:
        t.kill()
    assert stackless.current is stackless.main
    assert not leftovers, "test left %d runnable tasklets" % len(leftovers)
    assert stackless.runcount == 1
    assert stackless.switch_trap(0) == 0
    assert stackless.get_channel_callback() is None
    assert stackless.get_schedule_callback() is None

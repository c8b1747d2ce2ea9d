"""Trace and profile functions belong to the tasklet that set them (spec §9); debugging
tools see each tasklet's own stack."""
import io
import subprocess
import sys
import textwrap

import pytest

import stackless
from conftest import run_python


def test_a_trace_function_sees_only_its_own_tasklet():
    seen = {"A": set(), "B": set()}

    def make(tag):
        def tracer(frame, event, arg):
            seen[tag].add(frame.f_code.co_name)
            return tracer
        return tracer

    def work_a(i):
        return i + 1

    def work_b(i):
        return i + 2

    def a_body():
        sys.settrace(make("A"))
        for i in range(3):
            stackless.schedule()
            work_a(i)
        sys.settrace(None)

    def b_body():
        sys.setprofile(lambda f, e, a: seen["B"].add(f.f_code.co_name))
        for i in range(3):
            stackless.schedule()
            work_b(i)
        sys.setprofile(None)

    stackless.tasklet(a_body)()
    stackless.tasklet(b_body)()
    stackless.run()
    assert seen["A"] == {"work_a"}
    assert "work_b" in seen["B"] and "work_a" not in seen["B"]
    assert sys.gettrace() is None and sys.getprofile() is None


def test_trace_function_attribute_of_a_suspended_tasklet():
    log = []

    def work():
        return 3

    def body():
        stackless.schedule()
        work()

    def tracer(frame, event, arg):
        log.append((frame.f_code.co_name, event))

    t = stackless.tasklet(body)()
    t.run()                                  # now paused in schedule()
    assert t.trace_function is None
    t.trace_function = tracer                # takes effect when it resumes
    assert t.trace_function is tracer and sys.gettrace() is None
    t.profile_function = None
    stackless.run()
    assert ("work", "call") in log and sys.gettrace() is None


def test_trace_function_attribute_errors():
    dead = stackless.tasklet(lambda: None)()
    stackless.run()
    dead.trace_function = None               # a no-op on a tasklet that is not alive
    with pytest.raises(RuntimeError, match="tasklet is not alive"):
        dead.trace_function = lambda *a: None
    with pytest.raises(RuntimeError, match="tasklet is not alive"):
        dead.profile_function = lambda *a: None
    cur = stackless.getcurrent()
    cur.trace_function = None
    assert cur.trace_function is None and sys.gettrace() is None


def test_setting_the_current_tasklet_of_another_thread_is_refused():
    p = run_python("""
        import threading, time, stackless
        ch = stackless.channel()
        box = {}
        def helper():
            box["main"] = stackless.main
            while not box.get("stop"):
                time.sleep(0.001)     # running (not asleep in its scheduler)
        th = threading.Thread(target=helper)
        th.start()
        while "main" not in box:
            time.sleep(0.001)
        for attr in ("trace_function", "profile_function"):
            try:
                setattr(box["main"], attr, lambda *a: None)
            except RuntimeError as e:
                print(e)
        box["stop"] = True
        th.join()
    """)
    assert p.stdout == ("You cannot set the trace function of the current tasklet of another "
                        "thread\nYou cannot set the profile function of the current tasklet of "
                        "another thread\n"), p.stderr


def test_pdb_steps_through_a_tasklet_and_stays_there(tmp_path):
    script = tmp_path / "debugged.py"      # a file, so that pdb can show the source lines
    script.write_text(textwrap.dedent("""
        import pdb, stackless
        def other():
            for i in range(3):
                print("other", i)
                stackless.schedule()
        def debugged():
            x = 1
            pdb.set_trace()
            y = x + 1
            stackless.schedule()
            z = y + 1
            print("debugged done", z)
        stackless.tasklet(debugged)()
        stackless.tasklet(other)()
        stackless.run()
    """))
    p = subprocess.run([sys.executable, str(script)], input="n\nn\np y\nn\nn\nc\n",
                       capture_output=True, text=True, timeout=60)
    out = p.stdout
    assert p.returncode == 0, out + p.stderr
    # the stepped lines are all in debugged(), across its own schedule()
    assert "-> y = x + 1" in out and "-> stackless.schedule()" in out and "-> z = y + 1" in out
    assert "(Pdb) 2" in out                       # p y
    assert "debugged done 3" in out and out.count("other ") == 3


def test_frames_tracebacks_and_dump_tasklets_show_each_tasklets_stack():
    import traceback
    ch = stackless.channel()

    def inner():
        ch.receive()

    def outer():
        inner()

    t = stackless.tasklet(outer)()
    stackless.run()
    names = [f.name for f in traceback.extract_stack(t.frame)]
    assert names[-2:] == ["outer", "inner"]
    out = io.StringIO()
    stackless.dump_tasklets(file=out)
    text = out.getvalue()
    assert "blocked receiving on channel" in text and "in inner" in text and "main" in text
    ch.send(None)

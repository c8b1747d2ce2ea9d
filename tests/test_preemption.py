"""run(timeout): preempting busy tasklets (spec §3.3), beyond the watchdog_* probes.

Each program runs in a fresh interpreter: the preemption timer trips a signal, and a hang
must fail the test rather than stall the suite.
"""
import textwrap

from conftest import run_python

PRELUDE = """
import faulthandler, sys
import stackless
faulthandler.dump_traceback_later(50, exit=True)

def spin(n, box, key):
    for i in range(n):
        box[key] = box.get(key, 0) + 1
"""


def ok(source, expect):
    p = run_python(PRELUDE + textwrap.dedent(source), timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout == expect, p.stdout + p.stderr


def test_two_spinning_tasklets_both_make_progress():
    ok("""
        box = {}
        a = stackless.tasklet(spin)(2_000_000, box, "a")
        b = stackless.tasklet(spin)(2_000_000, box, "b")
        both_before_either_ended = False
        interrupts = 0
        while a.alive or b.alive:
            t = stackless.run(timeout=10_000)
            if t is not None:
                interrupts += 1
                assert t.paused and not t.scheduled
                if a.alive and b.alive and box.get("a") and box.get("b"):
                    both_before_either_ended = True
                t.insert()
        print(both_before_either_ended, interrupts > 2, box == {"a": 2_000_000, "b": 2_000_000})
    """, "True True True\n")


def test_an_atomic_tasklet_is_never_interrupted():
    ok("""
        box = {}
        def atomic_spinner():
            with stackless.atomic():
                spin(1_000_000, box, "x")
                box["atomic at end"] = stackless.current.atomic
        t = stackless.tasklet(atomic_spinner)()
        print(stackless.run(timeout=1000), box["x"], box["atomic at end"], t.alive)
    """, "None 1000000 True False\n")


def test_c_state_protects_unless_ignore_nesting():
    ok("""
        box = {}
        def key(x):          # runs inside sorted(): C state between the tasklet and here
            spin(200_000, box, "k")
            return x
        def nested():
            sorted([1, 2], key=key)
            box["sorted done"] = True
            spin(2_000_000, box, "after")
        t = stackless.tasklet(nested)()
        r = stackless.run(timeout=1000)
        print("interrupted after sorted():", r is t and box.get("sorted done"))
        t.kill()
        box.clear()
        t = stackless.tasklet(nested)()
        r = stackless.run(timeout=1000, ignore_nesting=True)
        print("ignore_nesting interrupts inside:", r is t and "sorted done" not in box,
              "nesting", t.nesting_level > 0)
        t.kill()
    """, "interrupted after sorted(): True\nignore_nesting interrupts inside: True nesting True\n")


def test_interrupted_tasklet_resumes_where_it_stopped_and_can_be_killed():
    ok("""
        box = {}
        log = []
        def worker():
            try:
                spin(3_000_000, box, "n")
                log.append("finished")
            finally:
                log.append("finally")
        t = stackless.tasklet(worker)()
        r = stackless.run(timeout=1000)
        first = box["n"]
        t.insert()
        r2 = stackless.run(timeout=1000)
        print(r is t, r2 is t, 0 < first < box["n"] < 3_000_000)
        t.kill()
        print(log, t.alive, stackless.runcount)
    """, "True True True\n['finally'] False 1\n")


def test_schedule_and_channels_inside_a_timed_run():
    ok("""
        ch = stackless.channel()
        got = []
        def producer():
            for i in range(20_000):
                ch.send(i)
        def consumer():
            for i in range(20_000):
                got.append(ch.receive())
        stackless.tasklet(producer)()
        stackless.tasklet(consumer)()
        while stackless.runcount > 1:
            t = stackless.run(timeout=2000)
            if t is not None:
                t.insert()
        print(got == list(range(20_000)))
    """, "True\n")

"""Lifetime: garbage collection and finalisation of tasklets and channels, and interpreter exit
with tasklets still suspended."""
import gc
import weakref

import pytest

import stackless

from conftest import run_python


class TestCollection:
    def test_dead_tasklets_channels_and_cycles_are_collected(self):
        events = []
        ch = stackless.channel()
        t = stackless.tasklet(ch.send)("x")
        assert ch.receive() == "x"
        stackless.run()
        r1 = weakref.ref(t, lambda r: events.append("tasklet"))
        r2 = weakref.ref(ch, lambda r: events.append("channel"))
        del t, ch
        gc.collect()
        assert sorted(events) == ["channel", "tasklet"]

        class Holder(stackless.channel):
            pass

        h = Holder()
        bound = stackless.tasklet(lambda h=h: h.receive())
        h.owner = bound  # cycle: channel -> tasklet -> callable -> channel
        r3, r4 = weakref.ref(h), weakref.ref(bound)
        del h, bound
        gc.collect()
        assert r3() is None and r4() is None

    def test_unreferenced_paused_tasklet_is_killed(self):
        log = []

        def victim():
            try:
                stackless.schedule_remove()
                log.append("resumed?!")
            except TaskletExit:
                log.append("TaskletExit")
                raise
            finally:
                log.append("finally")

        t = stackless.tasklet(victim)()
        t.run()
        ref = weakref.ref(t)
        del t
        # schedule_remove() parked the tasklet itself in its tempval: a cycle for the GC
        gc.collect()
        assert log == ["TaskletExit", "finally"]
        assert ref() is None

    def test_unreferenced_paused_tasklet_without_cycle_is_killed_at_once(self):
        log = []

        def victim():
            try:
                stackless.schedule_remove(None)
            finally:
                log.append("finally")

        t = stackless.tasklet(victim)()
        t.run()
        del t
        assert log == ["finally"]

    def test_self_removing_tasklet_is_killed_once_off_the_cpu(self):
        # The run queue held the only reference; the tasklet pauses itself.
        log = []

        def lonely():
            try:
                stackless.schedule_remove()
            finally:
                log.append("finally")

        stackless.tasklet(lonely)()
        stackless.run()
        gc.collect()
        assert log == ["finally"]

    def test_unreachable_tasklet_with_c_state_is_killed(self):
        log = []

        def victim():
            def key(x):
                stackless.schedule_remove()
                return x
            try:
                sorted([2, 1], key=key)
            finally:
                log.append("finally")

        t = stackless.tasklet(victim)()
        t.run()
        assert t.nesting_level > 0
        del t
        gc.collect()
        assert log == ["finally"]

    def test_subclass_del_may_kill_itself(self):
        log = []

        class SelfCleaning(stackless.tasklet):
            def __del__(self):
                log.append("del alive=%s" % self.alive)
                self.kill()

        def body():
            try:
                stackless.schedule_remove()
            finally:
                log.append("finally")

        t = SelfCleaning(body)()
        stackless.run()
        del t
        gc.collect()
        assert log == ["del alive=True", "finally"]

    def test_subclass_del_may_defer_to_the_base_finaliser(self):
        log = []

        class Logged(stackless.tasklet):
            def __del__(self):
                log.append("subclass __del__")
                super().__del__()

        def body():
            try:
                stackless.schedule_remove(None)
            finally:
                log.append("finally")

        t = Logged(body)()
        t.run()
        del t
        gc.collect()
        assert log == ["subclass __del__", "finally"]

    def test_finaliser_inside_a_tasklet_kills_at_the_next_safe_point(self):
        log = []

        def victim():
            try:
                stackless.schedule_remove(None)
            finally:
                log.append("finally")

        def dropper():
            t = stackless.tasklet(victim)()
            t.run()
            del t  # finalised here, inside a tasklet: the kill waits
            log.append("dropped")
            stackless.schedule()
            log.append("after schedule")

        stackless.tasklet(dropper)()
        stackless.run()
        assert log == ["dropped", "finally", "after schedule"]

    def test_survivor_of_the_finaliser_is_dropped_without_crash(self):
        log = []

        def stubborn():
            while True:
                try:
                    stackless.schedule_remove()
                except TaskletExit:
                    log.append("refused")

        t = stackless.tasklet(stubborn)()
        t.run()
        ref = weakref.ref(t)
        del t
        gc.collect()
        assert ref() is None
        assert 1 <= len(log) <= 10

    def test_tasklet_referencing_itself_from_its_frame(self):
        log = []

        def body():
            me = stackless.current  # noqa: F841 (a cycle through the suspended frame)
            try:
                stackless.schedule_remove()
            finally:
                log.append("finally")

        t = stackless.tasklet(body)()
        t.run()
        ref = weakref.ref(t)
        del t
        gc.collect()
        assert log == ["finally"] and ref() is None


class TestExit:
    def test_leftovers_are_killed_after_atexit_in_creation_order(self):
        proc = run_python("""
            import atexit, stackless
            ch = stackless.channel()
            def victim(name):
                try:
                    ch.receive()
                finally:
                    print(name, "finally")
            def never():
                print("must not run")
            atexit.register(print, "atexit handler")
            for name in ("first", "second", "third"):
                stackless.tasklet(victim)(name)
            stackless.run()
            stackless.tasklet(never)()
            stackless.tasklet(never, ())
            print("last line")
        """)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines() == ["last line", "atexit handler", "first finally",
                                            "second finally", "third finally"]

    @pytest.mark.parametrize("status", [0, 7])
    def test_exit_with_100000_blocked_tasklets(self, status):
        proc = run_python("""
            import sys, stackless
            ch = stackless.channel()
            def inner():
                ch.receive()
            def outer():
                inner()
            for _ in range(100000):
                stackless.tasklet(outer)()
            stackless.run()
            print("blocked", -ch.balance)
            sys.exit(%d)
        """ % status, timeout=300)
        assert proc.returncode == status, proc.stderr[-2000:]
        assert proc.stdout == "blocked 100000\n"
        assert proc.stderr == ""

    def test_exit_inside_a_tasklet_with_c_state(self):
        proc = run_python("""
            import stackless
            ch = stackless.channel()
            def victim():
                def key(x):
                    ch.receive()
                    return x
                try:
                    sorted([2, 1], key=key)
                finally:
                    print("victim finally")
            stackless.tasklet(victim)()
            stackless.run()
            print("last line")
        """)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == "last line\nvictim finally\n"

    def test_uncaught_error_in_main_while_tasklets_are_suspended(self):
        proc = run_python("""
            import stackless
            ch = stackless.channel()
            stackless.tasklet(ch.receive)()
            stackless.run()
            raise KeyError("from main")
        """)
        assert proc.returncode == 1
        assert "KeyError: 'from main'" in proc.stderr
        assert "Fatal" not in proc.stderr and "Segmentation" not in proc.stderr

    def test_tasklet_refusing_to_die_at_exit(self):
        proc = run_python("""
            import stackless
            def stubborn():
                while True:
                    try:
                        stackless.schedule_remove()
                    except TaskletExit:
                        print("refused")
            t = stackless.tasklet(stubborn)()
            t.run()
            print("end")
        """)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("end\nrefused\n")

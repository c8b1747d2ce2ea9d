"""Exceptions between tasklets: uncaught errors, TaskletExit and SystemExit, the error handler,
kill/throw/raise_exception, and the bomb."""
import pickle
import sys
import traceback

import pytest

import stackless

from conftest import run_python


def bad(msg):
    raise ValueError(msg)


class TestUncaught:
    def test_error_reaches_main_out_of_run_and_the_queue_stays(self):
        log = []

        def good(name):
            log.append(name + "1")
            stackless.schedule()
            log.append(name + "2")

        g1 = stackless.tasklet(good)("G1")
        b = stackless.tasklet(bad)("B")
        g2 = stackless.tasklet(good)("G2")
        with pytest.raises(ValueError, match="B"):
            stackless.run()
        assert not b.alive and g1.scheduled and g2.scheduled and stackless.runcount == 3
        stackless.run()
        assert log == ["G11", "G21", "G12", "G22"]

    @pytest.mark.parametrize("how", ["schedule", "t.run", "switch", "schedule_remove"])
    def test_error_is_raised_where_main_waits(self, how):
        t = stackless.tasklet(bad, ("x",))
        with pytest.raises(ValueError):
            if how == "schedule":
                t.insert()
                stackless.schedule()
            elif how == "t.run":
                t.run()
            elif how == "switch":
                t.switch()
            else:
                t.insert()
                stackless.schedule_remove()
        assert stackless.main.scheduled

    def test_error_reaches_main_blocked_on_a_channel(self):
        ch = stackless.channel()

        def producer():
            ch.send(1)
            raise KeyError("producer died")

        stackless.tasklet(producer)()
        got = []
        with pytest.raises(KeyError):
            for item in ch:
                got.append(item)
        assert got == [1] and ch.balance == 0 and not stackless.main.blocked

    def test_error_goes_to_the_innermost_watchdog(self):
        log = []

        def outer():
            stackless.tasklet(bad)("inner")
            try:
                stackless.run()
            except ValueError as e:
                log.append(e.args)

        stackless.tasklet(outer)()
        assert stackless.run() is None
        assert log == [("inner",)]

    def test_traceback_of_the_delivered_error_shows_the_tasklet(self):
        stackless.tasklet(bad)("tb")
        with pytest.raises(ValueError) as info:
            stackless.run()
        names = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
        assert names[-1] == "bad"

    def test_taskletexit_is_swallowed(self):
        class MyExit(TaskletExit):
            pass

        ts = [stackless.tasklet(lambda e=e: (_ for _ in ()).throw(e("x")))() for e in (TaskletExit, MyExit)]
        assert stackless.run() is None
        assert not any(t.alive for t in ts)
        assert issubclass(TaskletExit, SystemExit) and not issubclass(TaskletExit, Exception)

    def test_system_exit_in_a_tasklet_reaches_main(self):
        proc = run_python("""
            import stackless, sys
            stackless.tasklet(sys.exit)(3)
            stackless.run()
            print("not reached")
        """)
        assert proc.returncode == 3 and proc.stdout == ""


class TestErrorHandler:
    def test_handler_runs_in_the_dying_tasklet_and_may_swallow(self):
        seen = []

        def handler(typ, val, tb):
            seen.append((typ, val.args, tb is not None, stackless.current is dying[0]))

        dying = []

        def body():
            dying.append(stackless.current)
            raise ValueError("swallowed")

        old = stackless.set_error_handler(handler)
        try:
            stackless.tasklet(body)()
            assert stackless.run() is None
        finally:
            assert stackless.set_error_handler(old) is handler
        assert seen == [(ValueError, ("swallowed",), True, True)]

    def test_handler_exception_replaces_the_error(self):
        def handler(typ, val, tb):
            raise KeyError("replaced")

        stackless.set_error_handler(handler)
        try:
            stackless.tasklet(bad)("x")
            with pytest.raises(KeyError, match="replaced"):
                stackless.run()
        finally:
            stackless.set_error_handler(None)


class TestKillAndThrow:
    def victim(self, log, mode, ch=None):
        def body():
            try:
                log.append("start")
                if mode == "block":
                    ch.receive()
                elif mode == "sched":
                    stackless.schedule()
                else:
                    stackless.schedule_remove()
                log.append("resumed")
            except TaskletExit:
                log.append("TaskletExit")
                raise
            finally:
                log.append("finally")
        return body

    @pytest.mark.parametrize("mode", ["block", "sched", "pause"])
    def test_kill_runs_finally(self, mode):
        log = []
        ch = stackless.channel()
        t = stackless.tasklet(self.victim(log, mode, ch))()
        t.run()
        assert t.kill() is None
        assert log == ["start", "TaskletExit", "finally"]
        assert not t.alive and ch.balance == 0 and stackless.runcount == 1

    def test_pending_kill(self):
        log = []
        t = stackless.tasklet(self.victim(log, "pause"))()
        t.run()
        assert t.kill(pending=True) is None
        assert t.alive and t.scheduled and log == ["start"]
        stackless.run()
        assert log == ["start", "TaskletExit", "finally"]

    def test_kill_of_unstarted_new_and_dead_tasklets(self):
        log = []
        u = stackless.tasklet(log.append)("never")
        assert u.kill() is None and not u.alive and log == []
        assert stackless.tasklet().kill() is None
        d = stackless.tasklet(lambda: None)()
        stackless.run()
        assert d.kill() is None

    def test_kill_current_raises_here(self):
        with pytest.raises(TaskletExit):
            stackless.current.kill()

    def test_victim_may_survive(self):
        def survivor():
            try:
                stackless.schedule_remove()
            except TaskletExit:
                pass
            stackless.schedule_remove()

        v = stackless.tasklet(survivor)()
        v.run()
        v.kill()
        assert v.alive and v.paused
        v.kill()
        assert not v.alive

    def test_throw_semantics_and_traceback(self):
        caught = []

        def target():
            while True:
                try:
                    stackless.schedule_remove()
                    return
                except Exception as e:
                    caught.append((type(e), e.args))

        t = stackless.tasklet(target)()
        t.run()
        t.throw(ValueError)
        t.throw(ValueError, "v")
        t.throw(ValueError, (1, 2))
        t.throw(KeyError("k"))
        t.throw(exc=LookupError, val="kw")
        assert t.throw(OSError, pending=True) is None
        assert caught[-1] != (OSError, ())
        stackless.run()
        assert caught == [(ValueError, ()), (ValueError, ("v",)), (ValueError, (1, 2)),
                          (KeyError, ("k",)), (LookupError, ("kw",)), (OSError, ())]
        t.kill()

    def test_throw_into_unstarted_tasklet_comes_back(self):
        log = []
        u = stackless.tasklet(log.append)("never")
        with pytest.raises(KeyError):
            u.throw(KeyError("unstarted"))
        assert log == [] and not u.alive

    def test_throw_into_blocked_unblocks(self):
        ch = stackless.channel()
        log = []

        def blocked():
            try:
                ch.receive()
            except RuntimeError as e:
                log.append(e.args)

        r = stackless.tasklet(blocked)()
        stackless.run()
        r.throw(RuntimeError("wake"))
        assert log == [("wake",)] and ch.balance == 0

    def test_raise_exception_instantiates_in_the_target(self):
        caught = []

        def target():
            for _ in range(2):
                try:
                    stackless.schedule_remove()
                except Exception as e:
                    caught.append((type(e), e.args))

        class Custom(Exception):
            def __init__(self, a, b):
                Exception.__init__(self, a + b)

        t = stackless.tasklet(target)()
        t.run()
        t.raise_exception(LookupError, (1, 2))
        t.raise_exception(Custom, 20, 22)
        assert caught == [(LookupError, ((1, 2),)), (Custom, (42,))]

    def test_return_value_is_the_callers_tempval(self):
        m = stackless.main

        def setter():
            m.tempval = "from T"
            stackless.schedule()

        t = stackless.tasklet(setter)()
        assert t.run() == "from T"
        stackless.run()


class TestBomb:
    def test_bomb_holds_and_unpacks(self):
        assert (stackless.bomb().type, stackless.bomb().value) == (None, None)
        try:
            raise KeyError("k")
        except KeyError:
            b = stackless.bomb(sys.exc_info())
        assert b.type is KeyError and b.value.args == ("k",) and b.traceback is not None
        with pytest.raises(AttributeError):
            b.type = 1

    def test_bomb_pickles(self):
        b = pickle.loads(pickle.dumps(stackless.bomb(ValueError, ValueError("p"))))
        assert b.type is ValueError and b.value.args == ("p",)

    def test_bomb_in_tempval_explodes_on_resume(self):
        caught = []

        def sleeper():
            try:
                stackless.schedule_remove()
            except IndexError as e:
                caught.append(e.args)

        t = stackless.tasklet(sleeper)()
        t.run()
        t.tempval = stackless.bomb(IndexError, "via tempval")
        t.run()
        assert caught == [("via tempval",)]

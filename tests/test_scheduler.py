"""The scheduler: run-queue order, schedule/schedule_remove, run() and watchdogs, t.run()/
t.switch(), insert/remove, deadlock and revival, switch_trap, atomic, schedule callback, and
the C-stack switching underneath (deep recursion, C callbacks, generators, tracing)."""
import sys

import pytest

import stackless


def queue():
    out, t = [], stackless.main
    while True:
        out.append(t)
        t = t.next
        if t is stackless.main:
            return out


class TestRunQueue:
    def test_round_robin_order_and_runcount(self):
        log = []

        def worker(name, rounds):
            for i in range(rounds):
                log.append((name, i, stackless.runcount))
                stackless.schedule()

        for name, rounds in (("A", 3), ("B", 1), ("C", 2)):
            stackless.tasklet(worker)(name, rounds)
        assert stackless.runcount == 4
        assert stackless.run() is None
        assert log == [("A", 0, 3), ("B", 0, 3), ("C", 0, 3), ("A", 1, 3), ("C", 1, 2), ("A", 2, 2)]
        assert stackless.runcount == 1

    def test_insert_appends_and_remove_unlinks(self):
        ts = [stackless.tasklet(lambda: None)() for _ in range(3)]
        assert queue() == [stackless.main] + ts
        assert ts[0].remove() is ts[0] and ts[0].paused
        assert ts[0].next is None and ts[0].prev is None
        assert ts[0].insert() is ts[0]
        assert queue() == [stackless.main, ts[1], ts[2], ts[0]]
        assert ts[1].insert() is ts[1]  # already scheduled: keeps its place
        assert queue() == [stackless.main, ts[1], ts[2], ts[0]]
        assert stackless.main.prev is ts[0]
        stackless.run()

    def test_schedule_returns_the_retval_via_tempval(self):
        seen = []

        def body():
            seen.append(stackless.schedule() is stackless.current)
            seen.append(stackless.schedule(42))
            seen.append(stackless.schedule(retval="kw"))

        t = stackless.tasklet(body)()
        t.run()  # body starts, yields
        t.run()  # schedule() returned the caller itself; then schedule(42) yields
        assert t.tempval == 42
        t.tempval = "overwritten"
        t.run()  # schedule(42) returns what someone put in tempval meanwhile
        t.run()
        assert seen == [True, "overwritten", "kw"] and not t.alive
        assert stackless.schedule(7) == 7  # alone: no switch
        assert stackless.schedule_remove("x") == "x" and stackless.main.scheduled

    def test_schedule_remove_pauses(self):
        log = []

        def body():
            log.append(stackless.schedule_remove() is stackless.current)

        t = stackless.tasklet(body)()
        stackless.run()
        assert t.paused and t.tempval is t
        t.insert()
        stackless.run()
        assert log == [True] and not t.alive

    def test_tasklets_created_during_run_are_appended(self):
        log = []

        def spawner():
            stackless.tasklet(log.append)("late")
            log.append("spawner")

        stackless.tasklet(spawner)()
        stackless.run()
        assert log == ["spawner", "late"]


class TestRunAndSwitch:
    def test_run_switches_now_and_caller_keeps_its_place(self):
        log = []

        def w(name):
            log.append(name + "1")
            stackless.schedule()
            log.append(name + "2")

        a, b, c = (stackless.tasklet(w)(n) for n in "ABC")
        assert c.run() is None
        assert log == ["C1"]
        stackless.schedule()
        assert log == ["C1", "A1", "B1", "C2"]
        stackless.run()
        assert log[-2:] == ["A2", "B2"]

    def test_switch_pauses_the_caller(self):
        seen = {}

        def body():
            m = stackless.main
            seen["main"] = (m.paused, m.scheduled)

        t = stackless.tasklet(body, ())
        assert t.switch() is None
        assert seen["main"] == (True, False)
        assert stackless.main.scheduled

    def test_running_oneself_is_a_noop(self):
        assert stackless.main.run() is None
        assert stackless.main.switch() is None
        assert stackless.runcount == 1

    def test_nested_run_revives_the_innermost_watchdog_first(self):
        log = []

        def worker(name):
            log.append(name + " start")
            stackless.schedule()
            log.append(name + " end")

        def outer():
            stackless.tasklet(worker)("I")
            log.append("nested -> %r" % stackless.run())
            log.append("main scheduled %s" % stackless.main.scheduled)

        stackless.tasklet(outer)()
        stackless.tasklet(worker)("X")
        assert stackless.run() is None
        assert log == ["X start", "I start", "X end", "I end", "nested -> None",
                       "main scheduled False"]

    def test_main_run_from_inner_requeues_inner_watchdogs(self):
        log = []

        def jumper():
            log.append("J: main.run() -> %r" % stackless.main.run())

        def outer():
            stackless.tasklet(jumper)()
            log.append("P: nested -> %r" % stackless.run())

        p = stackless.tasklet(outer)()
        assert stackless.run() is None
        assert stackless.runcount == 3 and p.scheduled
        stackless.run()
        assert log == ["J: main.run() -> None", "P: nested -> None"]


class TestBlockingAndDeadlock:
    def test_last_runnable_blocking_revives_main(self):
        ch = stackless.channel()
        t = stackless.tasklet(ch.receive)()
        assert stackless.run() is None
        assert t.blocked and ch.balance == -1
        ch.send(None)

    def test_main_alone_cannot_block(self):
        ch = stackless.channel()
        with pytest.raises(RuntimeError, match="Deadlock: the last runnable tasklet cannot be blocked."):
            ch.receive()
        assert ch.balance == 0 and stackless.main.scheduled and not stackless.main.blocked

    def test_tasklet_cannot_block_while_main_is_blocked(self):
        a, b = stackless.channel(), stackless.channel()
        errors = []

        def body():
            for op in (b.receive, lambda: b.send(1), stackless.schedule_remove):
                try:
                    op()
                except RuntimeError as e:
                    errors.append(str(e))
            a.send("done")

        stackless.tasklet(body)()
        assert a.receive() == "done"
        stackless.run()
        assert errors == ["Deadlock: the last runnable tasklet cannot be blocked."] * 3

    @pytest.mark.parametrize("op,text", [("receive", "receiving without a sender"),
                                         ("send", "sending without a receiver")])
    def test_main_blocked_when_the_last_tasklet_ends(self, op, text):
        ch = stackless.channel()
        stackless.tasklet(lambda: None)()
        with pytest.raises(RuntimeError, match="the main tasklet is " + text):
            ch.receive() if op == "receive" else ch.send(1)
        assert ch.balance == 0 and not stackless.main.blocked

    def test_block_trap(self):
        ch = stackless.channel()
        stackless.main.block_trap = True
        try:
            with pytest.raises(RuntimeError, match="this tasklet does not like to be blocked."):
                ch.receive()
            ch.close()
            with pytest.raises(RuntimeError, match="does not like to be blocked"):
                ch.send(1)  # checked before closing
            assert stackless.schedule("s") == "s"  # not a channel operation
        finally:
            stackless.main.block_trap = False


class TestSwitchTrapAndAtomic:
    def test_switch_trap_refuses_switches_and_keeps_state(self):
        ch = stackless.channel()
        t = stackless.tasklet(lambda: None)()
        stackless.switch_trap(1)
        try:
            for op in (stackless.schedule, stackless.schedule_remove, stackless.run, t.run,
                       t.kill, lambda: t.throw(KeyError), ch.receive):
                with pytest.raises(RuntimeError, match="^switch_trap$"):
                    op()
            assert t.scheduled and stackless.runcount == 2 and ch.balance == 0
            stackless.main.run()  # no switch: allowed
            t.throw(KeyError("pending"), pending=True)  # pending: allowed
        finally:
            assert stackless.switch_trap(-1) == 1
        with pytest.raises(KeyError):
            stackless.run()

    def test_atomic_context_manager_restores_and_nests(self):
        cur = stackless.getcurrent
        a = stackless.atomic()
        with a as entered:
            assert entered is None and cur().atomic
            with a:
                assert cur().atomic
            assert cur().atomic
        assert not cur().atomic
        with pytest.raises(KeyError):
            with stackless.atomic():
                raise KeyError
        assert not cur().atomic

    def test_atomic_does_not_stop_explicit_switches(self):
        ch = stackless.channel()
        log = []

        def atomic_worker():
            with stackless.atomic():
                stackless.schedule()
                log.append(ch.receive())
                log.append(stackless.current.atomic)

        stackless.tasklet(atomic_worker)()
        stackless.run()
        ch.send("x")
        assert log == ["x", True]


class TestScheduleCallback:
    def test_callback_sees_every_real_switch(self):
        names = {stackless.main: "main"}
        log = []

        def cb(prev, nxt):
            log.append((names.get(prev), names.get(nxt)))

        def y():
            stackless.schedule()

        for n in "AB":
            names[stackless.tasklet(y)()] = n
        assert stackless.set_schedule_callback(cb) is None
        try:
            stackless.run()
            stackless.schedule()  # alone: no switch, no callback
        finally:
            assert stackless.set_schedule_callback(None) is cb
        assert log == [("main", "A"), ("A", "B"), ("B", "A"), ("A", "B"), ("B", "main")]

    def test_switching_inside_the_callback_is_refused(self):
        errors = []

        def cb(prev, nxt):
            for op in (stackless.schedule, lambda: stackless.channel().send(1)):
                try:
                    op()
                except RuntimeError as e:
                    errors.append(str(e))

        stackless.tasklet(lambda: None)()
        stackless.set_schedule_callback(cb)
        try:
            stackless.run()
        finally:
            stackless.set_schedule_callback(None)
        assert errors and all("callback" in e for e in errors)
        assert stackless.set_schedule_callback(None) is None


class TestStackSwitching:
    def test_recursion_through_tasklets_beyond_the_recursion_limit(self):
        def call(f, *args):
            ch = stackless.channel()
            stackless.tasklet(lambda: ch.send(f(*args)))()
            return ch.receive()

        def factorial(n):
            return 1 if n <= 1 else n * call(factorial, n - 1)

        depth = sys.getrecursionlimit() * 3
        import math
        assert factorial(depth) == math.factorial(depth)
        stackless.run()  # the senders, left runnable by each hand-over, end

    def test_each_tasklet_gets_the_full_recursion_limit(self):
        def rec(n):
            return 0 if n == 0 else 1 + rec(n - 1)

        limit = sys.getrecursionlimit()
        results = []
        for _ in range(3):
            stackless.tasklet(lambda: results.append(rec(limit - 50)))()
        stackless.run()
        assert results == [limit - 50] * 3

        def too_deep():
            try:
                rec(limit * 2)
            except RecursionError:
                results.append("RecursionError")

        stackless.tasklet(too_deep)()
        stackless.run()
        assert results[-1] == "RecursionError"

    def test_switching_inside_c_callbacks(self):
        ch = stackless.channel()

        def key(x):
            ch.send(x)  # blocks inside sorted(): C frames stay on this tasklet's stack
            return -x

        result = []
        stackless.tasklet(lambda: result.append(sorted([1, 2, 3], key=key)))()
        got = [ch.receive() for _ in range(3)]
        stackless.run()
        assert sorted(got) == [1, 2, 3] and result == [[3, 2, 1]]

    def test_generators_and_coroutines_across_switches(self):
        def gen():
            for i in range(3):
                stackless.schedule()
                yield i

        async def coro():
            stackless.schedule()
            return "done"

        out = []

        def body():
            out.extend(gen())
            c = coro()
            try:
                c.send(None)
            except StopIteration as e:
                out.append(e.value)

        stackless.tasklet(body)()
        stackless.tasklet(lambda: [stackless.schedule() for _ in range(5)])()
        stackless.run()
        assert out == [0, 1, 2, "done"]

    def test_exception_state_is_per_tasklet(self):
        seen = []

        def worker(name):
            try:
                raise ValueError(name)
            except ValueError:
                stackless.schedule()
                seen.append((name, sys.exc_info()[1].args[0]))
            seen.append((name, sys.exc_info()[0]))

        for n in "AB":
            stackless.tasklet(worker)(n)
        try:
            raise KeyError("main")
        except KeyError:
            stackless.run()
            seen.append(("main", sys.exc_info()[1].args[0]))
        assert seen == [("A", "A"), ("A", None), ("B", "B"), ("B", None), ("main", "main")]

    def test_contextvars_are_per_tasklet_and_copied_at_creation(self):
        import contextvars
        var = contextvars.ContextVar("var", default="default")
        seen = []

        def body(name):
            seen.append((name, var.get()))
            var.set(name)
            stackless.schedule()
            seen.append((name, var.get()))

        token = var.set("main")
        try:
            stackless.tasklet(body)("A")
            stackless.tasklet(body)("B")
            stackless.run()
            assert var.get() == "main"
        finally:
            var.reset(token)
        assert seen == [("A", "main"), ("B", "main"), ("A", "A"), ("B", "B")]

    def test_tracing_follows_the_tasklet_that_set_it(self):
        calls = []

        def tracer(frame, event, arg):
            if event == "call":
                calls.append(frame.f_code.co_name)
            return None

        def untraced_worker():
            stackless.schedule()

        def after_run():
            pass

        stackless.tasklet(untraced_worker)()
        sys.settrace(tracer)
        try:
            stackless.run()      # the worker starts without the main tasklet's tracer
            after_run()          # and the main tasklet has it back afterwards
            assert sys.gettrace() is tracer
        finally:
            sys.settrace(None)
        assert "untraced_worker" not in calls and "after_run" in calls

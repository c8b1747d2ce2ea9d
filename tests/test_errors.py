"""Every row of the spec's error index (§10) and the argument errors of §4-§6: misuse raises the
specified Python exception with the exact message and leaves the state unchanged."""
import pytest

import stackless


def f(*args):
    pass


@pytest.fixture
def blocked():
    ch = stackless.channel()
    t = stackless.tasklet(ch.receive)()
    stackless.run()
    yield t, ch
    t.kill()


@pytest.fixture
def dead():
    t = stackless.tasklet(f)()
    stackless.run()
    return t


class TestErrorIndex:
    def test_block_trap(self):
        ch = stackless.channel()
        stackless.main.block_trap = True
        try:
            with pytest.raises(RuntimeError) as e:
                ch.receive()
        finally:
            stackless.main.block_trap = False
        assert str(e.value) == "this tasklet does not like to be blocked."

    def test_closed_channel(self):
        ch = stackless.channel()
        ch.close()
        for op in (ch.receive, lambda: ch.send(1), lambda: ch.send_exception(KeyError),
                   lambda: ch.send_throw(KeyError), lambda: ch.send_sequence([1])):
            with pytest.raises(ValueError) as e:
                op()
            assert str(e.value) == "Send/receive operation on a closed channel"

    def test_deadlock(self):
        ch = stackless.channel()
        for op in (ch.receive, lambda: ch.send(1), lambda: next(ch)):
            with pytest.raises(RuntimeError) as e:
                op()
            assert str(e.value) == "Deadlock: the last runnable tasklet cannot be blocked."
        assert ch.balance == 0 and stackless.main.scheduled

    @pytest.mark.parametrize("op,text", [
        ("receive", "the main tasklet is receiving without a sender available."),
        ("send", "the main tasklet is sending without a receiver available."),
    ])
    def test_last_tasklet_ends_while_main_blocked(self, op, text):
        ch = stackless.channel()
        stackless.tasklet(f)()
        with pytest.raises(RuntimeError) as e:
            getattr(ch, op)(*(() if op == "receive" else (1,)))
        assert str(e.value) == text

    def test_switch_trap(self):
        stackless.tasklet(f)()
        stackless.switch_trap(1)
        try:
            with pytest.raises(RuntimeError) as e:
                stackless.schedule()
        finally:
            stackless.switch_trap(-1)
        assert str(e.value) == "switch_trap"
        stackless.run()

    def test_channel_action_inside_callbacks(self):
        errors = []

        def cb(*args):
            try:
                stackless.channel().send(1)
            except RuntimeError as e:
                errors.append(str(e))

        for setter in (stackless.set_channel_callback, stackless.set_schedule_callback):
            setter(cb)
            try:
                ch = stackless.channel()
                stackless.tasklet(ch.send)(1)
                ch.receive()
                stackless.run()
            finally:
                setter(None)
        assert errors and set(errors) == {"Recursive channel call due to callbacks!"}

    @pytest.mark.parametrize("op", ["run", "insert", "switch"])
    def test_run_a_blocked_tasklet(self, blocked, op):
        t, ch = blocked
        with pytest.raises(RuntimeError) as e:
            getattr(t, op)()
        assert str(e.value) == "You cannot run a blocked tasklet"
        assert t.blocked and ch.balance == -1

    @pytest.mark.parametrize("kind", ["dead", "bound", "new"])
    @pytest.mark.parametrize("op", ["run", "insert", "switch"])
    def test_run_a_dead_or_unbound_tasklet(self, dead, kind, op):
        t = {"dead": dead, "bound": stackless.tasklet(f), "new": stackless.tasklet()}[kind]
        with pytest.raises(RuntimeError) as e:
            getattr(t, op)()
        assert str(e.value) == "You cannot run an unbound(dead) tasklet"
        assert t.remove() is t  # removing is fine

    @pytest.mark.parametrize("kind", ["dead", "bound", "new"])
    def test_throw_into_a_dead_tasklet(self, dead, kind):
        t = {"dead": dead, "bound": stackless.tasklet(f), "new": stackless.tasklet()}[kind]
        for op in (lambda: t.throw(ValueError), lambda: t.throw(ValueError, pending=True),
                   lambda: t.raise_exception(ValueError, 1), lambda: t.throw(SystemExit)):
            with pytest.raises(RuntimeError) as e:
                op()
            assert str(e.value) == "You cannot throw to a dead tasklet"
        # TaskletExit into a tasklet that is not alive is a successful no-op
        assert t.throw(TaskletExit) is None and t.kill() is None and t.kill(pending=True) is None

    def test_remove_blocked_and_current(self, blocked):
        t, _ = blocked
        with pytest.raises(RuntimeError) as e:
            t.remove()
        assert str(e.value) == "You cannot remove a blocked tasklet."
        with pytest.raises(RuntimeError) as e:
            stackless.current.remove()
        assert str(e.value) == "The current tasklet cannot be removed."


class TestBindAndSetup:
    def test_messages_and_precedence(self, blocked):
        m = stackless.main
        cases = [
            (lambda: stackless.tasklet(42), TypeError, "tasklet function must be a callable or None"),
            (lambda: m.bind(42), TypeError, "tasklet function must be a callable or None"),
            (lambda: m.bind(f), RuntimeError, "can't (re)bind the current tasklet"),
            (lambda: stackless.tasklet(f, [1]), TypeError, "args must be a tuple"),
            (lambda: stackless.tasklet(f, (), [1]), TypeError, "kwargs must be a dict"),
            (lambda: blocked[0].bind(f), RuntimeError, "tasklet is scheduled"),
            (blocked[0].setup, RuntimeError, "tasklet is alive"),
            (lambda: stackless.tasklet().bind(args=(1,)), RuntimeError,
             "the tasklet was not bound to a function"),
            (lambda: stackless.tasklet()(), RuntimeError, "the tasklet was not bound to a function"),
            (stackless.tasklet(f, (1,)).setup, RuntimeError, "tasklet is alive"),
        ]
        for op, exc, text in cases:
            with pytest.raises(exc) as e:
                op()
            assert str(e.value) == text
        r = stackless.tasklet(f)()
        with pytest.raises(RuntimeError, match="^tasklet is scheduled$"):
            r.bind(None)
        stackless.run()

    def test_paused_main_cannot_be_unbound(self):
        errors = []

        def inside():
            for op in (lambda: stackless.main.bind(None), lambda: stackless.main.bind(f)):
                try:
                    op()
                except RuntimeError as e:
                    errors.append(str(e))
            stackless.main.insert()

        stackless.tasklet(inside)()
        stackless.schedule_remove()
        assert errors == ["can't unbind the main tasklet"] * 2


class TestArgumentErrors:
    @pytest.mark.parametrize("value", ["a", 1.0, None])
    def test_flag_setters(self, value):
        t = stackless.tasklet()
        with pytest.raises(TypeError, match="^set_atomic needs exactly one bool or integer$"):
            t.set_atomic(value)
        with pytest.raises(TypeError, match="^set_ignore_nesting needs exactly one bool or integer$"):
            t.set_ignore_nesting(value)
        with pytest.raises(TypeError, match="^block_trap must be set to a bool or integer$"):
            t.block_trap = value
        assert (t.atomic, t.ignore_nesting, t.block_trap) == (False, False, False)

    @pytest.mark.parametrize("call", [
        lambda t, ch: t.set_atomic(),
        lambda t, ch: t.set_atomic(flag=True),
        lambda t, ch: t.kill(True, 1),
        lambda t, ch: t.run(1),
        lambda t, ch: t.throw(),
        lambda t, ch: stackless.getcurrent(1),
        lambda t, ch: stackless.getmain(1),
        lambda t, ch: stackless.getruncount(1),
        lambda t, ch: stackless.schedule(1, 2),
        lambda t, ch: stackless.schedule_remove(foo=1),
        lambda t, ch: stackless.run(1.5),
        lambda t, ch: stackless.run(timeout=0.5),
        lambda t, ch: stackless.run("a"),
        lambda t, ch: ch.send(),
        lambda t, ch: ch.receive(1),
        lambda t, ch: ch.close(1),
        lambda t, ch: ch.send_sequence(),
        lambda t, ch: ch.send_sequence(5),
        lambda t, ch: ch.send_throw(),
        lambda t, ch: ch.send_throw(ValueError, None, None, None),
        lambda t, ch: stackless.enable_softswitch(),
        lambda t, ch: stackless.switch_trap("a"),
        lambda t, ch: stackless.get_thread_info(thread_id=-1),
        lambda t, ch: stackless.tasklet().bind_thread("a"),
    ])
    def test_type_errors(self, call):
        with pytest.raises(TypeError):
            call(stackless.tasklet(), stackless.channel())
        assert stackless.runcount == 1

    @pytest.mark.parametrize("args,text", [
        ((ValueError, None, 5), "third argument must be a traceback object"),
        ((ValueError("x"), "y"), "instance exception may not have a separate value"),
        ((5,), "exceptions must be classes, or instances, not int"),
        (("abc",), "exceptions must be classes, or instances, not str"),
        ((None,), "exceptions must be classes, or instances, not NoneType"),
        ((int,), "exceptions must be classes, or instances, not type"),
    ])
    def test_throw_and_send_throw_validation(self, args, text):
        t = stackless.tasklet(stackless.schedule_remove)()
        t.run()
        ch = stackless.channel()
        for op in (t.throw, ch.send_throw):
            with pytest.raises(TypeError) as e:
                op(*args)
            assert str(e.value) == text
        assert t.paused and ch.balance == 0
        t.kill()

    @pytest.mark.parametrize("arg", [ValueError("x"), 5, int])
    def test_raise_exception_and_send_exception_need_a_class(self, arg):
        t = stackless.tasklet()
        ch = stackless.channel()
        with pytest.raises(TypeError, match="^tasklet.raise_exception needs Exception or string "
                                            "subclass as first parameter$"):
            t.raise_exception(arg)
        with pytest.raises(TypeError, match="^channel.send_exception needs Exception or string "
                                            "subclass as first parameter$"):
            ch.send_exception(arg)
        with pytest.raises(TypeError, match=r"^raise_exception\(\) takes at least 1 argument$"):
            t.raise_exception()
        with pytest.raises(TypeError, match=r"^send_exception\(\) takes at least 1 argument$"):
            ch.send_exception()

    def test_callbacks_must_be_callable(self):
        with pytest.raises(TypeError, match="^channel callback must be callable$"):
            stackless.set_channel_callback(42)
        with pytest.raises(TypeError, match="^schedule callback must be callable$"):
            stackless.set_schedule_callback("str")
        assert stackless.get_channel_callback() is None

    def test_pickle_flags(self):
        for op in (lambda: stackless.pickle_flags(8), lambda: stackless.pickle_flags(-2),
                   lambda: stackless.pickle_flags_default(8)):
            with pytest.raises(ValueError, match="^you must not set an undefined pickle-flag$"):
                op()
        assert stackless.pickle_flags(8, 7) == 0
        assert stackless.pickle_flags() == 0 and stackless.pickle_flags_default() == 0

    def test_thread_lookups(self):
        with pytest.raises(RuntimeError, match="^Thread id not found$"):
            stackless.get_thread_info(987654321)
        with pytest.raises(OverflowError):
            stackless.get_thread_info(-2)
        with pytest.raises(ValueError, match="^bad thread$"):
            stackless.tasklet().bind_thread(987654321)
        with pytest.raises(OverflowError):
            stackless.tasklet().bind_thread(-2)
        r = stackless.tasklet(f)()
        assert r.bind_thread() is None
        with pytest.raises(RuntimeError, match=r"^can't \(re\)bind a runnable tasklet$"):
            r.bind_thread(stackless.main.thread_id)
        stackless.run()

    def test_trace_functions_of_dead_tasklets(self):
        t = stackless.tasklet()
        with pytest.raises(RuntimeError, match="^tasklet is not alive$"):
            t.trace_function = print
        with pytest.raises(RuntimeError, match="^tasklet is not alive$"):
            t.profile_function = print
        t.trace_function = None
        t.profile_function = None

    def test_preemption_outside_the_main_thread_is_refused_clearly(self):
        import threading
        seen = []

        def helper():
            stackless.tasklet(f)()
            try:
                stackless.run(timeout=100)
            except RuntimeError as e:
                seen.append((str(e), stackless.runcount))
            stackless.run()

        th = threading.Thread(target=helper)
        th.start()
        th.join()
        assert seen == [("run(timeout) can preempt tasklets only in the main thread", 2)]

"""Programs that once crashed the interpreter (found by adversarial testing). Each runs in a
fresh interpreter, so a regression fails its test instead of the whole run."""
import pytest

from conftest import run_python


def ok(source, *, expect=None, timeout=120):
    proc = run_python(source, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    if expect is not None:
        assert proc.stdout == expect
    return proc


def test_collection_inside_a_tasklet_kills_after_it_ends():
    # The collector's working lists live on its C stack; a tasklet killed while they do
    # would overwrite them. Kills wait for the end of the collection instead.
    ok("""
        import gc, stackless
        log = []
        def victim(box):
            a = [box]; b = {"x": box}  # noqa
            try:
                stackless.schedule_remove()
            finally:
                log.append("finally")
        def make_garbage(n):
            for i in range(n):
                box = [[] for _ in range(i % 5)]
                t = stackless.tasklet(victim)(box)
                box.append(t)          # cycle: t -> frame -> box -> t
                t.run()
        def collector():
            for i in range(30):
                make_garbage(i % 7 + 1)
                gc.collect()
        gc.disable()
        stackless.tasklet(collector)()
        stackless.run()
        print(len(log))
    """, expect="%d\n" % sum(i % 7 + 1 for i in range(30)))


def test_collection_in_main_below_the_stack_base():
    ok("""
        import gc, stackless
        log = []
        def victim(box):
            try:
                stackless.schedule_remove()
            finally:
                log.append(1)
        stackless.tasklet(lambda: None)()
        stackless.run()
        def deeper():
            for i in range(20):
                box = []
                t = stackless.tasklet(victim)(box)
                box.append(t)
                t.run()
                del t, box
                gc.collect()
        def nest(n):
            return deeper() if n == 0 else sorted([1], key=lambda v: nest(n - 1) or v)
        nest(200)    # C frames: far below where the first switch happened
        print(len(log))
    """, expect="20\n")


def test_switching_is_refused_during_a_collection_in_a_tasklet():
    proc = ok("""
        import gc, sys, stackless
        errors = []
        class Switcher:
            def __del__(self):
                try:
                    stackless.schedule()
                except RuntimeError as e:
                    errors.append(str(e))
        def body():
            for _ in range(3):
                a = Switcher(); a.self = a
                del a
                gc.collect()
        stackless.tasklet(body)()
        stackless.tasklet(lambda: None)()
        stackless.run()
        print(errors[0] if errors else "no error")
    """)
    assert "garbage collection" in proc.stdout


def test_tasklet_started_deep_in_c_recursion_gets_what_is_left():
    # 3.13's C recursion limit (10000) assumes the whole thread stack; a tasklet whose
    # stack starts deep in main's C recursion must get a RecursionError, not a segfault.
    ok("""
        import sys, stackless
        def nest(n, inner):
            for _ in range(n):
                inner = [inner]
            return inner
        def body():
            try:
                repr(nest(9000, None))
            except RecursionError:
                pass
        class Switcher:
            def __repr__(self):
                stackless.tasklet(body)()
                stackless.run()
                return "S"
        try:
            repr(nest(9000, Switcher()))
        except RecursionError:
            pass
        print("done")
    """, expect="done\n")


def test_main_saving_nothing_after_saving_a_lot():
    ok("""
        import stackless
        def nop():
            pass
        def deep(n):
            if n == 0:
                stackless.tasklet(nop)(); stackless.run()
            else:
                sorted([1], key=lambda v: deep(n - 1) or v)
        stackless.tasklet(nop)(); stackless.run()
        for _ in range(3):
            deep(40)
            stackless.tasklet(nop)(); stackless.run()
        print("survived")
    """, expect="survived\n")


def test_schedule_callback_cannot_revive_an_ending_tasklet():
    ok("""
        import stackless
        def cb(prev, next):
            if prev is not None and not prev.is_main and prev.alive:
                prev.insert()
        stackless.set_schedule_callback(cb)
        t = stackless.tasklet(lambda: None)()
        stackless.run()
        stackless.set_schedule_callback(None)
        stackless.run()
        print(t.alive, t.scheduled, stackless.runcount)
    """, expect="False False 1\n")


@pytest.mark.parametrize("keep_frame", [False, True])
def test_dropping_a_tasklet_suspended_inside_a_generator(keep_frame):
    ok("""
        import gc, sys, stackless
        keep = []
        def gen():
            for i in range(100):
                yield i
            if %r:
                keep.append(sys._getframe())   # a frame object outliving the tasklet
            stackless.schedule_remove()
            yield 1
        def f(g):
            for x in g:
                pass
        for i in range(10):
            g = gen()
            t = stackless.tasklet(f)(g)
            stackless.run()
            if t.nesting_level == 0:
                t.bind(None)       # drops the frames, the generator's among them
            else:
                t.kill()           # 3.11: the generator runs through C
            del g, t
            keep.clear()
        gc.collect()
        print(sys.getrefcount(gen.__code__) < 10, gen.__code__.co_name)
    """ % keep_frame, expect="True gen\n")


def test_tasklet_refusing_to_die_inside_a_generator_is_dropped():
    ok("""
        import gc, stackless
        def gen():
            for i in range(100):
                yield i
            while True:
                try:
                    stackless.schedule_remove()
                except TaskletExit:
                    pass
            yield
        def f():
            for x in gen():
                pass
        t = stackless.tasklet(f)()
        stackless.run()
        del t
        gc.collect()
        print("survived")
    """, expect="survived\n")


def test_a_call_that_did_not_switch_leaves_nothing_behind():
    # A schedule() that had nothing to switch to, then a block in `for x in ch` at the
    # same frame address: the GC and bind() must not use the stale call's stack top.
    ok("""
        import gc, stackless
        class Big: pass
        def g(*a): pass
        def a(): g(Big(), Big(), Big(), Big(), Big(), Big(), stackless.schedule())
        def b(ch):
            for x in ch:
                if x is None: g(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
        def body(ch): a(); b(ch)
        ch = stackless.channel()
        t = stackless.tasklet(body)(ch); stackless.run()
        junk = [[] for i in range(1000)]
        gc.collect(); del ch, t; gc.collect()
        t = stackless.tasklet(body)(stackless.channel()); stackless.run()
        t.kill()
        print("survived")
    """, expect="survived\n")


def test_tasklet_switched_away_while_starting():
    # Releasing the previous tasklet runs a weakref callback in the new one, which switches.
    ok("""
        import stackless, weakref
        main = stackless.getmain()
        def cb(r):
            main.switch()
        def short():
            pass
        t = stackless.tasklet(short)()
        r = weakref.ref(t, cb)
        del t
        n = stackless.tasklet(short)()
        stackless.run()
        print(n.alive, n.restorable)
        try:
            n.bind(None)
        except RuntimeError as e:
            print(e)
    """, expect="True False\ntasklet has C state on its stack\n")


def test_collection_in_a_tasklet_without_gc_callbacks():
    ok("""
        import gc, stackless
        gc.callbacks.clear()
        log = []
        def victim(box):
            try:
                stackless.schedule_remove()
            finally:
                log.append(1)
        def collector():
            for _ in range(20):
                box = []; t = stackless.tasklet(victim)(box); box.append(t); t.run()
                del t, box; gc.collect()
        stackless.tasklet(collector)(); stackless.run()
        print(len(log))
    """, expect="20\n")


def test_resuming_deeper_than_a_lowered_recursion_limit():
    ok("""
        import stackless, sys
        def g(n):
            return 0 if n == 0 else g(n - 1)
        caught = []
        def rec(n):
            if n == 0:
                stackless.schedule_remove()
                try:
                    g(10)
                except RecursionError as e:
                    caught[:] = [e]   # no call: 3.11 counts C calls in the same budget
                return
            rec(n - 1)
        t = stackless.tasklet(rec)(400); stackless.run()
        sys.setrecursionlimit(100)
        t.insert(); stackless.run()
        sys.setrecursionlimit(1000)
        print(type(caught[0]).__name__)
        print(t.alive)
    """, expect="RecursionError\nFalse\n")


def test_blocking_call_made_from_c_is_c_state():
    ok("""
        import contextvars, stackless
        lst = [3, 1, 2]
        t = stackless.tasklet(lambda: lst.sort(key=stackless.schedule_remove))()
        t.run()
        print(t.nesting_level, t.restorable)
        try:
            t.bind(None)
        except RuntimeError as e:
            print(e)
        t.kill()
        print(sorted(lst))
        ch = stackless.channel()
        u = stackless.tasklet(lambda: [x for x in ch])()   # FOR_ITER calls __next__ itself
        stackless.run()
        print(u.nesting_level)
        u.kill()
    """, expect="1 False\ntasklet has C state on its stack\n[1, 2, 3]\n0\n")


def test_taskletexit_from_the_error_handler_ends_the_tasklet_quietly():
    ok("""
        import stackless
        def handler(*exc):
            stackless.current.kill()
        stackless.set_error_handler(handler)
        stackless.tasklet(lambda: 1 / 0)()
        print(stackless.run())
    """, expect="None\n")


def no_crash(source, timeout=120):
    """The program may fail with a Python exception, but must not die of a signal."""
    proc = run_python(source, timeout=timeout)
    assert proc.returncode in (0, 1), (proc.returncode, proc.stderr[-3000:])
    assert "Fatal Python error" not in proc.stderr
    return proc


def test_finaliser_rebinding_the_tasklet_bind_is_dropping():
    ok("""
        import stackless
        class Hook:
            def __del__(self):
                T.bind(print, ("f runs",))
                T.insert()
        def body():
            h = Hook()
            stackless.schedule_remove()
        T = stackless.tasklet(body)()
        stackless.run()
        T.bind(None)          # drops body's frame: Hook.__del__ runs inside bind()
        print(T.alive, T.scheduled, stackless.runcount)
        stackless.run()
    """, expect="True True 2\nf runs\n")


def test_finaliser_inserting_a_pending_tasklet_bind_is_emptying():
    ok("""
        import stackless
        class Arg:
            def __del__(self):
                try:
                    T.insert()
                except RuntimeError as e:
                    print(e)
        T = stackless.tasklet(print, (Arg(),))
        T.bind(None)
        print(T.alive, T.scheduled, stackless.runcount)
        stackless.run()
    """, expect="You cannot run an unbound(dead) tasklet\nFalse False 1\n")


def test_schedule_callback_cannot_reuse_the_ending_tasklet():
    proc = ok("""
        import stackless
        def cb(prev, next):
            if prev is not None and not prev.is_main and not prev.alive:
                for op in (prev.insert, prev.setup):
                    try:
                        prev.tempval = print
                        op()
                        print("accepted?!")
                    except RuntimeError:
                        pass
        stackless.set_schedule_callback(cb)
        t = stackless.tasklet(lambda: None)()
        stackless.run()
        stackless.set_schedule_callback(None)
        stackless.run()
        print(stackless.runcount, t.alive, t.scheduled)
    """)
    assert proc.stdout == "1 False False\n"


def test_first_switch_deep_in_c_recursion_then_deep_recursion_in_a_tasklet():
    proc = no_crash("""
        import sys, stackless
        sys.setrecursionlimit(3000)
        def crec(n):
            return 0 if n == 0 else sorted([1], key=lambda v: crec(n - 1))[0]
        def deep():
            try:
                crec(10**6)
            except RecursionError:
                print("RecursionError")
        def at(n):
            if n == 0:
                stackless.tasklet(deep)(); stackless.run()
                return 0
            return sorted([1], key=lambda v: at(n - 1))[0]
        at(700)
        print("END")
    """)
    assert "RecursionError" in proc.stdout + proc.stderr


def test_switch_in_del_during_a_collection_with_gc_callbacks_cleared():
    proc = ok("""
        import gc, stackless
        gc.callbacks.clear()
        gc.disable()
        res = []; done = False
        class A:
            def __del__(self):
                res.append(self.b); self.b.a = None; self.b = None
                stackless.schedule()
        class B: pass
        def other():
            while not done:
                res.clear()
                stackless.schedule()
        def body():
            global done
            for _ in range(20):
                for i in range(5):
                    a = A(); b = B(); a.b = b; b.a = a
                del a, b
                gc.collect()
            done = True
        stackless.tasklet(body)(); stackless.tasklet(other)(); stackless.run()
        print("END")
    """)
    assert proc.stdout == "END\n"
    assert "cannot switch tasklets during a garbage collection" in proc.stderr


def test_a_tasklet_running_queued_kills_can_itself_be_killed():
    ok("""
        import stackless
        log = []
        def victim():
            try:
                stackless.schedule_remove(None)
            finally:
                log.append("victim cleanup")
                stackless.getmain().switch()
        def K():
            v = stackless.tasklet(victim)(); v.run()
            stackless.switch_trap(1)
            del v                          # unreachable: its kill is queued
            try:
                stackless.switch_trap(-1)  # the queued kill runs here
                log.append("K carried on?!")
            except TaskletExit:
                log.append("K got TaskletExit")
                raise
        k = stackless.tasklet(K)()
        k.run()
        k.kill()
        print(log, k.alive)
    """, expect="['victim cleanup', 'K got TaskletExit'] False\n")


def test_error_report_of_the_schedule_callback_cannot_switch():
    # The report of a failing schedule callback runs Python code (sys.unraisablehook) in
    # the middle of a switch; it must not switch away from a half-ended tasklet.
    proc = ok("""
        import stackless, sys
        seen = []
        def rebinder():
            seen[0].bind(lambda: print("the dead tasklet ran again"), ())
            seen[0].insert()
        def hook(u):
            print("reported:", type(u.exc_value).__name__)
            if not seen:
                seen.append(stackless.current)
                try:
                    stackless.tasklet(rebinder)().run()
                except RuntimeError as e:
                    print("refused:", e)
        sys.unraisablehook = hook
        def cb(prev, nxt):
            if prev is not None and prev is not stackless.main and not prev.alive:
                raise KeyError("cb")
        stackless.set_schedule_callback(cb)
        stackless.tasklet(lambda: None)()
        stackless.run()
        stackless.set_schedule_callback(None)
        print("END")
    """)
    assert proc.stdout == ("reported: KeyError\n"
                           "refused: cannot switch tasklets inside a schedule or channel "
                           "callback\nEND\n")


def test_result_of_the_schedule_callback_is_released_before_switching_is_allowed():
    proc = ok("""
        import stackless
        log = []
        class Result:
            def __del__(self):
                if stackless.current is not stackless.main and not log:
                    try:
                        stackless.tasklet(lambda: None)().run()
                        log.append("switched")
                    except RuntimeError as e:
                        log.append(str(e))
        stackless.set_schedule_callback(lambda prev, nxt: Result())
        stackless.tasklet(lambda: None)()
        stackless.run()
        stackless.set_schedule_callback(None)
        print(log)
    """)
    assert proc.stdout == "['cannot switch tasklets inside a schedule or channel callback']\n"


def test_collection_whose_start_our_hook_missed():
    # A one-shot gc callback placed before ours removes itself at "start"; CPython then
    # skips the next entry, our hook. The collection runs inside a tasklet: a __del__ must
    # still not switch while the collector's lists are on that tasklet's stack.
    proc = ok("""
        import gc, stackless
        keep = []
        def once(phase, info):
            gc.callbacks.remove(once)
        class Fin:
            def __del__(self):
                keep.append(self.y)
                stackless.schedule()
        def other(n=60):
            if n:
                return list(map(other, [n - 1]))
            stackless.schedule()
            for y in keep:
                y.clear()
            keep.clear()
            stackless.schedule()
        def collector():
            for i in range(20):
                f = Fin(); z = [f]; f.y = [z, [z], [z]]
            del f, z
            gc.callbacks.insert(0, once)
            gc.collect()
        gc.disable()
        stackless.tasklet(other)()
        stackless.tasklet(collector)()
        stackless.run()
        print("END")
    """)
    assert proc.stdout == "END\n"
    assert "cannot switch tasklets during a garbage collection" in proc.stderr


def test_hook_removed_during_a_collection_does_not_forbid_switching_later():
    ok("""
        import gc, stackless
        hooks = [cb for cb in gc.callbacks if "gc_callback" in repr(cb)]
        assert len(hooks) == 1
        class RemoveHook:
            def __del__(self):
                gc.callbacks.remove(hooks[0])
        def collector():
            x = RemoveHook(); x.self = x; del x
            gc.collect()                 # "stop" does not reach our hook any more
            gc.callbacks.append(hooks[0])
        stackless.tasklet(collector)(); stackless.run()
        log = []
        def worker(i):
            stackless.schedule()
            log.append(i)
        stackless.tasklet(worker)(1); stackless.tasklet(worker)(2)
        stackless.run()
        print(log)
    """, expect="[1, 2]\n")


def test_recursion_error_headroom_belongs_to_the_tasklet_that_overflowed():
    # CPython allows a few extra calls while it reports a RecursionError; a switch made in
    # that window (here: from an exception's __init__ while it is being normalised) must
    # not hand the allowance to another tasklet, whose recursion would then never stop.
    ok("""
        import stackless
        def deep(n=0):
            try:
                return deep(n + 1)
            except RecursionError:
                return n
        def victim():
            print("victim stopped at a RecursionError:", deep() > 100)
        class E(Exception):
            def __init__(self, *a):
                stackless.schedule()
        stackless.tasklet(victim)()
        try:
            stackless.current.throw(E)
        except E:
            print("main caught E")
    """, expect="victim stopped at a RecursionError: True\nmain caught E\n")


def test_kill_delivered_at_the_end_of_a_collection_is_raised_by_the_next_switch():
    # A queued kill runs when the collection stops, inside the collector's hook, where the
    # exception the victim's finally clause throws into main cannot be raised; main's next
    # scheduling operation raises it instead of losing it.
    ok("""
        import gc, stackless, sys
        gc.disable()
        def victim(box):
            try:
                stackless.schedule_remove()
            finally:
                stackless.main.throw(ValueError("from finally"))
        def make():
            box = []
            t = stackless.tasklet(victim)(box); box.append(t)
            t.run()
        make()
        def deep(n):
            if n == 0:
                gc.collect()
                try:
                    stackless.schedule()
                    print("schedule returned")
                except ValueError as e:
                    print("schedule raised", e)
                return 0
            return list(map(deep, [n - 1]))[0]
        sys.setrecursionlimit(5000)
        deep(400)
    """, expect="schedule raised from finally\n")


def test_exception_class_whose_init_recurses_deeply():
    # Thrown as a class, the exception is instantiated when it is raised; 3.11's lazy
    # normalisation would run __init__ with the recursion check relaxed (a fatal error
    # once it recursed to the limit).
    ok("""
        import stackless
        def deep(n=0):
            try:
                return deep(n + 1)
            except RecursionError:
                return n
        class E(Exception):
            def __init__(self, *args):
                super().__init__(*args)
                self.depth = deep()
        try:
            stackless.current.throw(E, "x")
        except E as e:
            print("caught", e.args, e.depth > 100)
    """, expect="caught ('x',) True\n")


def test_collector_counts_a_running_generators_locals_once():
    # A tasklet blocked inside a generator that is running: the generator and the tasklet
    # must not both report the generator's locals to the collector (3.14+: the frame's
    # stored stack pointer makes the generator report them), or it takes live objects for
    # garbage.
    ok("""
        import gc, stackless
        class Marker:
            def __init__(self):
                self.me = self            # collectable only through the collector
                self.value = "alive"
        def gen(ch):
            m = Marker()
            stack_item = [m]
            yield len(stack_item) + ch.receive()
            print(m.value, stack_item[0].value)
        def f(ch):
            for x in gen(ch):
                print("got", x)
        ch = stackless.channel()
        t = stackless.tasklet(f)(ch)
        stackless.run()
        print(t.blocked, len(gc.get_referents(t)) > 0)
        for i in range(3):
            gc.collect()
        ch.send(41)
        stackless.run()
        print(t.alive)
    """, expect="True True\ngot 42\nalive alive\nFalse\n")

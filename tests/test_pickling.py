"""Pickling tasklets that have started (spec section 8): frames, channels, validation."""
import copy
import os
import pickle
import sys

import pytest

import stackless
from stackless import _pickling

from conftest import ROOT, run_python

PROGRAMS = ROOT / "tests" / "pickle_programs.py"


def blocked(func, *args):
    """A tasklet running func that has blocked (on whatever channel func uses)."""
    t = stackless.tasklet(func)(*args)
    stackless.run()
    assert t.blocked
    return t


@pytest.mark.parametrize("case", ["handlers", "recurse", "calls", "nested_closure",
                                  "generator_loop", "channel_loop"])
def test_resumes_in_a_fresh_process_as_the_original_would(case, tmp_path):
    path = tmp_path / (case + ".pickle")
    original = run_python(None, "dump", case, path, script=PROGRAMS, cwd=tmp_path)
    assert original.returncode == 0, original.stderr
    restored = run_python(None, "load", case, path, script=PROGRAMS, cwd=tmp_path)
    assert restored.returncode == 0, restored.stderr
    assert restored.stdout == original.stdout
    assert restored.stdout.endswith("alive False\n")
    assert len(restored.stdout.splitlines()) > 2


def test_version_mismatch_names_both_versions():
    ch = stackless.channel()
    t = blocked(ch.receive)
    try:
        state = list(t.__reduce__()[2])
    finally:
        t.kill()
    # a started tasklet blocked directly in receive() has no Python frame of its own
    frames = state[3]
    assert frames == () or isinstance(frames[0], str)
    ch2 = stackless.channel()

    def body():
        ch2.receive()

    t = blocked(body)
    try:
        state = list(t.__reduce__()[2])
    finally:
        t.kill()
    frames = state[3]
    assert frames[0] == sys.implementation.cache_tag
    state[3] = ("cpython-399",) + frames[1:]
    with pytest.raises(ValueError, match="cpython-399.*" + sys.implementation.cache_tag):
        stackless.tasklet().__setstate__(tuple(state))


ch = stackless.channel()


def counter(n):
    seen = []
    for i in range(n):
        seen.append(ch.receive())
    return seen


def test_copy_and_deepcopy_run_on_their_own(log):
    t = blocked(collect_three)
    ch.send("a")
    c1, c2 = copy.copy(t), copy.deepcopy(t)
    t.kill()
    assert c1.alive and c2.alive and c1.paused and not c1.blocked and c1.restorable
    for c, value in ((c1, "b"), (c2, "c")):
        c.insert()
        stackless.run()
        ch.send(value)
        assert not c.alive
    assert log == [["a", None, "b"], ["a", None, "c"]]


def with_a_lambda():
    k = 5
    add = lambda x: x + k  # noqa: E731 (a local function that pickles by value)
    LOG.append(add(ch.receive() or 0))


def yields_a_lambda():
    k = 7
    add = lambda x: x + k  # noqa: E731
    yield add(0)
    yield add(1)


def test_copy_keeps_local_functions_callable(log):
    t = blocked(with_a_lambda)
    c = copy.copy(t)  # the state is not pickled: its stand-ins must not stay in the frame
    t.kill()
    c.insert()
    stackless.run()  # a paused copy resumes with None
    assert log == [5] and not c.alive
    g = yields_a_lambda()
    assert next(g) == 7
    assert next(copy.copy(g)) == 8  # the same for a generator's locals


# Bodies at module level, so that copies made by pickling find the same LOG by name (a
# closure would be pickled by value, its cells and the list in them with it).
LOG = []


def collect_three():
    seen = counter(3)
    LOG.append(seen)  # (with LOG.append(counter(3)) the list would be on the pickled stack)


def two_finallies():
    try:
        try:
            ch.receive()
        finally:
            LOG.append("inner")
    finally:
        LOG.append("outer")


def catches():
    try:
        ch.receive()
    except ZeroDivisionError as e:
        LOG.append(("caught", str(e)))
        return
    LOG.append("not reached")


def in_sorted():
    return sorted([3, 1, 2], key=lambda x: ch.receive() if x == 1 else x)


def leaf():
    ch.receive()
    f = sys._getframe()
    while f is not None:
        LOG.append(f.f_code.co_name)
        f = f.f_back


def branch():
    leaf()
    LOG.append("branch done")


@pytest.fixture
def log():
    del LOG[:]
    yield LOG
    del LOG[:]


def test_restored_tasklet_returns_what_the_original_would(log):
    t = blocked(collect_three)
    ch.send(1)
    data = pickle.dumps(t)
    ch.send(2)
    ch.send(3)
    assert log == [[1, 2, 3]]
    c = pickle.loads(data)
    assert c.paused and not c.blocked  # its channel was not pickled with it
    c.insert()
    stackless.run()  # resumes with its tempval (None) as receive()'s result
    assert c.blocked
    ch.send(20)
    assert log == [[1, 2, 3], [1, None, 20]]
    assert not c.alive


def test_blocked_again_when_its_channel_comes_with_it():
    local = stackless.channel()
    t = blocked(local.receive)
    t.kill()
    t = blocked(counter, 2)
    t2, ch2 = pickle.loads(pickle.dumps((t, ch)))
    t.kill()
    assert t2.blocked and ch2.balance == -1 and ch2.queue is t2
    ch2.send("x")
    # its code names the module's channel: the second receive() waits there
    assert t2.blocked and ch2.balance == 0 and ch.balance == -1 and ch.queue is t2
    t2.kill()
    assert not t2.alive and ch.balance == 0


def test_channel_and_tasklet_in_either_order():
    t = blocked(counter, 2)
    for obj in [(t, ch), (ch, t)]:
        restored = pickle.loads(pickle.dumps(obj))
        t2, ch2 = restored if obj[0] is t else restored[::-1]
        assert ch2.balance == -1 and ch2.queue is t2 and t2.blocked
        t2.kill()
        assert ch2.balance == 0
    t.kill()


def test_channel_reduce_format():
    c = stackless.channel()
    assert c.__reduce__() == (stackless.channel, (), (0, 6, []))
    c.preference = 1
    c.schedule_all = True
    c.close()
    _, _, state = c.__reduce__()
    assert state == (0, 1 | (1 << 1) | 8, [])
    c2 = pickle.loads(pickle.dumps(c))
    assert (c2.preference, c2.schedule_all, c2.closing) == (1, True, True)


def test_kill_of_a_restored_tasklet_runs_its_finally_blocks(log):
    t = blocked(two_finallies)
    c = pickle.loads(pickle.dumps(t))
    t.kill()
    assert log == ["inner", "outer"]
    c.kill()
    assert log == ["inner", "outer", "inner", "outer"]
    assert not c.alive


def test_exception_into_restored_tasklet_is_caught_by_its_handler(log):
    t = blocked(catches)
    c = pickle.loads(pickle.dumps(t))
    t.kill()
    c.throw(ZeroDivisionError("x"))
    assert log == [("caught", "x")]
    assert not c.alive


def test_c_state_pickles_but_resuming_raises():
    t = blocked(in_sorted)
    assert not t.restorable and t.nesting_level > 0
    c = pickle.loads(pickle.dumps(t))
    t.kill()
    c.insert()
    with pytest.raises(RuntimeError) as info:
        stackless.run()
    assert str(info.value) == ("cannot execute invalid frame with 'in_sorted': frame had a C "
                               "state that can't be restored.")
    assert not c.alive


def test_pickling_the_current_tasklet_is_refused():
    with pytest.raises(RuntimeError, match="You cannot __reduce__ the tasklet which is current."):
        pickle.dumps(stackless.getcurrent())


def test_pickle_again_before_and_after_it_ran(log):
    t = blocked(collect_three)
    ch.send("a")
    first = pickle.dumps(t)
    t.kill()
    c = pickle.loads(first)
    again = pickle.loads(pickle.dumps(c))  # not run yet: the same frames
    c.insert()
    stackless.run()  # c's pending receive() returns None; it blocks in the third
    later = pickle.loads(pickle.dumps(c))  # captured from its live frames
    c.kill()
    again.insert()
    stackless.run()  # None for its pending receive(), then it waits for the third value
    ch.send("b")
    later.insert()
    stackless.run()  # paused in its third receive(): resumes with None and ends
    assert log == [["a", None, "b"], ["a", None, None]]
    assert not again.alive and not later.alive


def test_restored_frames_show_a_natural_f_back_chain(log):
    t = blocked(branch)
    c = pickle.loads(pickle.dumps(t))
    t.kill()
    del log[:]
    c.insert()
    stackless.run()
    assert log[:2] == ["leaf", "branch"] and log[-1] == "branch done"


def produce(n):
    for i in range(n):
        try:
            got = ch.receive()
        except KeyError:
            got = "K"
        yield i, got
    LOG.append("produce end")


def consume(n):
    items = []
    for item in produce(n):  # the generator runs inside this tasklet's chain
        items.append(item)
    LOG.append(items)


def test_tasklet_waiting_inside_a_generator_it_iterates(log):
    t = blocked(consume, 3)
    ch.send("a")
    # (its nesting level is 1 where the generator runs through its __next__ in C: 3.11, and
    # before the loop is specialised; a restore rebuilds that, so it is restorable)
    assert t.restorable
    data = pickle.dumps(t)
    ch.send("b")
    ch.send("c")
    assert log == ["produce end", [(0, "a"), (1, "b"), (2, "c")]]
    del log[:]
    for feed, expected in ((None, [(0, "a"), (1, None), (2, "B")]),
                           (KeyError, [(0, "a"), (1, None), (2, "K")])):
        c = pickle.loads(data)
        c.insert()
        stackless.run()  # the generator resumes with None, yields, waits again
        assert c.blocked
        if feed is KeyError:
            c.throw(KeyError("x"))  # caught inside the generator
        else:
            ch.send("B")
        # the loop's FOR_ITER ran again and found the generator exhausted
        assert log == ["produce end", expected] and not c.alive
        del log[:]


def test_generator_in_the_chain_pickles_again_after_it_ran(log):
    t = blocked(consume, 4)
    c = pickle.loads(pickle.dumps(t))
    t.kill()
    c.insert()
    stackless.run()  # now a restored generator runs in c's chain
    d = pickle.loads(pickle.dumps(c))
    c.kill()
    del log[:]
    d.insert()
    stackless.run()
    ch.send("x")
    ch.send("y")
    assert log == ["produce end", [(0, None), (1, None), (2, "x"), (3, "y")]]


async def sleeper():
    ch.receive()


def drive_coroutine():
    coro = sleeper()
    try:
        coro.send(None)
    except StopIteration:
        pass


def test_coroutine_running_in_the_chain_is_refused():
    t = blocked(drive_coroutine)
    try:
        with pytest.raises(RuntimeError, match="coroutine"):
            pickle.dumps(t)
    finally:
        t.kill()


class Blocking:
    def __init__(self, block):
        self.value = ch.receive() if block else 0


def construct():
    made = []
    for i in range(30):  # the class call gets specialised before the last one blocks
        made.append(Blocking(i == 29))
    LOG.append((len(made), made[-1].value, type(made[-1]).__name__))


def test_class_call_whose_init_waits(log):
    t = blocked(construct)
    restorable = t.restorable
    data = pickle.dumps(t)
    t.kill()
    c = pickle.loads(data)
    c.insert()
    if sys.version_info >= (3, 13):
        # __init__ runs inline behind a shim frame that returns the object: restorable
        stackless.run()
        assert log == [(30, None, "Blocking")] and not c.alive
    else:
        # the class call runs __init__ from C: C state
        assert not restorable
        with pytest.raises(RuntimeError, match="invalid frame with 'construct'"):
            stackless.run()


def spread(*args, **kwargs):
    return ch.receive() + sum(args) + sum(kwargs.values())


def star_caller(values, extra):
    result = spread(*values, **extra)
    LOG.append(result)


def test_frame_entered_with_star_args(log):
    t = blocked(star_caller, [1, 2], {"k": 3})
    # 3.12+ run a Python function called with *args/**kwargs inline; 3.11 through C
    assert t.restorable == (sys.version_info >= (3, 12))
    c, ch2 = pickle.loads(pickle.dumps((t, ch)))
    t.kill()
    assert c.blocked
    if sys.version_info >= (3, 12):
        ch2.send(100)
        assert log == [106] and not c.alive
    else:
        with pytest.raises(RuntimeError, match="invalid frame with 'star_caller'"):
            ch2.send(100)
        assert log == [] and not c.alive


def drain():
    got = []
    for x in ch:
        got.append(x)
    LOG.append(got)


def test_tasklet_in_a_for_loop_over_a_channel(log):
    t = blocked(drain)
    ch.send(1)
    assert t.restorable
    c, ch2 = pickle.loads(pickle.dumps((t, ch)))
    t.kill()
    assert c.blocked and ch2.balance == -1
    ch2.send(2)
    ch2.send_exception(StopIteration)  # ends the loop, as in the original
    assert log == [[1, 2]] and not c.alive


# ---- validation: a record that does not fit its code is refused -----------------------------


def frames_of(t):
    return t.__reduce__()[2][3]


def loop_body(n):
    total = 0
    scale = n * 2
    for i in range(n):
        total += ch.receive() * scale
    return total


def with_record(frames, index, **changes):
    fields = ["func", "code", "offset", "locals", "stack", "exc"]
    rec = list(frames[index])
    for k, v in changes.items():
        rec[fields.index(k)] = v
    return frames[:index] + (tuple(rec),) + frames[index + 1:]


def restore(frames):
    t = stackless.tasklet()
    t.__setstate__((0, None, 0, frames, None, None, None, None))
    return t


@pytest.fixture
def loop_frames():
    t = blocked(loop_body, 3)
    frames = frames_of(t)
    t.kill()
    return frames


def test_valid_frames_restore(loop_frames):
    t = restore(loop_frames)
    assert t.alive and t.paused
    t.kill()


def test_every_offset_but_the_return_points_is_refused(loop_frames):
    code = loop_body.__code__
    layout = _pickling._layout(code)
    returns = {off for off in layout.kinds if off in layout.prev
               and layout.insts[layout.prev[off]].opname in _pickling._RETURNS_HERE}
    original = loop_frames[1][2]
    assert original in returns
    for off in range(-3, len(code.co_code) // 2 + 2):
        if off in (original, -1):  # -1 marks a frame with C state: it only raises
            continue
        try:
            t = restore(with_record(loop_frames, 1, offset=off))
        except ValueError:
            continue
        # accepted: only where another call returns with the same stack shape
        assert off in returns, off
        t.kill()


def test_dropped_or_added_stack_item_is_refused(loop_frames):
    stack = loop_frames[1][4]
    assert stack, "the loop keeps its iterator on the stack"
    with pytest.raises(ValueError):
        restore(with_record(loop_frames, 1, stack=stack[:-1]))
    with pytest.raises(ValueError):
        restore(with_record(loop_frames, 1, stack=stack + (1,)))


def test_non_iterator_where_the_loop_iterates_is_refused(loop_frames):
    stack = loop_frames[1][4]
    for bad in (42, _pickling.NULL, [1, 2], None):
        mutated = tuple(bad if isinstance(v, type(iter(range(1)))) else v for v in stack)
        if mutated != stack:
            with pytest.raises(ValueError):
                restore(with_record(loop_frames, 1, stack=mutated))


def test_empty_local_read_unchecked_is_refused(loop_frames):
    locals_ = loop_frames[1][3]
    idx = list(loop_body.__code__.co_varnames).index("scale")  # read right after the call
    mutated = locals_[:idx] + (_pickling.NULL,) + locals_[idx + 1:]
    with pytest.raises(ValueError, match="local"):
        restore(with_record(loop_frames, 1, locals=mutated))


def test_wrong_sizes_are_refused(loop_frames):
    locals_ = loop_frames[1][3]
    with pytest.raises(ValueError):
        restore(with_record(loop_frames, 1, locals=locals_[:-1]))
    with pytest.raises(ValueError):
        restore(with_record(loop_frames, 1, locals=locals_ + (1,)))
    with pytest.raises(ValueError):
        restore(with_record(loop_frames, 1, offset=10 ** 6))
    with pytest.raises((ValueError, TypeError)):
        restore(with_record(loop_frames, 1, func=len))
    with pytest.raises(ValueError):
        restore(loop_frames[:1])


def test_cell_variables_must_be_cells():
    def outer():
        x = 1

        def inner():
            return x + ch.receive()

        return inner() + x

    t = blocked(outer)
    frames = frames_of(t)
    t.kill()
    rec = frames[1]
    cells = [i for i, v in enumerate(rec[3]) if type(v).__name__ == "cell"]
    assert cells
    mutated = tuple(42 if i in cells else v for i, v in enumerate(rec[3]))
    with pytest.raises(ValueError, match="cell"):
        restore(with_record(frames, 1, locals=mutated))


def test_fuzzed_pickles_raise_or_run_never_crash(tmp_path):
    """A fixed number of mutated pickles in a separate process (a crash would kill it)."""
    env = {}
    if "asan" in os.environ.get("LD_PRELOAD", ""):
        # a flipped length makes the unpickler ask for terabytes: fail that allocation
        env["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "") + \
            ":allocator_may_return_null=1:max_allocation_size_mb=2048"
    proc = run_python(None, "300", "1", script=ROOT / "tests" / "fuzz_pickles.py",
                      cwd=tmp_path, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = proc.stdout.strip().splitlines()[-1]
    assert summary.startswith("fuzz: 300 cases"), summary


# ---- generators, coroutines and async generators as values ------------------------------------


def numbers(n):
    total = 0
    for i in range(n):
        try:
            x = yield i
        except KeyError:
            x = 100
        total += x or 0
    return total


def delegating():
    result = yield from numbers(4)
    yield ("done", result)


async def awaiting():
    import asyncio

    first = await asyncio.sleep(0, "x")
    return first * 2


def test_generators_in_every_state_round_trip():
    created = numbers(3)
    assert list(pickle.loads(pickle.dumps(created))) == [0, 1, 2]
    g = numbers(3)
    next(g)
    g.send(5)
    g2 = pickle.loads(pickle.dumps(g))
    assert g2 is not g and g2.gi_frame.f_locals["total"] == 5
    assert g.send(7) == g2.send(7) == 2
    with pytest.raises(StopIteration) as a:
        g.send(1)
    with pytest.raises(StopIteration) as b:
        g2.send(1)
    assert a.value.value == b.value.value == 13
    done = pickle.loads(pickle.dumps(g))
    assert list(done) == [] and done.gi_frame is None


def test_yield_from_chain_keeps_delegating():
    o = delegating()
    next(o)
    o.send(2)
    o2 = pickle.loads(pickle.dumps(o))
    # throw() reaches the inner generator's handler in both
    assert o.throw(KeyError("k")) == o2.throw(KeyError("k")) == 2
    assert o.send(1) == o2.send(1) == 3
    assert o.send(0) == o2.send(0) == ("done", 103)


def test_coroutine_round_trips_and_runs():
    c = awaiting()
    c2 = pickle.loads(pickle.dumps(c))
    assert type(c2).__name__ == "coroutine"
    assert c2.send(None) is None  # asyncio.sleep(0) yields once
    with pytest.raises(StopIteration) as info:
        c2.send(None)
    assert info.value.value == "xx"
    c.close()


def test_generator_state_is_validated():
    g = numbers(3)
    next(g)
    import copyreg

    func, args = copyreg.dispatch_table[type(g)](g)
    args = list(args)
    args[3] += 1  # the resume offset
    with pytest.raises(ValueError):
        func(*args)
    args[3] -= 1
    args[5] = (1,)  # a stack item where the code has none
    with pytest.raises(ValueError):
        func(*args)
    g.close()


# ---- pickle flags ----------------------------------------------------------------------------


def tracer(frame, event, arg):
    return None


def test_tracing_state_travels_only_on_request():
    t = blocked(counter, 2)
    t.trace_function = tracer
    try:
        assert pickle.loads(pickle.dumps(t)).trace_function is None
        old = stackless.pickle_flags(stackless.PICKLEFLAGS_PRESERVE_TRACING_STATE, 1)
        try:
            assert stackless.pickle_with_tracing_state
            c = pickle.loads(pickle.dumps(t))
        finally:
            stackless.pickle_flags(old, 1)
        assert c.trace_function is tracer and c.profile_function is None
        c.kill()
    finally:
        t.kill()


def test_pickle_flags_are_per_thread():
    import threading

    seen = []
    old = stackless.pickle_flags(1, 1)
    try:
        th = threading.Thread(target=lambda: seen.append(stackless.pickle_flags()))
        th.start()
        th.join()
        assert seen == [stackless.pickle_flags_default()] == [0]
        assert stackless.pickle_flags() == 1
    finally:
        stackless.pickle_flags(old, 1)

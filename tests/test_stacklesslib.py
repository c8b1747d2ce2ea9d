"""stacklesslib: the main loop and its timers, sleep, locks, timeouts, helpers."""
import threading
import time

import pytest

import stackless
from stacklesslib import app, base, errors, events, locks, main, util


def run(body, *args):
    """Run body in a tasklet under the main loop; return its result."""
    return main.run(body, *args)


def spawn(func, *args):
    return stackless.tasklet(func)(*args)


# ---- event queue ---------------------------------------------------------------------------


def test_event_queue_order_cancel_and_repeat():
    q = events.EventQueue()
    log = []
    now = base.time()
    q.call_at(now + 0.02, log.append, "at")
    q.call_later(0.01, log.append, "later")
    q.call_soon(log.append, "soon")
    q.call_soon(log.append, "cancelled").cancel()
    rep = q.call_repeatedly(0.005, log.append, "tick")
    assert q.pump() == 1 and log == ["soon"]
    while len(log) < 8:
        time.sleep(q.due_delay() or 0)
        q.pump()
    rep.cancel()
    assert log.index("later") < log.index("at")
    assert log.count("tick") >= 3 and "cancelled" not in log
    q.pump()
    assert q.due_delay() is None and len(q) == 0


def test_event_queue_errors_do_not_stop_the_others(capsys):
    q = events.EventQueue()
    log = []
    q.call_soon(lambda: 1 / 0)
    q.call_soon(log.append, 1)
    assert q.pump() == 2 and log == [1]
    assert "ZeroDivisionError" in capsys.readouterr().err


def test_dummy_event_queue_refuses():
    with pytest.raises(NotImplementedError):
        events.DummyEventQueue().call_later(1, print)


def test_reschedule_moves_pending_callbacks():
    q = events.EventQueue()
    q.call_later(10, print)
    q.reschedule(-10)
    assert q.due_delay() == 0.0


# ---- main loop and sleep -------------------------------------------------------------------


def test_sleep_blocks_only_the_calling_tasklet():
    log = []

    def sleeper(n, delay):
        app.tasklet_sleep(delay)
        log.append(n)

    def counter():
        for i in range(3):
            log.append("c%d" % i)
            stackless.schedule()

    def body():
        for n, d in ((1, 0.03), (2, 0.01), (3, 0.02)):
            spawn(sleeper, n, d)
        spawn(counter)
        app.tasklet_sleep(0.05)
        return log

    t0 = time.monotonic()
    assert run(body) == ["c0", "c1", "c2", 2, 3, 1]
    assert time.monotonic() - t0 >= 0.05


def test_install_stackless_and_vanilla():
    app.install_stackless()
    try:
        assert app.sleep is app.tasklet_sleep and app.Lock is locks.Lock
    finally:
        app.install_vanilla()
    assert app.sleep is time.sleep and app.Lock is threading.Lock


def test_idle_main_loop_uses_no_cpu():
    def body():
        app.tasklet_sleep(0.3)

    cpu = time.process_time()
    wall = time.monotonic()
    run(body)
    wall = time.monotonic() - wall
    cpu = time.process_time() - cpu
    assert wall >= 0.3
    assert cpu < 0.05, "the idle loop spun: %.3f s CPU in %.3f s" % (cpu, wall)


def test_interrupt_wait_and_threadsafe_calls_from_another_thread():
    log = []

    def other():
        time.sleep(0.05)
        main.event_queue.call_later_threadsafe(0, log.append, "from thread")
        time.sleep(0.05)
        main.mainloop.stop()

    th = threading.Thread(target=other)
    t0 = time.monotonic()
    th.start()
    main.mainloop.run()  # waits in the kernel until the thread wakes it
    th.join()
    assert log == ["from thread"] and time.monotonic() - t0 < 5


def test_pumps_run_each_iteration_and_errors_are_reported(capsys):
    count = []

    def pump():
        count.append(1)
        if len(count) == 2:
            raise ValueError("pump failed")

    main.mainloop.add_pump(pump)
    try:
        def body():
            for _ in range(3):
                app.tasklet_sleep(0)
        run(body)
    finally:
        main.mainloop.remove_pump(pump)
    assert len(count) >= 3
    assert "pump failed" in capsys.readouterr().err


def test_run_hands_back_the_result_and_the_exception():
    assert run(lambda: 42) == 42
    with pytest.raises(KeyError):
        run(lambda: {}["x"])
    assert not main.mainloop.running


# ---- locks ---------------------------------------------------------------------------------


def test_lock_excludes_and_hands_over_in_order():
    lock = locks.Lock()
    log = []

    def worker(k):
        with lock:
            log.append(("in", k))
            app.tasklet_sleep(0.001)
            log.append(("out", k))

    def body():
        ts = [spawn(worker, k) for k in range(3)]
        while any(t.alive for t in ts):
            app.tasklet_sleep(0.001)

    run(body)
    assert log == [(d, k) for k in range(3) for d in ("in", "out")]
    assert not lock.locked()
    with pytest.raises(RuntimeError):
        lock.release()


def test_lock_timeout_and_non_blocking():
    lock = locks.Lock()

    def body():
        lock.acquire()
        assert lock.acquire(False) is False
        with pytest.raises(ValueError):
            lock.acquire(False, 1)
        t0 = base.time()
        assert lock.acquire(timeout=0.02) is False
        assert base.time() - t0 >= 0.02
        lock.release()
        return lock.acquire(timeout=0.02)

    assert run(body) is True


def test_rlock_is_reentrant_and_owned():
    lock = locks.RLock()
    log = []

    def other():
        with pytest.raises(RuntimeError):
            lock.release()
        with lock:
            log.append("other")

    def body():
        with lock:
            with lock:
                spawn(other)
                app.tasklet_sleep(0.005)
                log.append("still mine")
        app.tasklet_sleep(0.005)

    run(body)
    assert log == ["still mine", "other"]


def test_semaphores():
    sem = locks.Semaphore(2)
    active, peak = [0], [0]

    def worker():
        with sem:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
            app.tasklet_sleep(0.002)
            active[0] -= 1

    def body():
        ts = [spawn(worker) for _ in range(5)]
        while any(t.alive for t in ts):
            app.tasklet_sleep(0.001)

    run(body)
    assert peak[0] == 2
    bounded = locks.BoundedSemaphore(1)
    with pytest.raises(ValueError):
        bounded.release()
    with pytest.raises(ValueError):
        locks.Semaphore(-1)


def test_condition_wait_notify_and_timeout():
    cond = locks.Condition()
    items, log = [], []

    def consumer(k):
        with cond:
            while not items:
                cond.wait()
            log.append((k, items.pop(0)))

    def body():
        spawn(consumer, 1)
        spawn(consumer, 2)
        app.tasklet_sleep(0.001)
        with cond:
            items.extend("ab")
            cond.notify_all()
        app.tasklet_sleep(0.001)
        with cond:
            t0 = base.time()
            assert cond.wait(0.01) is False and base.time() - t0 >= 0.01
            assert cond.wait_for(lambda: True) is True
        with pytest.raises(RuntimeError):
            cond.notify()

    run(body)
    assert sorted(log) == [(1, "a"), (2, "b")]


def test_lock_free_condition():
    cond = locks.NLCondition()
    items, log = [], []

    def consumer(k):
        assert cond.wait_for(lambda: items, timeout=5)
        log.append((k, items.pop(0)))

    def body():
        ts = [spawn(consumer, 1), spawn(consumer, 2)]
        app.tasklet_sleep(0.001)
        assert all(t.blocked for t in ts)
        items.append("a")
        cond.notify()  # wakes one: the first
        app.tasklet_sleep(0.001)
        assert log == [(1, "a")] and ts[1].blocked
        items.append("b")
        cond.notify_all()
        app.tasklet_sleep(0.001)
        t0 = base.time()
        assert cond.wait(0.01) is False and base.time() - t0 >= 0.01
        assert cond.wait_for(lambda: 0, timeout=0.01) == 0

    run(body)
    assert log == [(1, "a"), (2, "b")]


def test_event_and_barrier():
    ev = locks.Event()
    barrier = locks.Barrier(3)
    log = []

    def waiter(k):
        log.append(("waits", k, ev.wait()))
        log.append(("barrier", barrier.wait() in (0, 1, 2)))

    def body():
        spawn(waiter, 1)
        spawn(waiter, 2)
        app.tasklet_sleep(0.001)
        assert ev.wait(0.005) is False
        ev.set()
        assert ev.is_set() and ev.wait() is True
        barrier.wait()
        app.tasklet_sleep(0.001)
        b2 = locks.Barrier(2, timeout=0.01)
        with pytest.raises(locks.BrokenBarrierError):
            b2.wait()

    run(body)
    assert sorted(log) == [("barrier", True), ("barrier", True), ("waits", 1, True),
                           ("waits", 2, True)]


def test_value_event_set_abort_and_timeout():
    log = []

    def waiter(ve):
        try:
            log.append(ve.wait())
        except Exception as e:
            log.append(type(e).__name__)

    def body():
        ve = locks.ValueEvent()
        spawn(waiter, ve)
        spawn(waiter, ve)
        app.tasklet_sleep(0)
        ve.set(7)
        assert ve.wait() == 7
        ab = locks.ValueEvent()
        spawn(waiter, ab)
        app.tasklet_sleep(0)
        ab.abort(KeyError, "k")
        with pytest.raises(errors.TimeoutError):
            locks.ValueEvent().wait(0.005)

    run(body)
    assert log == [7, 7, "KeyError"]


# ---- util ------------------------------------------------------------------------------------


def test_timeout_raises_in_the_tasklet_and_is_cancelled_when_done():
    log = []

    def body():
        with pytest.raises(errors.TimeoutError):
            with util.timeout(0.01):
                app.tasklet_sleep(1)
        with util.timeout(0.05):
            app.tasklet_sleep(0.001)
        app.tasklet_sleep(0.06)  # a cancelled timeout never fires
        log.append("survived")
        with pytest.raises(KeyError):
            with util.timeout(0.01, exc=KeyError("mine")):
                app.tasklet_sleep(1)
        ch = stackless.channel()
        with pytest.raises(errors.TimeoutError):
            util.channel_wait(ch, 0.01)
        assert issubclass(errors.TimeoutError, RuntimeError)

    run(body)
    assert log == ["survived"]


def test_tasklet_call_results_errors_cancel_and_timeout():
    def body():
        assert util.tasklet_call(lambda a, b: a + b, 1, 2) == 3
        with pytest.raises(ZeroDivisionError):
            util.tasklet_call(lambda: 1 / 0)

        def killed():
            stackless.getcurrent().kill()

        with pytest.raises(errors.CancelledError):
            util.tasklet_call(killed)
        with pytest.raises(errors.TimeoutError):
            util.tasklet_call(app.tasklet_sleep, 1, timeout=0.01)

    run(body)


def test_queue_channel_buffers():
    q = util.QueueChannel(max_len=2)
    log = []

    def producer():
        for i in range(4):
            q.send(i)
            log.append(("sent", i))

    def body():
        spawn(producer)
        app.tasklet_sleep(0)
        assert log == [("sent", 0), ("sent", 1)] and q.balance == 3  # 2 buffered + 1 blocked
        got = [q.receive() for _ in range(4)]
        return got

    assert run(body) == [0, 1, 2, 3]


def test_tasklet_local():
    loc = util.local()
    seen = []

    def worker(k):
        loc.value = k
        stackless.schedule()
        seen.append(loc.value)

    def body():
        ts = [spawn(worker, k) for k in range(3)]
        while any(t.alive for t in ts):
            stackless.schedule()
        with pytest.raises(AttributeError):
            loc.value

    run(body)
    assert sorted(seen) == [0, 1, 2]


def test_signal_channel_never_blocks():
    sig = base.SignalChannel()
    got = []

    def waiter():
        got.append(sig.receive())

    def body():
        assert sig.signal(1) is False
        spawn(waiter)
        spawn(waiter)
        stackless.schedule()
        assert sig.signal_all("x") == 2

    run(body)
    assert got == ["x", "x"]


def test_block_trap_context():
    def body():
        with base.block_trap():
            with pytest.raises(RuntimeError):
                stackless.channel().receive()
        assert not stackless.getcurrent().block_trap

    run(body)

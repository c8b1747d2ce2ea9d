"""One scheduler per OS thread, and channels and tasklet operations between threads (spec §7).

Each test runs its program in a fresh interpreter with faulthandler armed, so that a hang
fails the test (and prints every thread's stack) instead of stalling the suite, and so
that no thread outlives its test: with another thread alive, a blocked main tasklet
sleeps instead of raising the deadlock error, which other tests rely on.
"""
import textwrap

import pytest

from conftest import report, run_python

PRELUDE = """
import faulthandler, sys, threading, time
import stackless
faulthandler.dump_traceback_later(%d, exit=True)

def wait_until(cond):
    while not cond():
        time.sleep(0.001)
"""


def ok(source, expect, timeout=60):
    p = run_python(PRELUDE % (timeout - 5) + textwrap.dedent(source), timeout=timeout)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout == expect, p.stdout + p.stderr
    return p


def test_each_thread_has_its_own_scheduler():
    ok("""
        seen = {}
        def worker():
            seen["main"] = stackless.main
            seen["current is main"] = stackless.current is stackless.main
            log = []
            for tag in "ab":
                stackless.tasklet(log.append)(tag)
            seen["runcount before run"] = stackless.runcount
            stackless.run()
            seen["log"] = log
        stackless.tasklet(print)("main thread tasklet")
        th = threading.Thread(target=worker)
        th.start()
        th.join()
        print(seen["main"] is not stackless.main, seen["current is main"],
              seen["runcount before run"], seen["log"], stackless.runcount)
        stackless.run()
    """, "True True 3 ['a', 'b'] 2\nmain thread tasklet\n")


def test_send_wakes_a_receiver_sleeping_in_another_thread():
    ok("""
        ch = stackless.channel()
        log = []
        def sender():
            wait_until(lambda: ch.balance == -1)
            log.append(ch.send("x"))
            log.append(stackless.current is stackless.main)
        th = threading.Thread(target=sender)
        th.start()
        print("main got", ch.receive())   # sleeps: only the other thread can serve it
        th.join()
        print("sender: send returned", log[0], "without switching:", log[1])
    """, "main got x\nsender: send returned None without switching: True\n")


def test_receive_from_a_sender_sleeping_in_another_thread_and_exceptions():
    ok("""
        ch = stackless.channel()
        def sender():
            ch.send(1)
            ch.send_exception(KeyError, "k")
            ch.send_throw(ValueError("v"))
            ch.close()
        th = threading.Thread(target=sender)
        th.start()
        print(ch.receive())
        for _ in range(2):
            try:
                ch.receive()
            except Exception as e:
                print(type(e).__name__, e.args)
        th.join()
        wait_until(lambda: ch.closed)
        print("closed", ch.closed)
    """, "1\nKeyError ('k',)\nValueError ('v',)\nclosed True\n")


def test_tasklets_of_both_threads_block_and_wake_each_other():
    ok("""
        to_worker, to_main = stackless.channel(), stackless.channel()
        finished = stackless.channel()
        def echo():
            for i in range(1000):
                to_main.send(to_worker.receive() * 2)
            finished.send("echo done")
        def worker():
            stackless.tasklet(echo)()
            finished.receive()   # the thread sleeps whenever its tasklets wait
        th = threading.Thread(target=worker)
        th.start()
        total = 0
        driven = stackless.channel()
        def driver():
            global total
            for i in range(1000):
                to_worker.send(i)
                total += to_main.receive()
            driven.send("driver done")
        stackless.tasklet(driver)()
        driven.receive()   # not run(): it would return as soon as the driver waits
        th.join()
        print(total == 2 * sum(range(1000)))
    """, "True\n")


def test_deadlock_is_still_reported_when_no_thread_can_help():
    ok("""
        ch = stackless.channel()
        try:
            ch.receive()
        except RuntimeError as e:
            print("alone:", e)
        # the other thread sleeps in its scheduler: it cannot help either
        other = stackless.channel()
        started = threading.Event()
        def sleeper():
            started.set()
            print("sleeper got", other.receive())
        th = threading.Thread(target=sleeper)
        th.start()
        started.wait()
        wait_until(lambda: other.balance == -1)
        try:
            ch.receive()
        except RuntimeError as e:
            print("other asleep:", e)
        other.send("bye")
        th.join()
    """, "alone: Deadlock: the last runnable tasklet cannot be blocked.\n"
         "other asleep: Deadlock: the last runnable tasklet cannot be blocked.\n"
         "sleeper got bye\n")


def test_operations_on_a_tasklet_of_another_thread():
    ok("""
        ch = stackless.channel()
        info, log = {}, []
        def victim():
            try:
                log.append("runs in helper: %s" % (threading.current_thread().name == "helper"))
                stackless.schedule_remove()
            except ValueError as e:
                log.append("got ValueError " + e.args[0])
            try:
                stackless.schedule_remove()
            finally:
                log.append("finally")
        def helper():
            info["t"] = stackless.tasklet(victim, ())
            info["main"] = stackless.main
            try:
                ch.receive()
            except RuntimeError as e:  # the victim ended and nothing here could send
                log.append(str(e))
            log.append("helper got %r" % (ch.receive(),))
        th = threading.Thread(target=helper, name="helper")
        th.start()
        wait_until(lambda: "main" in info and info["main"].blocked)
        t = info["t"]
        try:
            t.switch()
        except RuntimeError as e:
            print("switch:", e)
        print("run:", t.run(), "runcount here", stackless.runcount)
        wait_until(lambda: t.paused)
        print("throw:", t.throw(ValueError("v")))
        wait_until(lambda: t.paused)
        print("kill:", t.kill())
        wait_until(lambda: not t.alive and info["main"].blocked)
        ch.send("done")
        th.join()
        print(log)
    """, "switch: can't switch to a different thread.\n"
         "run: None runcount here 1\n"
         "throw: None\n"
         "kill: None\n"
         "['runs in helper: True', 'got ValueError v', 'finally', "
         "'the main tasklet is receiving without a sender available.', "
         "\"helper got 'done'\"]\n")


def test_thread_end_kills_its_tasklets_and_leaves_them_without_thread():
    ok("""
        info, log = {}, []
        def blocked(ch):
            try:
                ch.receive()
            finally:
                log.append("finally ran in the helper: %s" % (threading.get_ident() == info["ident"]))
        def helper():
            ch = stackless.channel()
            info["ident"] = threading.get_ident()
            info["blocked"] = stackless.tasklet(blocked)(ch)
            stackless.run()
            info["pending"] = stackless.tasklet(print)("never runs")
            info["main"] = stackless.main
        th = threading.Thread(target=helper, name="helper")
        th.start()
        th.join()
        print(log)
        for k in ("blocked", "pending", "main"):
            t = info[k]
            print(k, t.alive, t.thread_id, t.scheduled)
        print(info["ident"] in stackless.getthreads())
        try:
            info["pending"].run()
        except RuntimeError as e:
            print("run:", e)
        try:
            stackless.get_thread_info(info["ident"])
        except RuntimeError as e:
            print("info:", e)
        t = stackless.tasklet(print)
        t.bind(None)
        t = stackless.tasklet(print)
        t.bind_thread()
        print(t.thread_id == threading.get_ident())
    """, "['finally ran in the helper: True']\n"
         "blocked False -1 False\n"
         "pending False -1 False\n"
         "main False -1 False\n"
         "False\n"
         "run: tasklet has no thread\n"
         "info: Thread id not found\n"
         "True\n")


def test_bind_thread_moves_a_new_tasklet_but_not_a_started_one():
    ok("""
        ch = stackless.channel()
        info, log = {}, []
        ready = threading.Event()
        def helper():
            info["main"] = stackless.main
            ready.set()
            log.append(ch.receive())
        th = threading.Thread(target=helper)
        th.start()
        ready.wait()
        wait_until(lambda: info["main"].blocked)
        t = stackless.tasklet(lambda: ch.send(threading.current_thread() is th))
        print(t.bind_thread(th.ident), t.thread_id == th.ident)
        t.setup()
        print("runcount here", stackless.runcount)
        th.join()
        print(log)
        s = stackless.tasklet(stackless.schedule_remove)()
        stackless.run()
        try:
            s.bind_thread(123456789)
        except ValueError as e:
            print("unknown:", e)
        try:
            s.bind_thread(-5)
        except OverflowError:
            print("negative: OverflowError")
        s.kill()
    """, "None True\nruncount here 1\n[True]\nunknown: bad thread\nnegative: OverflowError\n")


def test_thread_info_of_a_sleeping_thread():
    ok("""
        ch = stackless.channel()
        info = {}
        def helper():
            info["main"] = stackless.main
            ch.receive()
        th = threading.Thread(target=helper)
        th.start()
        wait_until(lambda: "main" in info and info["main"].blocked)
        m, c, n = stackless.get_thread_info(th.ident)
        print(m is info["main"], c, n, info["main"].is_current)
        ch.send(None)
        th.join()
    """, "True None 0 False\n")


def test_a_signal_interrupts_a_thread_sleeping_in_its_scheduler():
    ok("""
        import os, signal
        ch = stackless.channel()
        def poke():
            wait_until(lambda: ch.balance == -1)
            os.kill(os.getpid(), signal.SIGINT)
        th = threading.Thread(target=poke)
        th.start()
        try:
            ch.receive()
        except KeyboardInterrupt:
            print("interrupted; balance", ch.balance, "runcount", stackless.runcount)
        th.join()
    """, "interrupted; balance 0 runcount 1\n")


def test_shutdown_with_threads_asleep_and_tasklets_blocked_is_clean():
    p = run_python(PRELUDE % 50 + textwrap.dedent("""
        ch = stackless.channel()
        def helper():
            stackless.tasklet(ch.receive)()
            stackless.run()
            ch.receive()          # sleeps for good
        th = threading.Thread(target=helper, daemon=True)
        th.start()
        wait_until(lambda: ch.balance == -2)
        t = stackless.tasklet(ch.receive)()
        stackless.run()
        print("exiting with", ch.balance, "waiting")
    """), timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "exiting with -3 waiting\n"


@pytest.mark.parametrize("nthreads", [4])
def test_stress_messages_between_threads(nthreads):
    # Each thread runs a few tasklets; every message crosses a thread boundary, in both
    # directions, and the checked total proves none was lost or duplicated.
    p = ok("""
        N = 100_000
        THREADS = %d
        PER = N // THREADS // 2   # messages one tasklet sends to its neighbour thread
        chans = [stackless.channel() for _ in range(THREADS)]   # chans[i]: inbox of thread i
        totals = [0] * THREADS
        def producer(i):
            out = chans[(i + 1) %% THREADS]
            for k in range(PER):
                out.send(k)
        def consumer(i):
            inbox = chans[i]
            s = 0
            for _ in range(2 * PER):
                s += inbox.receive()
            totals[i] = s
        def thread_main(i):
            # the thread's main tasklet waits for its own tasklets (sleeping while they
            # wait for other threads), so that ending the thread does not kill them
            done = stackless.channel()
            def run(f, *args):
                f(*args)
                done.send(None)
            for f in (consumer, producer, producer):
                stackless.tasklet(run)(f, i)
            for _ in range(3):
                done.receive()
        start = time.perf_counter()
        threads = [threading.Thread(target=thread_main, args=(i,)) for i in range(THREADS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        elapsed = time.perf_counter() - start
        print(sum(totals) == THREADS * 2 * sum(range(PER)), all(t > 0 for t in totals))
        cross = THREADS * 2 * PER / elapsed
        # the same tasklets and messages, all in this one thread, for comparison
        totals[:] = [0] * THREADS
        start = time.perf_counter()
        for i in range(THREADS):
            for f in (consumer, producer, producer):
                stackless.tasklet(f)(i)
        stackless.run()
        elapsed = time.perf_counter() - start
        print(sum(totals) == THREADS * 2 * sum(range(PER)))
        print("RATE %%.0f %%.0f" %% (cross, THREADS * 2 * PER / elapsed), file=sys.stderr)
    """ % nthreads, "True True\nTrue\n", timeout=300)
    cross, local = (float(x) for x in p.stderr.split("RATE")[1].split())
    report("%d threads exchanging 100,000 messages over channels between threads: %.0f "
           "messages/s (all in one thread: %.0f messages/s)" % (nthreads, cross, local))


def test_fork_child_keeps_only_the_forking_threads_scheduler():
    ok("""
        import os
        ch = stackless.channel()
        info = {}
        def helper():
            info["main"] = stackless.main
            ch.receive()
        th = threading.Thread(target=helper, daemon=True)
        th.start()
        wait_until(lambda: ch.balance == -1)
        import warnings
        warnings.simplefilter("ignore", DeprecationWarning)  # forking with threads
        pid = os.fork()
        if pid == 0:
            alive = info["main"].alive
            try:
                ch.receive()   # nobody left to send: the helper thread is gone here
                code = 1
            except RuntimeError as e:
                code = 0 if "Deadlock" in str(e) and not alive else 2
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        print("child:", os.waitstatus_to_exitcode(status))
        ch.send("bye")
        th.join()
    """, "child: 0\n")

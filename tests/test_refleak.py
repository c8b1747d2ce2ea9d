"""No leaks: repeated create/send/receive/kill/throw/collect cycles leave the interpreter's
allocated blocks (and, on debug builds of CPython, the total reference count) and the process
RSS flat."""
import gc
import os
import sys

import pytest

import stackless

# AddressSanitizer quarantines freed memory, so RSS says nothing about leaks under it.
UNDER_ASAN = "asan" in os.environ.get("LD_PRELOAD", "")


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def workload():
    ch = stackless.channel()
    out = []

    def echo():
        while True:
            ch.send(ch.receive() + 1)

    def raiser():
        raise KeyError("x")

    def sleeper():
        try:
            stackless.schedule_remove(None)
        finally:
            out.append("finally")

    echoes = [stackless.tasklet(echo)() for _ in range(20)]
    stackless.run()
    for i in range(50):
        ch.send(i)
        out.append(ch.receive())
    for t in echoes:
        t.kill()
    sleepers = [stackless.tasklet(sleeper)() for _ in range(10)]
    stackless.run()
    try:
        sleepers[0].throw(ValueError("thrown"))  # uncaught there: comes back to main
    except ValueError:
        pass
    del sleepers  # unreferenced paused tasklets: killed by their finaliser
    gc.collect()
    try:
        stackless.tasklet(raiser)()
        stackless.run()
    except KeyError:
        pass
    t = stackless.tasklet(lambda: stackless.schedule_remove(None))()
    t.run()
    t.bind(None)  # drop a suspended tasklet's frames
    blocked = stackless.channel()
    stackless.tasklet(blocked.receive)()
    stackless.run()
    blocked.send(None)
    assert len(out) == 60


def measure():
    gc.collect()
    refs = sys.gettotalrefcount() if hasattr(sys, "gettotalrefcount") else 0
    return sys.getallocatedblocks(), refs


def test_cycles_do_not_leak():
    for _ in range(5):
        workload()
    blocks0, refs0 = measure()
    rss0 = rss()
    for _ in range(200):
        workload()
    blocks1, refs1 = measure()
    rss1 = rss()
    assert blocks1 - blocks0 < 100, (blocks0, blocks1)
    if refs0:
        assert refs1 - refs0 < 100, (refs0, refs1)
    if not UNDER_ASAN:
        assert rss1 - rss0 < 2 * 1024 * 1024, (rss0, rss1)


@pytest.mark.skipif(UNDER_ASAN, reason="RSS is meaningless under AddressSanitizer")
def test_many_blocked_tasklets_killed_repeatedly_do_not_grow_rss():
    def round_trip():
        ch = stackless.channel()
        ts = [stackless.tasklet(ch.receive)() for _ in range(5000)]
        stackless.run()
        for t in ts:
            t.kill()
        assert ch.balance == 0

    round_trip()
    gc.collect()
    rss0 = rss()
    for _ in range(10):
        round_trip()
    gc.collect()
    assert rss() - rss0 < 4 * 1024 * 1024

"""The eight workloads on gevent: greenlets and gevent.queue.Channel (a rendezvous channel,
like a Stackless channel)."""
import gevent
from gevent.queue import Channel

from common import Clock, check, rss_bytes, settle, sieve_transfers, factorial_quotient

NAME = "gevent"
spawn = gevent.spawn


def pingpong(n):
    ping, pong = Channel(), Channel()
    out = []

    def server():
        for _ in range(n):
            pong.put(ping.get() + 1)

    def client():
        x = 0
        for _ in range(n):
            ping.put(x)
            x = pong.get()
        out.append(x)

    with Clock() as c:
        gevent.joinall([spawn(server), spawn(client)])
    check(out == [n], "pingpong %r" % out)
    return c.seconds, n, None


def ring(tasks, rounds):
    chans = [Channel() for _ in range(tasks)]
    out = []

    def member(i):
        inbox, outbox = chans[i], chans[(i + 1) % tasks]
        for _ in range(rounds):
            outbox.put(inbox.get() + 1)

    def first():
        inbox, outbox = chans[0], chans[1]
        v = 0
        for _ in range(rounds):
            outbox.put(v)
            v = inbox.get() + 1
        out.append(v)

    with Clock() as c:
        gs = [spawn(member, i) for i in range(1, tasks)]
        gs.append(spawn(first))
        gevent.joinall(gs)
    check(out == [rounds * tasks], "ring %r" % out)
    return c.seconds, rounds * tasks, None


def spawn_idle(n):
    ch = Channel()
    total = [0]
    blocked = [0]

    def waiter():
        blocked[0] += 1
        x = ch.get()  # before reading total: others add while this one waits
        total[0] += x

    settle()
    before = rss_bytes()
    with Clock() as c:
        gs = [spawn(waiter) for _ in range(n)]
        gevent.sleep(0)  # every waiter starts and blocks in get()
        grown = rss_bytes() - before
        check(blocked[0] == n, "spawn_idle started %d" % blocked[0])
        for i in range(n):
            ch.put(i)
        gevent.joinall(gs)
    check(total[0] == n * (n - 1) // 2, "spawn_idle total")
    return c.seconds, n, grown / n


def daisy_chain(n):
    with Clock() as c:
        chans = [Channel() for _ in range(n + 1)]

        def link(left, right):
            right.put(left.get() + 1)

        for i in range(n):
            spawn(link, chans[i], chans[i + 1])
        chans[0].put(0)
        result = chans[n].get()
    check(result == n, "daisy_chain %r" % result)
    return c.seconds, n, None


def sieve(count):
    transfers, last = sieve_transfers(count)

    def generate(out):
        x = 2
        while True:
            out.put(x)
            x += 1

    def keep(p, inbox, out):
        while True:
            x = inbox.get()
            if x % p:
                out.put(x)

    with Clock() as c:
        ch = Channel()
        spawn(generate, ch)
        for _ in range(count):
            p = ch.get()
            nxt = Channel()
            spawn(keep, p, ch, nxt)
            ch = nxt
    check(p == last, "sieve %r" % p)
    return c.seconds, transfers, None


def schedule_rr(tasks, yields):
    counts = [0]

    def worker():
        n = 0
        for _ in range(yields):
            gevent.sleep(0)
            n += 1
        counts[0] += n

    with Clock() as c:
        gevent.joinall([spawn(worker) for _ in range(tasks)])
    check(counts[0] == tasks * yields, "schedule_rr %r" % counts)
    return c.seconds, tasks * yields, None


def fanout(items, workers):
    work, results = Channel(), Channel()
    out = []

    def producer():
        for i in range(items):
            work.put(i)
        for _ in range(workers):
            work.put(None)

    def worker():
        while True:
            x = work.get()
            if x is None:
                return
            results.put(x * 2)

    def collector():
        s = 0
        for _ in range(items):
            s += results.get()
        out.append(s)

    with Clock() as c:
        gs = [spawn(worker) for _ in range(workers)]
        gs.append(spawn(collector))
        gs.append(spawn(producer))
        gevent.joinall(gs)
    check(out == [items * (items - 1)], "fanout %r" % out)
    return c.seconds, items, None


def recursion(repeats):
    expected, calls = factorial_quotient()

    def fact(n, out):
        if n <= 1:
            out.put(1)
            return
        ch = Channel()
        spawn(fact, n - 1, ch)
        out.put(n * ch.get())

    def compute(n):
        ch = Channel()
        spawn(fact, n, ch)
        return ch.get()

    with Clock() as c:
        for _ in range(repeats):
            result = compute(1000) // compute(998)
    check(result == expected, "recursion %r" % result)
    return c.seconds, calls * repeats, None

"""The eight workloads on this module: tasklets and stackless.channel."""
import stackless

from common import Clock, check, rss_bytes, settle, sieve_transfers, factorial_quotient

NAME = "stackless"
channel = stackless.channel


def spawn(func, *args):
    return stackless.tasklet(func)(*args)


def pingpong(n):
    ping, pong = channel(), channel()
    out = []

    def server():
        for _ in range(n):
            pong.send(ping.receive() + 1)

    def client():
        x = 0
        for _ in range(n):
            ping.send(x)
            x = pong.receive()
        out.append(x)

    spawn(server)
    spawn(client)
    with Clock() as c:
        stackless.run()
    check(out == [n], "pingpong %r" % out)
    return c.seconds, n, None


def ring(tasks, rounds):
    chans = [channel() for _ in range(tasks)]
    out = []

    def member(i):
        inbox, outbox = chans[i], chans[(i + 1) % tasks]
        for _ in range(rounds):
            outbox.send(inbox.receive() + 1)

    def first():
        inbox, outbox = chans[0], chans[1]
        v = 0
        for _ in range(rounds):
            outbox.send(v)
            v = inbox.receive() + 1
        out.append(v)

    with Clock() as c:
        for i in range(1, tasks):
            spawn(member, i)
        spawn(first)
        stackless.run()
    check(out == [rounds * tasks], "ring %r" % out)
    return c.seconds, rounds * tasks, None


def spawn_idle(n):
    ch = channel()
    total = [0]

    def waiter():
        x = ch.receive()  # before reading total: others add while this one waits
        total[0] += x

    settle()
    before = rss_bytes()
    with Clock() as c:
        for _ in range(n):
            spawn(waiter)
        stackless.run()  # every waiter blocks in receive()
        grown = rss_bytes() - before
        check(ch.balance == -n, "spawn_idle balance %d" % ch.balance)
        for i in range(n):
            ch.send(i)
        stackless.run()  # whatever the channel's preference left runnable
    check(total[0] == n * (n - 1) // 2, "spawn_idle total")
    return c.seconds, n, grown / n


def daisy_chain(n):
    with Clock() as c:
        chans = [channel() for _ in range(n + 1)]

        def link(left, right):
            right.send(left.receive() + 1)

        for i in range(n):
            spawn(link, chans[i], chans[i + 1])
        stackless.run()
        chans[0].send(0)  # passes straight on: the first link preferred as receiver
        result = chans[n].receive()
    check(result == n, "daisy_chain %r" % result)
    return c.seconds, n, None


def sieve(count):
    transfers, last = sieve_transfers(count)

    def generate(out):
        x = 2
        while True:
            out.send(x)
            x += 1

    def keep(p, inbox, out):
        while True:
            x = inbox.receive()
            if x % p:
                out.send(x)

    with Clock() as c:
        ch = channel()
        spawn(generate, ch)
        for _ in range(count):
            p = ch.receive()
            nxt = channel()
            spawn(keep, p, ch, nxt)
            ch = nxt
    check(p == last, "sieve %r" % p)
    return c.seconds, transfers, None


def schedule_rr(tasks, yields):
    counts = [0]

    def worker():
        n = 0
        for _ in range(yields):
            stackless.schedule()
            n += 1
        counts[0] += n

    for _ in range(tasks):
        spawn(worker)
    with Clock() as c:
        stackless.run()
    check(counts[0] == tasks * yields, "schedule_rr %r" % counts)
    return c.seconds, tasks * yields, None


def fanout(items, workers):
    work, results = channel(), channel()
    out = []

    def producer():
        for i in range(items):
            work.send(i)
        for _ in range(workers):
            work.send(None)

    def worker():
        while True:
            x = work.receive()
            if x is None:
                return
            results.send(x * 2)

    def collector():
        s = 0
        for _ in range(items):
            s += results.receive()
        out.append(s)

    with Clock() as c:
        for _ in range(workers):
            spawn(worker)
        spawn(collector)
        spawn(producer)
        stackless.run()
    check(out == [items * (items - 1)], "fanout %r" % out)
    return c.seconds, items, None


def recursion(repeats):
    expected, calls = factorial_quotient()

    def fact(n, out):
        if n <= 1:
            out.send(1)
            return
        ch = channel()
        spawn(fact, n - 1, ch)
        out.send(n * ch.receive())

    def compute(n):
        ch = channel()
        spawn(fact, n, ch)
        return ch.receive()

    with Clock() as c:
        for _ in range(repeats):
            result = compute(1000) // compute(998)
    check(result == expected, "recursion %r" % result)
    return c.seconds, calls * repeats, None

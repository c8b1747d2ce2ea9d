"""The eight workloads on asyncio: tasks, and asyncio.Queue(maxsize=1) as the channel."""
import asyncio

from common import Clock, check, rss_bytes, settle, sieve_transfers, factorial_quotient

NAME = "asyncio"


def channel():
    return asyncio.Queue(maxsize=1)


def spawn(coro):
    return asyncio.get_running_loop().create_task(coro)


def run(main):
    """Run the coroutine function main() in a fresh event loop and return its result."""
    return asyncio.run(main())


def pingpong(n):
    async def main():
        ping, pong = channel(), channel()
        out = []

        async def server():
            for _ in range(n):
                await pong.put(await ping.get() + 1)

        async def client():
            x = 0
            for _ in range(n):
                await ping.put(x)
                x = await pong.get()
            out.append(x)

        with Clock() as c:
            await asyncio.gather(spawn(server()), spawn(client()))
        check(out == [n], "pingpong %r" % out)
        return c.seconds, n, None

    return run(main)


def ring(tasks, rounds):
    async def main():
        chans = [channel() for _ in range(tasks)]
        out = []

        async def member(i):
            inbox, outbox = chans[i], chans[(i + 1) % tasks]
            for _ in range(rounds):
                await outbox.put(await inbox.get() + 1)

        async def first():
            inbox, outbox = chans[0], chans[1]
            v = 0
            for _ in range(rounds):
                await outbox.put(v)
                v = await inbox.get() + 1
            out.append(v)

        with Clock() as c:
            ts = [spawn(member(i)) for i in range(1, tasks)]
            ts.append(spawn(first()))
            await asyncio.gather(*ts)
        check(out == [rounds * tasks], "ring %r" % out)
        return c.seconds, rounds * tasks, None

    return run(main)


def spawn_idle(n):
    async def main():
        ch = channel()
        total = [0]
        blocked = [0]

        async def waiter():
            blocked[0] += 1
            x = await ch.get()  # before reading total: others add meanwhile
            total[0] += x

        settle()
        before = rss_bytes()
        with Clock() as c:
            ts = [spawn(waiter()) for _ in range(n)]
            await asyncio.sleep(0)  # every waiter starts and blocks in get()
            grown = rss_bytes() - before
            check(blocked[0] == n, "spawn_idle started %d" % blocked[0])
            for i in range(n):
                await ch.put(i)
            await asyncio.gather(*ts)
        check(total[0] == n * (n - 1) // 2, "spawn_idle total")
        return c.seconds, n, grown / n

    return run(main)


def daisy_chain(n):
    async def main():
        with Clock() as c:
            chans = [channel() for _ in range(n + 1)]

            async def link(left, right):
                await right.put(await left.get() + 1)

            for i in range(n):
                spawn(link(chans[i], chans[i + 1]))
            await chans[0].put(0)
            result = await chans[n].get()
        check(result == n, "daisy_chain %r" % result)
        return c.seconds, n, None

    return run(main)


def sieve(count):
    transfers, last = sieve_transfers(count)

    async def main():
        async def generate(out):
            x = 2
            while True:
                await out.put(x)
                x += 1

        async def keep(p, inbox, out):
            while True:
                x = await inbox.get()
                if x % p:
                    await out.put(x)

        tasks = []
        with Clock() as c:
            ch = channel()
            tasks.append(spawn(generate(ch)))
            for _ in range(count):
                p = await ch.get()
                nxt = channel()
                tasks.append(spawn(keep(p, ch, nxt)))
                ch = nxt
        check(p == last, "sieve %r" % p)
        for t in tasks:
            t.cancel()
        return c.seconds, transfers, None

    return run(main)


def schedule_rr(tasks, yields):
    async def main():
        counts = [0]

        async def worker():
            n = 0
            for _ in range(yields):
                await asyncio.sleep(0)
                n += 1
            counts[0] += n

        with Clock() as c:
            await asyncio.gather(*[spawn(worker()) for _ in range(tasks)])
        check(counts[0] == tasks * yields, "schedule_rr %r" % counts)
        return c.seconds, tasks * yields, None

    return run(main)


def fanout(items, workers):
    async def main():
        work, results = channel(), channel()
        out = []

        async def producer():
            for i in range(items):
                await work.put(i)
            for _ in range(workers):
                await work.put(None)

        async def worker():
            while True:
                x = await work.get()
                if x is None:
                    return
                await results.put(x * 2)

        async def collector():
            s = 0
            for _ in range(items):
                s += await results.get()
            out.append(s)

        with Clock() as c:
            ts = [spawn(worker()) for _ in range(workers)]
            ts.append(spawn(collector()))
            ts.append(spawn(producer()))
            await asyncio.gather(*ts)
        check(out == [items * (items - 1)], "fanout %r" % out)
        return c.seconds, items, None

    return run(main)


def recursion(repeats):
    expected, calls = factorial_quotient()

    async def main():
        async def fact(n, out):
            if n <= 1:
                await out.put(1)
                return
            ch = channel()
            spawn(fact(n - 1, ch))
            await out.put(n * await ch.get())

        async def compute(n):
            ch = channel()
            spawn(fact(n, ch))
            return await ch.get()

        with Clock() as c:
            for _ in range(repeats):
                result = await compute(1000) // await compute(998)
        check(result == expected, "recursion %r" % result)
        return c.seconds, calls * repeats, None

    return run(main)

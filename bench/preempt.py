"""Preemption: how long a tick is, how fair slices are, what an active watchdog costs.

    python bench/preempt.py

1. Tick length: iterations of a 9-bytecode loop that run in one 1,000,000-tick slice.
2. Fairness: two CPU-bound tasklets driven by `t = run(1000); t.insert()` for 0.5 s; the
   ratio of their progress (1.0 is perfectly fair) and the number of interrupts.
3. Channel ping-pong (100,000 round trips) under run() and under run(timeout=10**9), where
   every switch re-arms the slice.
"""
import statistics
import sys
import time

import stackless


def tick_length():
    box = [0]

    def spin():
        n = 0
        while True:
            n += 1
            box[0] = n

    t = stackless.tasklet(spin)()
    stackless.run(timeout=1_000_000)
    first = box[0]
    t.kill()
    return first * 9 / 1_000_000  # bytecodes per tick


def fairness(seconds=0.5):
    counts = [0, 0]

    def spin(k):
        while True:
            counts[k] += 1

    ts = [stackless.tasklet(spin)(0), stackless.tasklet(spin)(1)]
    interrupts = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = stackless.run(1000)
        if t is not None:
            interrupts += 1
            t.insert()
    for t in ts:
        t.remove()  # (killing a runnable one would let the other spin on afterwards)
    for t in ts:
        t.kill()
    return min(counts) / max(counts), interrupts


def pingpong(n, timeout):
    ping, pong = stackless.channel(), stackless.channel()

    def server():
        for _ in range(n):
            pong.send(ping.receive() + 1)

    def client():
        x = 0
        for _ in range(n):
            ping.send(x)
            x = pong.receive()

    stackless.tasklet(server)()
    stackless.tasklet(client)()
    start = time.perf_counter()
    while stackless.runcount > 1:
        r = stackless.run(timeout=timeout) if timeout else stackless.run()
        if r is not None:
            r.insert()
    return (time.perf_counter() - start) / n * 1e9


def main():
    v = "%d.%d" % sys.version_info[:2]
    ticks = statistics.median(tick_length() for _ in range(3))
    ratio, interrupts = fairness()
    plain = min(pingpong(100_000, 0) for _ in range(5))
    watched = min(pingpong(100_000, 10**9) for _ in range(5))
    print("CPython %s: a tick is ~%.1f bytecodes; fairness under run(1000) %.2f over %d "
          "interrupts; ping-pong %.0f ns, %.0f ns under run(timeout)"
          % (v, ticks, ratio, interrupts, plain, watched))


if __name__ == "__main__":
    main()

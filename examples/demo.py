"""A short tour of stackless on stock CPython, ending with 100,000 tasklets.

Run by scripts/demo.sh after it has built and installed the package.
"""
import gc
import os
import sys
import time

import stackless


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def section(title):
    print()
    print("--", title)


section("two tasklets taking turns with schedule()")


def greet(name):
    print("Hello,", name)
    stackless.schedule()
    print("Goodbye,", name)


stackless.tasklet(greet)("A")
stackless.tasklet(greet)("B")
stackless.run()

section("a producer and a consumer on a channel")
ch = stackless.channel()


def producer():
    n = ch.send_sequence(["spam", "eggs", "ham"])
    print("producer sent", n, "items")
    ch.send_exception(StopIteration)  # ends the consumer's for loop


def consumer():
    for item in ch:
        print("consumer got", item)
    print("consumer: no more items")


stackless.tasklet(consumer)()
stackless.tasklet(producer)()
stackless.run()

section("an exception travels over a channel")
requests, replies = stackless.channel(), stackless.channel()


def divider():
    while True:
        x, y = requests.receive()
        try:
            replies.send(x // y)
        except ZeroDivisionError as e:
            replies.send_exception(ZeroDivisionError, *e.args)


stackless.tasklet(divider)()
for x, y in ((8, 4), (8, 0)):
    requests.send((x, y))
    try:
        print("%d // %d = %s" % (x, y, replies.receive()))
    except ZeroDivisionError as e:
        print("%d // %d raised ZeroDivisionError: %s" % (x, y, e))

section("100,000 tasklets blocked on one channel, then woken")
N = 100000
gc.collect()
before = rss()
gate = stackless.channel()
woken = []


def sleeper(i):
    woken.append(gate.receive() + i)


t0 = time.perf_counter()
for i in range(N):
    stackless.tasklet(sleeper)(i)
stackless.run()
print("blocked: %d tasklets waiting, %.0f bytes of memory each, set up in %.2f s"
      % (-gate.balance, (rss() - before) / N, time.perf_counter() - t0))
t0 = time.perf_counter()
for _ in range(N):
    gate.send(1)
stackless.run()
print("woken: %d finished, sum %d (expected %d), in %.2f s"
      % (len(woken), sum(woken), N + N * (N - 1) // 2, time.perf_counter() - t0))
section("100,000 tasklets in a daisy chain (each adds 1 and passes it on)")
t0 = time.perf_counter()
leftmost = stackless.channel()
left = leftmost


def whisper(left, right):
    left.send(1 + right.receive())


for _ in range(N):
    right = stackless.channel()
    stackless.tasklet(whisper)(left, right)
    left = right
stackless.tasklet(right.send)(1)
print("result:", leftmost.receive(), "in %.2f s" % (time.perf_counter() - t0))

print()
print("stackless on CPython %s: all done." % sys.version.split()[0])

"""A million tasklets: create 1,000,000 tasklets blocked on channels, then wake them all.

    python bench/million.py [N]

Every tasklet blocks in receive() on one of 1,000 channels; the main tasklet then sends one
value to each. Prints the seconds to create and block them, to wake them, and the RSS
growth per blocked tasklet, and checks that every tasklet received its value.
"""
import gc
import sys
import time

import stackless

sys.path.insert(0, __import__("os").path.dirname(__file__))
from common import rss_bytes  # noqa: E402


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    nchannels = 1000
    chans = [stackless.channel() for _ in range(nchannels)]
    received = [0]

    def waiter(ch):
        x = ch.receive()
        received[0] += x

    gc.collect()
    before = rss_bytes()
    t0 = time.perf_counter()
    for i in range(n):
        stackless.tasklet(waiter)(chans[i % nchannels])
    stackless.run()
    t1 = time.perf_counter()
    grown = rss_bytes() - before
    blocked = -sum(ch.balance for ch in chans)
    for i in range(n):
        chans[i % nchannels].send(1)
    stackless.run()
    t2 = time.perf_counter()
    if blocked != n or received[0] != n:
        raise AssertionError("blocked %d, received %d of %d" % (blocked, received[0], n))
    print("CPython %d.%d: %d tasklets blocked in %.2f s, woken and finished in %.2f s; "
          "RSS %.0f MiB, %.0f bytes per blocked tasklet"
          % (sys.version_info[:2] + (n, t1 - t0, t2 - t1, grown / 2**20, grown / n)))


if __name__ == "__main__":
    main()

"""Channel ping-pong: two tasklets pass an integer back and forth over two channels.

    python bench/pingpong.py [ROUND_TRIPS] [REPEATS]

Prints the median and the best time per round trip (one send and one receive in each
direction) over REPEATS runs, and checks the answer of every run.
"""
import statistics
import sys
import time

import stackless


def run_once(n):
    ping, pong = stackless.channel(), stackless.channel()

    def server():
        for _ in range(n):
            pong.send(ping.receive() + 1)

    def client(out):
        x = 0
        for _ in range(n):
            ping.send(x)
            x = pong.receive()
        out.append(x)

    out = []
    stackless.tasklet(server)()
    stackless.tasklet(client)(out)
    start = time.perf_counter()
    stackless.run()
    elapsed = time.perf_counter() - start
    if out != [n]:
        raise AssertionError("ping-pong computed %r, expected %d" % (out, n))
    return elapsed / n * 1e9


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    times = [run_once(n) for _ in range(repeats)]
    print("CPython %d.%d pingpong: median %.0f ns, best %.0f ns per round trip (%d x %d)"
          % (sys.version_info[:2] + (statistics.median(times), min(times), repeats, n)))


if __name__ == "__main__":
    main()

"""Pickling started tasklets: speed and size at call depth 1 and 10.

    python bench/pickling.py [N]

N tasklets (default 2,000) each blocked in channel.receive() at the bottom of a call chain
of the given depth are pickled together with their channel (one pickle.dumps of the list),
then restored (pickle.loads: rebuilding and validating every frame), then pickled one at a
time. Prints tasklets per second for each and pickle bytes per tasklet; best of 5.
"""
import pickle
import sys
import time

import stackless

ch = stackless.channel()


def chain(depth, payload):
    if depth > 1:
        return chain(depth - 1, payload) + 1
    return ch.receive() + payload


def blocked(n, depth):
    tasklets = [stackless.tasklet(chain)(depth, i) for i in range(n)]
    stackless.run()
    assert all(t.blocked for t in tasklets)
    return tasklets


def best(fn, repeat=5):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return min(times), result


def measure(n, depth):
    tasklets = blocked(n, depth)
    dump_s, data = best(lambda: pickle.dumps((tasklets, ch), pickle.HIGHEST_PROTOCOL))
    restored = []

    def load():
        world = pickle.loads(data)
        restored.append(world)
        return world

    load_s, world = best(load)
    one_s, _ = best(lambda: [pickle.dumps(t, pickle.HIGHEST_PROTOCOL) for t in tasklets])
    single = len(pickle.dumps(tasklets[0], pickle.HIGHEST_PROTOCOL))
    # the copies must work: feed one and check its result
    copies, channel = world
    channel.send(1000)
    for t in tasklets:
        t.kill()
    for w in restored:
        for t in w[0]:
            if t.alive:
                t.kill()
    return {
        "depth": depth, "n": n, "dump_per_s": n / dump_s, "load_per_s": n / load_s,
        "one_per_s": n / one_s, "bytes": len(data) / n, "single_bytes": single,
    }


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    print("CPython %d.%d, %d tasklets blocked in receive() at the bottom of the chain"
          % (sys.version_info[:2] + (n,)))
    print("| call depth | pickled together /s | restored /s | pickled one by one /s | "
          "bytes per tasklet (together) | bytes (one alone) |")
    print("|---|---|---|---|---|---|")
    for depth in (1, 10):
        r = measure(n, depth)
        print("| %d | %s | %s | %s | %s | %s |" % (
            depth, format(int(r["dump_per_s"]), ","), format(int(r["load_per_s"]), ","),
            format(int(r["one_per_s"]), ","), format(int(r["bytes"]), ","),
            format(r["single_bytes"], ",")))


if __name__ == "__main__":
    main()

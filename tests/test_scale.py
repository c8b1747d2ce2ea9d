"""Scale: 100,000 tasklets blocked in receive() at call depth 2, then all woken and finished.

Reports the RSS each blocked tasklet costs (see the "stackless measurements" section of the
pytest summary); it asserts only what the run did, never how fast or how small.
"""
import json

from conftest import report, run_python

PROGRAM = """
import gc, json, os, time
import stackless

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

N = 100000
ch = stackless.channel()
done = []

def inner(i):
    return ch.receive() + i

def outer(i):
    done.append(inner(i))

gc.collect()
before = rss()
t0 = time.perf_counter()
tasklets = [stackless.tasklet(outer)(i) for i in range(N)]
stackless.run()
blocked = -ch.balance
after = rss()
t1 = time.perf_counter()
stack_bytes = sum(t._stack_bytes for t in tasklets[:1000]) / 1000
for i in range(N):
    ch.send(1)
stackless.run()
t2 = time.perf_counter()
print(json.dumps({"blocked": blocked, "alive": sum(t.alive for t in tasklets),
                  "done": len(done), "total": sum(done),
                  "bytes_per_tasklet": (after - before) / N, "stack_bytes": stack_bytes,
                  "create_block_s": t1 - t0, "wake_finish_s": t2 - t1}))
"""


def test_100000_tasklets_blocked_at_depth_2():
    proc = run_python(PROGRAM, timeout=600)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    n = 100000
    assert r["blocked"] == n
    assert r["alive"] == 0 and r["done"] == n
    assert r["total"] == sum(range(n)) + n
    report("100,000 tasklets blocked in receive() at depth 2: %.0f bytes RSS each "
           "(saved C stack %.0f bytes); create+block %.2f s, wake+finish %.2f s"
           % (r["bytes_per_tasklet"], r["stack_bytes"], r["create_block_s"], r["wake_finish_s"]))

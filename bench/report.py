"""Write docs/benchmarks.md from the JSON results of bench/run.py (one file per CPython
version) and the lines bench/million.py printed.

    python bench/report.py OUT.md RESULTS.json... [--million FILE]
"""
import json
import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))
from run import table  # noqa: E402

# Stackless Python 3.7.5 against asyncio on CPython 3.12, same machine kind (issue 4)
TARGETS = {
    "pingpong": 71, "ring": 116, "spawn_idle": 3.1, "daisy_chain": 9.8, "sieve": 27,
    "schedule_rr": 15, "fanout": 66, "recursion": 8.1,
}


def main():
    args = sys.argv[1:]
    million = None
    if "--million" in args:
        i = args.index("--million")
        million = args[i + 1]
        del args[i:i + 2]
    out, files = args[0], args[1:]
    runs = [json.load(open(f)) for f in files]
    lines = ["# Benchmarks", "",
             "Made by `scripts/bench.sh` (which runs `bench/run.py` on each CPython version and "
             "`bench/million.py`). Times are nanoseconds per operation, the median of %d runs, "
             "each run a fresh process; bytes are RSS growth per task blocked in `spawn_idle`. "
             "A ratio is the peer's figure divided by this module's: how many times slower (or "
             "bigger) the peer is." % (runs[0]["repeats"] if runs else 0), "",
             "Peers: **gevent** (greenlets, `gevent.queue.Channel`, a rendezvous channel), "
             "**asyncio** (tasks, `asyncio.Queue(maxsize=1)` as the channel), **threads** "
             "(`threading.Thread`, `queue.Queue(maxsize=1)` as the channel). Slow peers run "
             "smaller instances of a workload (sizes below); results are per operation.", ""]
    if runs:
        lines += ["Machine: %s. Date: %s." % (runs[0]["machine"], runs[0]["date"]), ""]
    for r in runs:
        v = r["versions"]
        lines += ["## CPython %s (gevent %s, greenlet %s)" % (v["python"], v["gevent"],
                                                            v["greenlet"]), "",
                  table(r["results"], r["runtimes"], r["workloads"]), ""]
        res = r["results"]
        if "stackless" in res and "asyncio" in res:
            cells = []
            for w in r["workloads"]:
                a = res["asyncio"].get(w, {}).get("ns_per_op")
                s = res["stackless"].get(w, {}).get("ns_per_op")
                if a and s:
                    got = a / s
                    cells.append("%s %.1f× (target %s×%s)" % (
                        w, got, TARGETS[w], "" if got >= TARGETS[w] else ", missed"))
            lines += ["Against asyncio, targets from Stackless 3.7.5: " + "; ".join(cells) + ".",
                      ""]
    if runs:
        lines += ["## Sizes", "", "| workload | " + " | ".join(runs[0]["runtimes"]) + " |",
                  "|---|" + "---|" * len(runs[0]["runtimes"])]
        for w in runs[0]["workloads"]:
            lines.append("| %s | %s |" % (w, " | ".join(
                ", ".join(str(a) for a in runs[0]["results"][rt][w]["args"])
                for rt in runs[0]["runtimes"])))
        lines += ["", "pingpong (round trips), ring (tasks, rounds), spawn_idle and daisy_chain "
                  "(tasks), sieve (primes), schedule_rr (tasks, yields each), fanout (items, "
                  "workers), recursion (repeats of factorial(1000)//factorial(998)).", ""]
    if million:
        lines += ["## A million tasklets", "", "```"] + open(million).read().strip().splitlines() \
            + ["```", ""]
    with open(out, "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()

"""Run the benchmark workloads on this module and its peers, on the running CPython.

    python bench/run.py                 full sizes, median of 5 runs, prints the table
    python bench/run.py --smoke         tiny sizes, one run (CI keeps the suite alive)
    python bench/run.py --json F        also write the results to F (bench/report.py)
    python bench/run.py --runtimes stackless,asyncio --workloads pingpong,ring

Every (runtime, workload, run) is a fresh process, so that RSS readings and garbage from
one workload do not leak into the next. Each workload checks its own answer. For asyncio
and threads a channel is Queue(maxsize=1); for gevent it is gevent.queue.Channel.
Runtimes that are much slower run smaller instances of a workload (SIZES below); the
results are per operation, so they stay comparable.
"""
import argparse
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RUNTIMES = ["stackless", "gevent", "asyncio", "threads"]
WORKLOADS = ["pingpong", "ring", "spawn_idle", "daisy_chain", "sieve", "schedule_rr", "fanout",
             "recursion"]
UNITS = {
    "pingpong": "round trip", "ring": "hop", "spawn_idle": "task", "daisy_chain": "task",
    "sieve": "transfer", "schedule_rr": "yield", "fanout": "item", "recursion": "call",
}

# Arguments of each workload: the full size, then smaller ones for slow runtimes.
FULL = {
    "pingpong": (100_000,), "ring": (1000, 200), "spawn_idle": (100_000,),
    "daisy_chain": (100_000,), "sieve": (2000,), "schedule_rr": (1000, 200),
    "fanout": (100_000, 100), "recursion": (20,),
}
SIZES = {
    "stackless": FULL,
    "gevent": dict(FULL, sieve=(500,)),
    "asyncio": dict(FULL, pingpong=(20_000,), ring=(1000, 20), sieve=(500,),
                    fanout=(20_000, 100), recursion=(5,)),
    "threads": dict(FULL, pingpong=(10_000,), ring=(1000, 5), spawn_idle=(10_000,),
                    daisy_chain=(10_000,), sieve=(200,), schedule_rr=(1000, 20),
                    fanout=(5_000, 100), recursion=(1,)),
}
SMOKE = {
    "pingpong": (1000,), "ring": (50, 2), "spawn_idle": (1000,), "daisy_chain": (1000,),
    "sieve": (50,), "schedule_rr": (50, 5), "fanout": (1000, 10), "recursion": (1,),
}


def run_one(runtime, workload, args):
    """In the child: run one workload once and print its result as JSON."""
    sys.path.insert(0, HERE)
    module = importlib.import_module("rt_" + runtime)
    seconds, ops, bytes_per_task = getattr(module, workload)(*args)
    print(json.dumps({"seconds": seconds, "ops": ops, "bytes_per_task": bytes_per_task}))
    sys.stdout.flush()
    os._exit(0)  # leave blocked tasks and daemon threads behind


def measure(runtime, workload, args, timeout):
    cmd = [sys.executable, os.path.abspath(__file__), "--one", runtime, workload,
           json.dumps(list(args))]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError("%s %s failed:\n%s" % (runtime, workload, p.stderr[-2000:]))
    return json.loads(p.stdout.strip().splitlines()[-1])


def versions():
    out = {"python": platform.python_version()}
    for name in ("gevent", "greenlet"):
        try:
            out[name] = importlib.import_module(name).__version__
        except ImportError:
            out[name] = None
    return out


def machine():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%s, %d CPUs, %s %s" % (model, os.cpu_count() or 0, platform.system(),
                                   platform.release())


def fmt_ns(ns):
    return "%.0f" % ns if ns >= 10 else "%.1f" % ns


def table(results, runtimes, workloads):
    """Markdown table: ns per operation (and bytes per task) per runtime, and each peer's
    ratio to stackless (how many times slower, or bigger, the peer is)."""
    peers = [r for r in runtimes if r != "stackless"]
    head = "| workload (per) | " + " | ".join(runtimes) + " |" + "".join(
        " %s / stackless |" % r for r in peers)
    lines = [head, "|" + "---|" * (1 + len(runtimes) + len(peers))]
    base = results.get("stackless", {})
    rows = []
    for w in workloads:
        rows.append((w, "ns", "ns_per_op"))
        if w == "spawn_idle":
            rows.append((w, "bytes", "bytes_per_task"))
    for w, unit, key in rows:
        label = "%s (ns per %s)" % (w, UNITS[w]) if unit == "ns" else "%s (bytes per task)" % w
        cells, ratios = [], []
        for r in runtimes:
            v = results.get(r, {}).get(w, {}).get(key)
            cells.append("–" if v is None else (fmt_ns(v) if unit == "ns" else "%.0f" % v))
        b = base.get(w, {}).get(key)
        for r in runtimes:
            if r == "stackless":
                continue
            v = results.get(r, {}).get(w, {}).get(key)
            ratios.append("–" if v is None or not b else "%.1f×" % (v / b))
        lines.append("| %s | %s |%s" % (label, " | ".join(cells), "".join(" %s |" % x
                                                                     for x in ratios)))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--one", nargs=3, metavar=("RUNTIME", "WORKLOAD", "ARGS"))
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--repeats", type=int)
    ap.add_argument("--runtimes", default=",".join(RUNTIMES))
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--json")
    ap.add_argument("--timeout", type=float, default=600)
    opts = ap.parse_args()
    if opts.one:
        run_one(opts.one[0], opts.one[1], json.loads(opts.one[2]))
        return
    runtimes = [r for r in opts.runtimes.split(",") if r]
    workloads = [w for w in opts.workloads.split(",") if w]
    for name in runtimes + workloads:
        if name not in RUNTIMES + WORKLOADS:
            ap.error("unknown runtime or workload %r" % name)
    repeats = opts.repeats or (1 if opts.smoke else 5)
    results = {}
    sizes = {}
    started = time.time()
    for w in workloads:
        for r in runtimes:
            args = SMOKE[w] if opts.smoke else SIZES[r][w]
            runs = [measure(r, w, args, opts.timeout) for _ in range(repeats)]
            ns = statistics.median(x["seconds"] / x["ops"] * 1e9 for x in runs)
            mem = [x["bytes_per_task"] for x in runs if x["bytes_per_task"] is not None]
            results.setdefault(r, {})[w] = {
                "ns_per_op": ns, "bytes_per_task": statistics.median(mem) if mem else None,
                "args": list(args), "runs": len(runs)}
            sizes.setdefault(w, {})[r] = list(args)
            print("  %-11s %-9s %10s ns per %s%s" % (
                w, r, fmt_ns(ns), UNITS[w],
                ", %.0f bytes per task" % results[r][w]["bytes_per_task"] if mem else ""),
                flush=True)
    info = {"versions": versions(), "machine": machine(),
            "date": time.strftime("%Y-%m-%d"), "repeats": repeats, "smoke": opts.smoke,
            "seconds": round(time.time() - started, 1), "runtimes": runtimes,
            "workloads": workloads, "results": results}
    print()
    print("CPython %s, %s; median of %d run(s)" % (info["versions"]["python"], info["machine"],
                                                  repeats))
    print(table(results, runtimes, workloads))
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump(info, f, indent=1)


if __name__ == "__main__":
    main()

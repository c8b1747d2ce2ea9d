"""Checkpoint a running simulation, kill it with SIGKILL, resume it; then move it to Dask.

    python examples/checkpoint_demo.py [--actors 10000] [--steps 40] [--every 10] [--no-dask]

1. Runs the simulation (examples/actors.py: two groups of actor tasklets talking over
   channels) without interruption and prints a digest of its final state.
2. Runs it again in a child process that writes a checkpoint (every tasklet and channel,
   pickled by stackless.migrate) every N steps, and kills that child with SIGKILL right
   after its second checkpoint.
3. Restores the last checkpoint in a fresh process and runs it to the end: same digest.
4. Restores the checkpoint once more and ships each group to its own Dask worker (a
   LocalCluster with two worker processes; `--scheduler ADDRESS` uses a real cluster), which
   finish the run there: same digest. Skipped when dask.distributed is not installed.
"""
import argparse
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import stackless  # noqa: E402
from stackless import migrate  # noqa: E402

import actors  # noqa: E402


def make_world(n):
    return [actors.Group(0, n // 2), actors.Group(n // 2, n - n // 2)]


def digest(groups):
    return hashlib.sha256(repr([g.reports for g in groups]).encode()).hexdigest()[:16]


def step_all(groups, start, stop, on_checkpoint=None, every=0):
    for step in range(start, stop):
        for g in groups:
            g.step(step)
        if every and on_checkpoint and (step + 1) % every == 0 and step + 1 < stop:
            on_checkpoint(step + 1)


def save(path, groups, step, stop):
    tasklets = [t for g in groups for t in g.tasklets]
    channels = [c for g in groups for c in g.channels()]
    extra = {"step": step, "stop": stop, "groups": [(actors.pack(g), len(g.inboxes))
                                                    for g in groups]}
    return migrate.checkpoint(path, tasklets, channels, **extra)


def load(path):
    world = migrate.restore(path)
    groups, t0, c0 = [], 0, 0
    for packed, size in world.extra["groups"]:
        part = migrate.World(world.tasklets[t0:t0 + size], world.channels[c0:c0 + size + 1],
                             packed)
        groups.append(actors.unpack(part))
        t0 += size
        c0 += size + 1
    return groups, world.extra["step"], world.extra["stop"]


def finish(groups):
    for g in groups:
        for inbox in g.inboxes:
            inbox.send((None, None))  # each actor returns: nothing is left blocked


def child(path, n, steps, every):
    groups = make_world(n)

    def checkpoint(step):
        size = save(path, groups, step, steps)
        print("checkpoint at step %d: %d tasklets, %.1f MB" % (
            step, n, size / 1e6), flush=True)

    step_all(groups, 0, steps, checkpoint, every)
    print("child finished (it should have been killed)", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--actors", type=int, default=10000)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--no-dask", action="store_true")
    ap.add_argument("--scheduler", help="address of a running Dask scheduler")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.actors, args.steps, args.every)

    n, steps, every = args.actors, args.steps, args.every
    t = time.perf_counter()
    groups = make_world(n)
    step_all(groups, 0, steps)
    expected = digest(groups)
    finish(groups)
    print("1. uninterrupted: %d actors, %d steps in %.2f s, digest %s" % (
        n, steps, time.perf_counter() - t, expected))

    workdir = tempfile.mkdtemp(prefix="stackless-ckpt-")
    path = os.path.join(workdir, "world.ckpt")
    proc = subprocess.Popen([sys.executable, __file__, "--child", path, "--actors", str(n),
                             "--steps", str(steps), "--every", str(every)],
                            stdout=subprocess.PIPE, text=True)
    seen = 0
    for line in proc.stdout:
        print("   child: " + line.rstrip())
        seen += line.startswith("checkpoint")
        if seen == 2:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    print("2. child killed by SIGKILL (exit status %d)" % proc.returncode)

    code = ("import sys; sys.path.insert(0, %r); import checkpoint_demo as d; "
            "g, s, e = d.load(%r); d.step_all(g, s, e); print(s, d.digest(g)); d.finish(g)"
            % (HERE, path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    resumed_from, got = int(out[0]), out[1]
    print("3. resumed from the checkpoint of step %d in a new process: digest %s (%s)" % (
        resumed_from, got, "same" if got == expected else "DIFFERENT"))
    ok = got == expected

    if not args.no_dask:
        ok = run_dask(path, expected, args.scheduler) and ok
    os.unlink(path)
    os.rmdir(workdir)
    return 0 if ok else 1


def run_dask(path, expected, scheduler):
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        print("4. skipped: dask.distributed is not installed (pip install "
              "'stackless-cpython[dask]')")
        return True
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [HERE] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    try:
        workers = sorted(client.scheduler_info()["workers"])
        groups, step, stop = load(path)
        futures = []
        for i, g in enumerate(groups):
            futures.append(migrate.run_on_dask(
                client, g.tasklets, g.channels(), finish=actors.continue_shipped,
                workers=[workers[i % len(workers)]], step=step, stop=stop,
                **actors.pack(g)))
        for g in groups:
            for t in g.tasklets:
                t.kill()  # the groups live on in the workers now
        results = client.gather(futures)
        for g, reports in zip(groups, results):
            g.reports = reports
        got = digest(groups)
        print("4. from step %d on, group 1 ran on %s and group 2 on %s: digest %s (%s)" % (
            step, workers[0], workers[1 % len(workers)], got,
            "same" if got == expected else "DIFFERENT"))
        return got == expected
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


if __name__ == "__main__":
    sys.exit(main())

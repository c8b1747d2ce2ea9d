"""Checkpoint tasklets to a file, and move paused tasklets to another process or machine.

    from stackless import migrate

    migrate.checkpoint("world.ckpt", tasklets, channels, step=n)   # atomic write
    world = migrate.restore("world.ckpt")       # tasklets blocked on their channels again
    world.extra["step"]

    result = migrate.run_in_process(tasklets, channels, finish=summarise)   # multiprocessing
    result = migrate.run_on_dask(client, tasklets, channels, finish=summarise)

A set of tasklets travels with the channels they wait on; pickled together, each blocked
tasklet is blocked on its channel again after loading, each paused one is paused. In the
other process `run_*` puts paused tasklets in the run queue, runs the scheduler until
nothing is runnable and returns `finish(world)` (a function importable by name there, whose
result must pickle). The tasklets' code must be importable in that process by the same
module names (functions that cannot be imported travel by value).

Unpickling runs code, like any pickle: load only checkpoints you wrote yourself.
"""
import os
import pickle
import tempfile

import stackless

__all__ = ["World", "dumps", "loads", "checkpoint", "restore", "resume", "run_in_process",
           "run_on_dask"]


class World:
    """What a checkpoint holds: tasklets, channels and extra values by name."""

    def __init__(self, tasklets, channels, extra):
        self.tasklets = list(tasklets)
        self.channels = list(channels)
        self.extra = dict(extra)

    def __repr__(self):
        return "<World: %d tasklets, %d channels, extra %s>" % (
            len(self.tasklets), len(self.channels), sorted(self.extra))


def dumps(tasklets, channels=(), **extra):
    """Pickle tasklets (none of them the current one) with channels and extra values."""
    return pickle.dumps((list(tasklets), list(channels), extra), protocol=pickle.HIGHEST_PROTOCOL)


def loads(data):
    """The World in data; its tasklets belong to the calling thread."""
    tasklets, channels, extra = pickle.loads(data)
    return World(tasklets, channels, extra)


def checkpoint(path, tasklets, channels=(), **extra):
    """Write a checkpoint to path atomically (a crash leaves the previous one intact).
    Returns its size in bytes."""
    data = dumps(tasklets, channels, **extra)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".checkpoint-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return len(data)


def restore(path):
    """The World saved at path."""
    with open(path, "rb") as f:
        return loads(f.read())


def resume(world):
    """Make the paused tasklets of world runnable (blocked ones wait for their partners)."""
    for t in world.tasklets:
        if t.alive and t.paused:
            t.insert()
    return world


def _run_shipped(data, finish):
    world = resume(loads(data))
    stackless.run()
    return finish(world) if finish is not None else None


def run_in_process(tasklets, channels=(), finish=None, mp_context=None, **extra):
    """Run the tasklets in a new process (multiprocessing); return finish(world) from there.
    The originals stay here untouched (kill them if they moved for good)."""
    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing

    data = dumps(tasklets, channels, **extra)
    ctx = multiprocessing.get_context(mp_context) if isinstance(mp_context, str) else mp_context
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(_run_shipped, data, finish).result()


def run_on_dask(client, tasklets, channels=(), finish=None, workers=None, **extra):
    """Run the tasklets on a Dask worker (client: a dask.distributed Client, connected to a
    LocalCluster or a real scheduler address); return a future of finish(world).
    workers: restrict to these worker addresses."""
    data = dumps(tasklets, channels, **extra)
    return client.submit(_run_shipped, data, finish, workers=workers, pure=False)

"""stackless.migrate: checkpoints to files, tasklets moved to other processes and to Dask."""
import os
import signal
import subprocess
import sys

import pytest

import stackless
from stackless import migrate

from conftest import ROOT, run_python

EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(EXAMPLES))

import actors  # noqa: E402


def test_checkpoint_restores_blocked_tasklets_on_their_channels(tmp_path):
    group = actors.Group(0, 50)
    actors.run_steps(group, 0, 3)
    path = tmp_path / "g.ckpt"
    size = migrate.checkpoint(path, group.tasklets, group.channels(), step=3, **actors.pack(group))
    assert size == path.stat().st_size > 0
    world = migrate.restore(path)
    assert world.extra["step"] == 3 and len(world.tasklets) == 50
    assert all(t.blocked for t in world.tasklets)
    copy = actors.unpack(world)
    actors.run_steps(copy, 3, 6)
    actors.run_steps(group, 3, 6)
    assert copy.reports == group.reports
    for g in (group, copy):
        for inbox in g.inboxes:
            inbox.send((None, None))
    assert not any(t.alive for t in group.tasklets + copy.tasklets)


def test_checkpoint_write_is_atomic(tmp_path):
    path = tmp_path / "c.ckpt"
    migrate.checkpoint(path, [], [], n=1)
    before = path.read_bytes()

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        migrate.checkpoint(path, [], [], bad=Unpicklable())
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.ckpt"]


# The next two run in a program of their own: the thread pools multiprocessing and Dask
# leave behind would keep this process's deadlock detection from ever firing (a thread that
# blocks its last tasklet sleeps while another thread could still wake it).
def run_program(source):
    proc = run_python(source, env={"STACKLESS_EXAMPLES": str(EXAMPLES)}, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_run_in_another_process_gives_the_same_result():
    out = run_program("""
        import os, sys
        sys.path.insert(0, os.environ["STACKLESS_EXAMPLES"])
        import actors
        from stackless import migrate

        if __name__ == "__main__":
            group = actors.Group(0, 40)
            actors.run_steps(group, 0, 2)
            remote = migrate.run_in_process(group.tasklets, group.channels(),
                                            finish=actors.continue_shipped, mp_context="spawn",
                                            step=2, stop=5, **actors.pack(group))
            actors.run_steps(group, 2, 5)
            for inbox in group.inboxes:
                inbox.send((None, None))
            print(remote == group.reports, len(remote), os.getpid())
        """)
    same, n, _ = out.split()
    assert (same, n) == ("True", "40")


def test_demo_survives_sigkill_and_resumes_to_the_same_state():
    proc = run_python(None, "--actors", "2000", "--steps", "12", "--every", "4", "--no-dask",
                      script=EXAMPLES / "checkpoint_demo.py", timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert any("killed by SIGKILL (exit status %d)" % -signal.SIGKILL in l for l in lines)
    assert "(same)" in lines[-1] and "resumed from the checkpoint of step 8" in lines[-1]


def test_dask_workers_finish_the_run():
    pytest.importorskip("distributed")
    out = run_program("""
        import os, sys
        sys.path.insert(0, os.environ["STACKLESS_EXAMPLES"])
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in [os.environ["STACKLESS_EXAMPLES"], os.environ.get("PYTHONPATH")] if p)
        import actors
        from stackless import migrate
        from dask.distributed import Client, LocalCluster

        if __name__ == "__main__":
            with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                              dashboard_address=None) as cluster, Client(cluster) as client:
                workers = sorted(client.scheduler_info()["workers"])
                groups = [actors.Group(0, 30), actors.Group(30, 30)]
                for g in groups:
                    actors.run_steps(g, 0, 2)
                futures = [migrate.run_on_dask(client, g.tasklets, g.channels(),
                                               finish=actors.continue_shipped, workers=[w],
                                               step=2, stop=6, **actors.pack(g))
                           for g, w in zip(groups, workers)]
                remote = client.gather(futures)
                where = [list(client.who_has(f).values())[0][0] for f in futures]
            for g in groups:
                actors.run_steps(g, 2, 6)
                for inbox in g.inboxes:
                    inbox.send((None, None))
            print(len(workers), remote == [g.reports for g in groups], where[0] != where[1])
        """)
    # two workers, the same final states, each group on its own worker
    assert out.split() == ["2", "True", "True"]

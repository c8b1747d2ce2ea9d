"""Run an unmodified threaded program on tasklets in one OS thread:

    python -m stacklesslib.magic script.py [args...]

monkeypatch.patch_all() first (threads become tasklets; sleep, sockets, select, locks and
queues block tasklets), then the script runs as __main__ in a tasklet under the main loop,
which ends once the script and its non-daemon threads have finished.
"""
import runpy
import sys

from stacklesslib import main, monkeypatch, threads


def run_script(path, argv):
    monkeypatch.patch_all()
    sys.argv = [path] + list(argv)

    def program():
        try:
            runpy.run_path(path, run_name="__main__")
        finally:
            for t in threads.non_daemon_threads():
                t.join()

    return main.run(program)


def _main():
    if len(sys.argv) < 2:
        print("usage: python -m stacklesslib.magic script.py [args...]", file=sys.stderr)
        return 2
    try:
        run_script(sys.argv[1], sys.argv[2:])
    except SystemExit as e:
        return e.code
    return 0


if __name__ == "__main__":
    sys.exit(_main())

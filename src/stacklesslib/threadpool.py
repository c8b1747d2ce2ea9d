"""Blocking calls on worker threads, while only the calling tasklet waits.

    data = call_on_thread(blocking_function, arg)   # other tasklets run meanwhile

The workers are real OS threads made with `_thread` and fed through the C `SimpleQueue`,
so that monkeypatching `threading` and `queue` (which makes them tasklets) leaves them
real. The result comes back through the main loop's event queue (call_soon_threadsafe wakes
the loop), so the main loop must run.
"""
import _queue
import _thread

import stackless

from stacklesslib.main import event_queue

MAX_WORKERS = 16

_jobs = _queue.SimpleQueue()
_lock = _thread.allocate_lock()
_start_new_thread = _thread.start_new_thread  # the real one, also after patch_thread()
_workers = 0
_idle = 0
_STOP = object()


def _worker():
    global _workers, _idle
    while True:
        job = _jobs.get()
        with _lock:
            _idle -= 1
        if job is _STOP:
            with _lock:
                _workers -= 1
            return
        func, args, kwargs, deliver = job
        try:
            outcome = (True, func(*args, **kwargs))
        except BaseException as e:  # noqa: B902 (handed to the waiting tasklet)
            outcome = (False, e)
        event_queue.call_soon_threadsafe(deliver, outcome)
        del job, func, args, kwargs, deliver, outcome
        with _lock:
            _idle += 1


def _submit(job):
    global _workers, _idle
    with _lock:
        start = _idle == 0 and _workers < MAX_WORKERS
        if start:
            _workers += 1
            _idle += 1
    if start:
        _start_new_thread(_worker, ())
    _jobs.put(job)


def call_on_thread(func, *args, **kwargs):
    """func(*args, **kwargs) on a worker thread; its result or exception, here."""
    ch = stackless.channel()
    ch.preference = 1

    def deliver(outcome):
        if ch.balance < 0:
            ch.send(outcome)

    _submit((func, args, kwargs, deliver))
    ok, value = ch.receive()
    if ok:
        return value
    raise value


def shutdown(wait=True):
    """Stop the idle worker threads (new ones start on the next call)."""
    import time

    with _lock:
        n = _workers
    for _ in range(n):
        _jobs.put(_STOP)
    sleep = getattr(time, "real_sleep", time.sleep)  # (the thread's, even when patched)
    while wait and _workers:
        sleep(0.001)

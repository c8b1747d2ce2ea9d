"""Blocking calls on worker threads, while only the calling tasklet waits.

    data = call_on_thread(blocking_function, arg)   # other tasklets run meanwhile

The result comes back through the main loop's event queue (call_soon_threadsafe wakes the
loop), so the main loop must run.
"""
import concurrent.futures
import os

import stackless

from stacklesslib.main import event_queue

_pool = None


def _executor():
    global _pool
    if _pool is None:
        _pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=min(32, (os.cpu_count() or 1) + 4),
            thread_name_prefix="stacklesslib")
    return _pool


def call_on_thread(func, *args, **kwargs):
    """func(*args, **kwargs) on a worker thread; its result or exception, here."""
    ch = stackless.channel()
    ch.preference = 1

    def done(future):
        # on the worker thread: hand the outcome to the main loop's tasklet side
        event_queue.call_soon_threadsafe(deliver, future)

    def deliver(future):
        if ch.balance < 0:
            ch.send(future)

    future = _executor().submit(func, *args, **kwargs)
    future.add_done_callback(done)
    try:
        finished = ch.receive()
    except BaseException:
        future.cancel()
        raise
    return finished.result()


def shutdown(wait=True):
    """Stop the worker threads (they start again on the next call)."""
    global _pool
    if _pool is not None:
        _pool.shutdown(wait=wait)
        _pool = None

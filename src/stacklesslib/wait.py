"""Waiting for several things at once: tasklets, ValueEvents, futures ("waitables").

A waitable has `add_done_callback(cb)` and `remove_done_callback(cb)` and is done once it
calls cb(waitable). `WaitableTasklet` (and `ValueTasklet`, which keeps the result) makes a
tasklet one; `concurrent.futures.Future`s are waitables as they are.
"""
import collections
import threading

import stackless

from stacklesslib.errors import CancelledError
from stacklesslib.util import channel_wait


class WaitableTasklet(stackless.tasklet):
    """A tasklet that others can wait for: join(), and the waitable protocol."""

    def __init__(self, func=None, args=None, kwargs=None):
        super().__init__()
        self._callbacks = []
        self._done = False
        if func is not None:
            if args is None and kwargs is None:
                self.bind(self._wrap(func))  # set up later, by calling the tasklet
            else:
                self.bind(self._wrap(func), args or (), kwargs or {})

    def bind(self, func=None, args=None, kwargs=None):
        if func is not None and not getattr(func, "_waitable_wrapped", False):
            func = self._wrap(func)
        return super().bind(func, args, kwargs)

    def _wrap(self, func):
        def run(*args, **kwargs):
            try:
                return self._finish(func(*args, **kwargs), None)
            except stackless.TaskletExit:
                self._finish(None, CancelledError("the tasklet was killed"))
                raise
            except BaseException as e:  # noqa: B902 (kept for get())
                self._finish(None, e)
        run._waitable_wrapped = True
        return run

    def _finish(self, value, error):
        self._value, self._error, self._done = value, error, True
        callbacks, self._callbacks = self._callbacks, []
        for cb in callbacks:
            cb(self)
        return value

    def done(self):
        return self._done

    def add_done_callback(self, cb):
        if self._done:
            cb(self)
        else:
            self._callbacks.append(cb)

    def remove_done_callback(self, cb):
        if cb in self._callbacks:
            self._callbacks.remove(cb)

    def join(self, timeout=None):
        """Wait until the tasklet has finished; False on timeout."""
        return bool(wait([self], timeout))


class ValueTasklet(WaitableTasklet):
    """A WaitableTasklet whose result or exception get() hands out."""

    def get(self, timeout=None):
        if not self.join(timeout):
            from stacklesslib.errors import TimeoutError

            raise TimeoutError("the tasklet did not finish in time")
        if self._error is not None:
            raise self._error
        return self._value

    result = get


def iwait(waitables, timeout=None):
    """Yield the waitables as they become done (within timeout seconds in all)."""
    ch = stackless.channel()
    ch.preference = 1
    ready = collections.deque()

    owner = threading.get_ident()
    finished = []

    def cb(w):
        if finished:
            return  # a late future after the caller stopped waiting
        if threading.get_ident() != owner:
            # a future done on a worker thread: come back through the main loop
            from stacklesslib.main import event_queue

            event_queue.call_soon_threadsafe(cb, w)
            return
        ready.append(w)
        if ch.balance < 0:
            ch.send(None)

    waitables = list(waitables)
    for w in waitables:
        w.add_done_callback(cb)
    try:
        from stacklesslib.base import time

        end = None if timeout is None else time() + timeout
        for _ in range(len(waitables)):
            while not ready:
                left = None if end is None else end - time()
                if left is not None and left <= 0:
                    return
                try:
                    channel_wait(ch, left)
                except Exception:  # the timeout
                    return
            yield ready.popleft()
    finally:
        finished.append(True)
        for w in waitables:
            remove = getattr(w, "remove_done_callback", None)  # (futures have none)
            if remove is not None:
                remove(cb)


def wait(waitables, timeout=None, count=None):
    """The waitables done within timeout seconds (at most count of them)."""
    done = []
    for w in iwait(waitables, timeout):
        done.append(w)
        if count is not None and len(done) >= count:
            break
    return done


def any(waitables, timeout=None):  # noqa: A001 (stacklesslib's name)
    """The first waitable to be done, or None on timeout."""
    done = wait(waitables, timeout, 1)
    return done[0] if done else None


def all(waitables, timeout=None):  # noqa: A001
    """Whether all waitables were done within timeout."""
    waitables = list(waitables)
    return len(wait(waitables, timeout)) == len(waitables)

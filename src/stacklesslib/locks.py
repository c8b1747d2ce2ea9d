"""Locks, semaphores, conditions, events and barriers that block tasklets, not threads.

The semantics are those of `threading` (and of the published stacklesslib). A waiting
tasklet blocks on a channel of its own, so that a timeout (a timer of the main loop's event
queue) or a wake-up reaches exactly that tasklet. Waiters are woken in the order they came.
"""
import collections

import stackless

from stacklesslib.base import time
from stacklesslib.errors import AbortedError
from stacklesslib.main import event_queue

_TIMED_OUT = object()


def _wait(waiters, timeout=None):
    """Block the current tasklet in waiters until woken (True, or the value given) or until
    timeout seconds have passed (False). timeout None or < 0: no limit."""
    ch = stackless.channel()
    ch.preference = 1  # the waker goes on; the woken tasklet runs in its turn
    waiters.append(ch)
    handle = None
    if timeout is not None and timeout >= 0:
        def expire():
            if ch.balance < 0:
                ch.send(_TIMED_OUT)
        handle = event_queue.call_later(timeout, expire)
    try:
        value = ch.receive()
    except BaseException:
        _forget(waiters, ch)
        raise
    finally:
        if handle is not None:
            handle.cancel()
    if value is _TIMED_OUT:
        _forget(waiters, ch)
        return False
    return value


def _forget(waiters, ch):
    try:
        waiters.remove(ch)
    except ValueError:
        pass


def _wake_one(waiters, value=True):
    """Wake the oldest waiter still waiting; whether there was one."""
    while waiters:
        ch = waiters.popleft()
        if ch.balance < 0:
            ch.send(value)
            return True
    return False


class Lock:
    def __init__(self):
        self._owner = None  # the tasklet holding it (a Lock may be released by another)
        self._waiters = collections.deque()

    def acquire(self, blocking=True, timeout=-1):
        if not blocking and timeout != -1:
            raise ValueError("can't specify a timeout for a non-blocking call")
        if self._owner is None and not self._waiters:
            self._owner = stackless.getcurrent()
            return True
        if not blocking:
            return False
        if _wait(self._waiters, timeout):
            return True  # handed over by release(): we own it now
        return False

    def release(self):
        if self._owner is None:
            raise RuntimeError("release unlocked lock")
        self._owner = None
        self._hand_over()

    def _hand_over(self):
        while self._waiters:
            ch = self._waiters.popleft()
            if ch.balance < 0:
                self._owner = ch.queue
                ch.send(True)
                return

    def locked(self):
        return self._owner is not None

    __enter__ = acquire

    def __exit__(self, *exc):
        self.release()

    def __repr__(self):
        return "<%s %s>" % (type(self).__name__, "locked" if self.locked() else "unlocked")


class RLock(Lock):
    def __init__(self):
        super().__init__()
        self._count = 0

    def acquire(self, blocking=True, timeout=-1):
        me = stackless.getcurrent()
        if self._owner is me:
            self._count += 1
            return True
        if super().acquire(blocking, timeout):
            self._count = 1
            return True
        return False

    __enter__ = acquire

    def release(self):
        if self._owner is not stackless.getcurrent():
            raise RuntimeError("cannot release un-acquired lock")
        self._count -= 1
        if self._count == 0:
            self._owner = None
            self._hand_over()
            if self._owner is not None:
                self._count = 1

    def _is_owned(self):
        return self._owner is stackless.getcurrent()


class Semaphore:
    def __init__(self, value=1):
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        self._value = value
        self._waiters = collections.deque()

    def acquire(self, blocking=True, timeout=None):
        if not blocking and timeout is not None:
            raise ValueError("can't specify timeout for non-blocking acquire")
        if self._value > 0 and not self._waiters:
            self._value -= 1
            return True
        if not blocking:
            return False
        return bool(_wait(self._waiters, timeout))  # a release handed its unit over

    __enter__ = acquire

    def release(self, n=1):
        if n < 1:
            raise ValueError("n must be one or more")
        for _ in range(n):
            if not _wake_one(self._waiters):
                self._value += 1

    def __exit__(self, *exc):
        self.release()


class BoundedSemaphore(Semaphore):
    def __init__(self, value=1):
        super().__init__(value)
        self._initial = value

    def release(self, n=1):
        if self._value + n > self._initial and not self._waiters:
            raise ValueError("Semaphore released too many times")
        super().release(n)


class NLCondition:
    """A condition variable without a lock: tasklets switch only where they block, so a
    check of the predicate and the wait() after it cannot be interleaved with a notify."""

    def __init__(self):
        self._waiters = collections.deque()

    def wait(self, timeout=None):
        return bool(_wait(self._waiters, timeout))

    def wait_for(self, predicate, timeout=None):
        end = None if timeout is None else time() + timeout
        result = predicate()
        while not result:
            wait = None if end is None else end - time()
            if wait is not None and wait <= 0:
                break
            self.wait(wait)
            result = predicate()
        return result

    def notify(self, n=1):
        for _ in range(n):
            if not _wake_one(self._waiters):
                break

    def notify_all(self):
        self.notify(len(self._waiters))

    notifyAll = notify_all


class Condition(NLCondition):
    """threading.Condition for tasklets: NLCondition with the lock held around it."""

    def __init__(self, lock=None):
        super().__init__()
        self._lock = lock if lock is not None else RLock()
        self.acquire = self._lock.acquire
        self.release = self._lock.release

    def __enter__(self):
        return self._lock.__enter__()

    def __exit__(self, *exc):
        return self._lock.__exit__(*exc)

    def _owned(self):
        lock = self._lock
        if isinstance(lock, RLock):
            return lock._owner is stackless.getcurrent()
        return lock.locked()

    def wait(self, timeout=None):
        if not self._owned():
            raise RuntimeError("cannot wait on un-acquired lock")
        lock = self._lock
        saved = lock._count if isinstance(lock, RLock) else None
        if saved is not None:
            lock._count = 1
        lock.release()
        try:
            return super().wait(timeout)
        finally:
            lock.acquire()
            if saved is not None:
                lock._count = saved

    def notify(self, n=1):
        if not self._owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        super().notify(n)


class Event:
    def __init__(self):
        self._flag = False
        self._waiters = collections.deque()

    def is_set(self):
        return self._flag

    isSet = is_set

    def set(self):
        self._flag = True
        while _wake_one(self._waiters):
            pass

    def clear(self):
        self._flag = False

    def wait(self, timeout=None):
        if self._flag:
            return True
        return bool(_wait(self._waiters, timeout)) or self._flag


class BrokenBarrierError(RuntimeError):
    pass


class Barrier:
    def __init__(self, parties, action=None, timeout=None):
        if parties < 1:
            raise ValueError("parties must be > 0")
        self.parties = parties
        self._action = action
        self._timeout = timeout
        self._waiters = collections.deque()
        self.broken = False

    @property
    def n_waiting(self):
        return len(self._waiters)

    def wait(self, timeout=None):
        if self.broken:
            raise BrokenBarrierError
        index = len(self._waiters)
        if index + 1 == self.parties:
            if self._action is not None:
                try:
                    self._action()
                except BaseException:
                    self.abort()
                    raise
            while _wake_one(self._waiters, "passed"):
                pass
            return index
        result = _wait(self._waiters, self._timeout if timeout is None else timeout)
        if result != "passed":
            self.abort()
            raise BrokenBarrierError
        return index

    def abort(self):
        self.broken = True
        while _wake_one(self._waiters, "broken"):
            pass

    def reset(self):
        self.abort()
        self.broken = False


class ValueEvent(stackless.channel):
    """A channel on which waiters wait for one value: set(value) wakes them all with it,
    abort(exc, *args) raises in them. wait(timeout) raises TimeoutError after timeout."""

    def __init__(self, timeout=None, timeout_exception=None, *args):
        self.preference = 1
        self._timeout = timeout
        self._timeout_exception = timeout_exception
        self._timeout_args = args
        self.value = None
        self.is_set = False

    def set(self, value=None):
        self.value, self.is_set = value, True
        while self.balance < 0:
            self.send(value)

    def abort(self, exc=None, *args):
        if exc is None:
            exc = AbortedError
        while self.balance < 0:
            self.send_exception(exc, *args)

    def wait(self, timeout=None):
        if self.is_set:
            return self.value
        timeout = self._timeout if timeout is None else timeout
        if timeout is None:
            return self.receive()
        from stacklesslib.util import channel_wait

        return channel_wait(self, timeout)


def released(lock):
    """Context manager: lock released within the block, acquired again after it."""
    import contextlib

    @contextlib.contextmanager
    def manager():
        lock.release()
        try:
            yield
        finally:
            lock.acquire()

    return manager()

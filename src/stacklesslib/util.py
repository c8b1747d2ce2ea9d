"""Timeouts, waiting on a channel with a timeout, running a call on another tasklet, a
buffered channel, and tasklet-local storage."""
import collections
import contextlib
import weakref

import stackless

from stacklesslib.errors import CancelledError, TimeoutError
from stacklesslib.main import event_queue


class _Timeout(BaseException):
    """Thrown into a tasklet whose timeout fired; the timeout() that set it turns it into
    TimeoutError (a BaseException, so that `except Exception` in between lets it pass)."""


@contextlib.contextmanager
def timeout(delay, blocked=False, exc=None):
    """Raise TimeoutError (or exc) in the current tasklet if the block takes longer than
    delay seconds. blocked=True: only interrupt it while it waits on a channel."""
    if delay is None or delay < 0:
        yield
        return
    me = stackless.getcurrent()
    token = _Timeout()
    state = {"fired": False, "done": False}

    def fire():
        if state["done"] or not me.alive:
            return
        if blocked and not me.blocked:
            state["handle"] = event_queue.call_later(0.001, fire)
            return
        state["fired"] = True
        me.throw(token, pending=True)

    state["handle"] = event_queue.call_later(delay, fire)
    try:
        yield
    except _Timeout as e:
        if e is not token:
            raise
        raise (exc if exc is not None else TimeoutError("timed out after %g s" % delay))
    finally:
        state["done"] = True
        state["handle"].cancel()


def timeout_call(delay, func, *args, **kwargs):
    with timeout(delay):
        return func(*args, **kwargs)


def timeout_function(delay):
    """Decorator: the function raises TimeoutError when it runs longer than delay."""
    def decorate(func):
        def wrapper(*args, **kwargs):
            with timeout(delay):
                return func(*args, **kwargs)
        wrapper.__name__ = func.__name__
        wrapper.__qualname__ = func.__qualname__
        wrapper.__doc__ = func.__doc__
        return wrapper
    return decorate


def channel_wait(chan, timeout=None):
    """chan.receive(), raising TimeoutError after timeout seconds (None: no limit)."""
    if timeout is None:
        return chan.receive()
    with globals()["timeout"](timeout, blocked=True):
        return chan.receive()


def tasklet_call(func, *args, timeout=None, **kwargs):
    """Run func(*args, **kwargs) on a new tasklet and return its result here (its exception
    is raised here; if that tasklet is killed, CancelledError). On timeout the other
    tasklet is killed and TimeoutError raised."""
    result = stackless.channel()
    result.preference = 1

    def body():
        try:
            value = func(*args, **kwargs)
        except stackless.TaskletExit:
            outcome = (False, CancelledError("the tasklet running the call was killed"))
        except BaseException as e:  # noqa: B902 (handed back to the caller)
            outcome = (False, e)
        else:
            outcome = (True, value)
        if result.balance < 0:
            result.send(outcome)

    worker = stackless.tasklet(body)()
    try:
        ok, value = channel_wait(result, timeout)
    except BaseException:
        if worker.alive:
            worker.kill()
        raise
    if ok:
        return value
    raise value


def tasklet_new(func, *args, **kwargs):
    return stackless.tasklet(func)(*args, **kwargs)


def tasklet_run(func, *args, **kwargs):
    t = stackless.tasklet(func)(*args, **kwargs)
    t.run()
    return t


def send_throw(chan, exc, *args):
    chan.send_exception(exc, *args)


def tasklet_throw(t, exc, *args, pending=False):
    t.throw(exc(*args) if isinstance(exc, type) else exc, pending=pending)


class QueueChannel(stackless.channel):
    """A channel with a buffer: send() blocks only while max_len values wait unreceived
    (max_len None: never); receive() takes buffered values first."""

    def __init__(self, max_len=None):
        self.max_len = max_len
        self.buffer = collections.deque()

    @property
    def balance(self):
        return len(self.buffer) + stackless.channel.balance.__get__(self)

    def send(self, value):
        if stackless.channel.balance.__get__(self) < 0:
            return stackless.channel.send(self, value)
        if self.max_len is None or len(self.buffer) < self.max_len:
            self.buffer.append(value)
            return None
        return stackless.channel.send(self, value)

    def receive(self):
        if self.buffer:
            value = self.buffer.popleft()
            if stackless.channel.balance.__get__(self) > 0:
                self.buffer.append(stackless.channel.receive(self))  # a blocked sender's
            return value
        return stackless.channel.receive(self)


class local:
    """Attributes per tasklet, as threading.local is per thread."""

    def __init__(self):
        object.__setattr__(self, "_dicts", weakref.WeakKeyDictionary())

    def _dict(self):
        dicts = object.__getattribute__(self, "_dicts")
        me = stackless.getcurrent()
        d = dicts.get(me)
        if d is None:
            d = dicts[me] = {}
        return d

    def __getattr__(self, name):
        try:
            return object.__getattribute__(self, "_dict")()[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        object.__getattribute__(self, "_dict")()[name] = value

    def __delattr__(self, name):
        try:
            del object.__getattribute__(self, "_dict")()[name]
        except KeyError:
            raise AttributeError(name) from None

"""threading.Thread on tasklets (what monkeypatch.patch_threading() installs).

A Thread is a tasklet: start() makes it runnable, join() blocks only the joining tasklet.
current_thread() inside one returns its Thread; elsewhere the real current thread.
"""
import itertools
import sys
import threading as _threading

import stackless

from stacklesslib import locks

_real_current_thread = _threading.current_thread
_real_enumerate = _threading.enumerate
_counter = itertools.count(1)
_running = {}  # tasklet -> Thread


class Thread:
    def __init__(self, group=None, target=None, name=None, args=(), kwargs=None, *,
                 daemon=None):
        assert group is None, "group argument must be None for now"
        self._target, self._args, self._kwargs = target, args, kwargs or {}
        self._name = str(name) if name is not None else "Thread-%d" % next(_counter)
        self._daemon = daemon if daemon is not None else current_thread().daemon
        self._started = False
        self._done = locks.Event()
        self._tasklet = None

    def start(self):
        if self._started:
            raise RuntimeError("threads can only be started once")
        self._started = True
        self._tasklet = stackless.tasklet(self._bootstrap)()
        _running[self._tasklet] = self

    def _bootstrap(self):
        try:
            self.run()
        except SystemExit:
            pass
        except BaseException:  # noqa: B902 (reported as threading reports it)
            exc_type, exc, tb = sys.exc_info()
            _threading.excepthook(_threading.ExceptHookArgs((exc_type, exc, tb, self)))
        finally:
            _running.pop(self._tasklet, None)
            self._done.set()

    def run(self):
        try:
            if self._target is not None:
                self._target(*self._args, **self._kwargs)
        finally:
            del self._target, self._args, self._kwargs

    def join(self, timeout=None):
        if not self._started:
            raise RuntimeError("cannot join thread before it is started")
        if self._tasklet is stackless.getcurrent():
            raise RuntimeError("cannot join current thread")
        self._done.wait(timeout)

    def is_alive(self):
        return self._started and not self._done.is_set()

    @property
    def name(self):
        return self._name

    @name.setter
    def name(self, value):
        self._name = str(value)

    @property
    def ident(self):
        return id(self._tasklet) if self._tasklet is not None else None

    native_id = ident

    @property
    def daemon(self):
        return self._daemon

    @daemon.setter
    def daemon(self, value):
        if self._started:
            raise RuntimeError("cannot set daemon status of active thread")
        self._daemon = bool(value)

    def isDaemon(self):
        return self.daemon

    def setDaemon(self, value):
        self.daemon = value

    def getName(self):
        return self.name

    def setName(self, value):
        self.name = value

    def __repr__(self):
        status = "started" if self.is_alive() else ("stopped" if self._started else "initial")
        return "<%s(%s, %s%s)>" % (type(self).__name__, self._name, status,
                                   " daemon" if self._daemon else "")


def current_thread():
    return _running.get(stackless.getcurrent()) or _real_current_thread()


def enumerate():  # noqa: A001 (threading's name)
    return _real_enumerate() + [t for t in _running.values() if t.is_alive()]


def active_count():
    return len(enumerate())


def non_daemon_threads():
    return [t for t in list(_running.values()) if not t.daemon and t.is_alive()]

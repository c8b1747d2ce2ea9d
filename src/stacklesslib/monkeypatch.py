"""Make the standard library's blocking calls block only the calling tasklet.

    from stacklesslib import monkeypatch
    monkeypatch.patch_all()       # time.sleep, socket, ssl, select (selectors), _thread,
                                  # threading, queue
    ...
    monkeypatch.unpatch_all()     # everything back as it was

The replaced objects stay reachable: `time.real_sleep`, `socket.real_socket`. A program
patched this way runs its work in tasklets under `stacklesslib.main.mainloop.run()`.
"""
import select as _select
import selectors
import socket as _socket
import time as _time

import stackless

from stacklesslib import app, threadpool  # noqa: F401 (it keeps the real _thread functions)
from stacklesslib import socket as _cosocket
from stacklesslib.main import mainloop

_saved = {}


def _save(module, name, value):
    key = (getattr(module, "__qualname__", None) or module.__name__, name)
    if key not in _saved:
        _saved[key] = (module, name, getattr(module, name))
    setattr(module, name, value)


def _sleep(seconds):
    if mainloop.running and stackless.getcurrent() is not stackless.getmain():
        return app.tasklet_sleep(seconds)
    return _saved[("time", "sleep")][2](seconds)


def patch_misc():
    """time.sleep blocks only the calling tasklet (the original: time.real_sleep)."""
    _save(_time, "sleep", _sleep)
    _time.real_sleep = _saved[("time", "sleep")][2]


def patch_socket():
    """socket.socket and friends become the cooperative versions of stacklesslib.socket."""
    _save(_socket, "socket", _cosocket.socket)
    _save(_socket, "SocketType", _cosocket.socket)
    _save(_socket, "socketpair", _cosocket.socketpair)
    _save(_socket, "create_connection", _cosocket.create_connection)
    _save(_socket, "getaddrinfo", _cosocket.getaddrinfo)
    _save(_socket, "gethostbyname", _cosocket.gethostbyname)
    _socket.real_socket = _cosocket._real_socket


def _cooperative():
    return mainloop.running and stackless.getcurrent() is not stackless.getmain()


def _fd_of(obj):
    return obj if isinstance(obj, int) else obj.fileno()


def _wait_any(watches, timeout):
    """Block the calling tasklet until one of the (fd, selectors event) pairs is ready or
    timeout seconds pass (None: no limit)."""
    from stacklesslib.errors import TimeoutError as _Timeout
    from stacklesslib.util import channel_wait

    ch = stackless.channel()
    ch.preference = 1

    def wake(mask):
        if ch.balance < 0:
            ch.send(None)

    watched = []
    try:
        for fd, event in watches:
            mainloop.watch(fd, event, wake)
            watched.append((fd, event))
        try:
            channel_wait(ch, timeout)
        except _Timeout:
            pass
    finally:
        for fd, event in watched:
            mainloop.unwatch(fd, event)


def _until_ready(check, watches, timeout):
    """check() (which does not block) until it reports something or timeout seconds (None:
    no limit) have passed, waiting cooperatively in between."""
    ready = check()
    if ready or timeout == 0:
        return ready
    deadline = None if timeout is None else _time.monotonic() + timeout
    while True:
        left = None if deadline is None else deadline - _time.monotonic()
        if left is not None and left <= 0:
            return ready
        _wait_any(watches, left)
        ready = check()
        if ready:
            return ready


def _cooperative_select(rlist, wlist, xlist, timeout=None):
    real = _saved[("select", "select")][2]
    if not _cooperative():
        return real(rlist, wlist, xlist, timeout)
    watches = [(_fd_of(o), selectors.EVENT_READ) for o in rlist]
    watches += [(_fd_of(o), selectors.EVENT_WRITE) for o in wlist]
    return _until_ready(lambda: real(rlist, wlist, xlist, 0), watches, timeout) or ([], [], [])


class _CooperativePoll:
    """select.poll() whose poll() blocks only the calling tasklet (under the main loop)."""

    _READ = getattr(_select, "POLLIN", 1) | getattr(_select, "POLLPRI", 2)
    _WRITE = getattr(_select, "POLLOUT", 4)

    def __init__(self):
        self._poll = _saved[("select", "poll")][2]()
        self._masks = {}

    def register(self, fd, eventmask=None):
        fd = _fd_of(fd)
        mask = self._READ | self._WRITE if eventmask is None else eventmask
        self._poll.register(fd, mask)
        self._masks[fd] = mask

    def modify(self, fd, eventmask):
        fd = _fd_of(fd)
        self._poll.modify(fd, eventmask)
        self._masks[fd] = eventmask

    def unregister(self, fd):
        fd = _fd_of(fd)
        self._poll.unregister(fd)
        del self._masks[fd]

    def poll(self, timeout=None):
        if timeout is not None and timeout < 0:
            timeout = None
        if not _cooperative():
            return self._poll.poll(timeout)
        watches = [(fd, selectors.EVENT_READ) for fd, m in self._masks.items() if m & self._READ]
        watches += [(fd, selectors.EVENT_WRITE)
                    for fd, m in self._masks.items() if m & self._WRITE]
        seconds = None if timeout is None else timeout / 1000.0
        return _until_ready(lambda: self._poll.poll(0), watches, seconds)


def patch_select():
    """select.select and select.poll() wait cooperatively (selectors.SelectSelector and
    PollSelector with them); the epoll, devpoll and kqueue based selectors are replaced by
    the poll based one (select.epoll and select.kqueue objects themselves still block the
    thread)."""
    _save(_select, "select", _cooperative_select)
    # (SelectSelector took its own reference to select.select when it was defined)
    _save(selectors.SelectSelector, "_select", staticmethod(_cooperative_select))
    if hasattr(_select, "poll"):
        _save(_select, "poll", _CooperativePoll)
        _save(selectors.PollSelector, "_selector_cls", _CooperativePoll)
    best = getattr(selectors, "PollSelector", selectors.SelectSelector)
    for name in ("DefaultSelector", "EpollSelector", "DevpollSelector", "KqueueSelector"):
        if hasattr(selectors, name):
            _save(selectors, name, best)


def patch_threading():
    """threading.Thread starts a tasklet; threading's locks, events, conditions and
    semaphores, threading.local and queue's queues block tasklets."""
    import queue
    import threading

    from stacklesslib import locks, threads, util

    for name, value in (("Thread", threads.Thread), ("Lock", locks.Lock),
                        ("RLock", locks.RLock), ("Condition", locks.Condition),
                        ("Semaphore", locks.Semaphore),
                        ("BoundedSemaphore", locks.BoundedSemaphore), ("Event", locks.Event),
                        ("Barrier", locks.Barrier), ("local", util.local),
                        ("current_thread", threads.current_thread),
                        ("currentThread", threads.current_thread),
                        ("enumerate", threads.enumerate),
                        ("active_count", threads.active_count),
                        ("activeCount", threads.active_count)):
        _save(threading, name, value)
    _save(queue, "SimpleQueue", queue._PySimpleQueue)


def patch_thread():
    """The low-level _thread module: start_new_thread() starts a tasklet and allocate_lock()
    makes a tasklet lock (threading, imported before, keeps its own references: see
    patch_threading)."""
    import _thread

    from stacklesslib import locks

    def start_new_thread(function, args, kwargs=None):
        t = stackless.tasklet(function)(*args, **(kwargs or {}))
        return id(t)

    for name, value in (("start_new_thread", start_new_thread), ("start_new", start_new_thread),
                        ("allocate_lock", locks.Lock), ("allocate", locks.Lock)):
        if hasattr(_thread, name):
            _save(_thread, name, value)


def patch_ssl():
    """SSLContext.wrap_socket() returns cooperative TLS sockets (stacklesslib.ssl)."""
    import ssl

    from stacklesslib import ssl as _cossl

    _save(ssl.SSLContext, "sslsocket_class", _cossl.SSLSocket)


def patch_all():
    patch_misc()
    patch_socket()
    patch_ssl()
    patch_select()
    patch_thread()
    patch_threading()


def unpatch_all():
    """Put back everything patch_*() replaced."""
    for module, name, value in reversed(list(_saved.values())):
        setattr(module, name, value)
    _saved.clear()


class Unpatched:
    """Context manager: the original time.sleep, select.select and select.poll within the
    block."""

    _names = (("time", "sleep"), ("select", "select"), ("select", "poll"))

    def __enter__(self):
        self._patched = {}
        for key in self._names:
            if key in _saved:
                module, name, original = _saved[key]
                self._patched[key] = getattr(module, name)
                setattr(module, name, original)
        return self

    def __exit__(self, *exc):
        for key, value in self._patched.items():
            module, name, _ = _saved[key]
            setattr(module, name, value)
        return False

"""Make the standard library's blocking calls block only the calling tasklet.

    from stacklesslib import monkeypatch
    monkeypatch.patch_all()       # time.sleep, socket, ssl, select (selectors), threading, queue
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

from stacklesslib import app
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


def _cooperative_select(rlist, wlist, xlist, timeout=None):
    real = _saved[("select", "select")][2]
    if not (mainloop.running and stackless.getcurrent() is not stackless.getmain()):
        return real(rlist, wlist, xlist, timeout)
    ready = real(rlist, wlist, xlist, 0)
    if any(ready) or timeout == 0:
        return ready
    ch = stackless.channel()
    ch.preference = 1
    watched = []

    def wake(mask):
        if ch.balance < 0:
            ch.send(None)

    def fd_of(obj):
        return obj if isinstance(obj, int) else obj.fileno()

    try:
        for objs, event in ((rlist, selectors.EVENT_READ), (wlist, selectors.EVENT_WRITE)):
            for obj in objs:
                mainloop.watch(fd_of(obj), event, wake)
                watched.append((fd_of(obj), event))
        from stacklesslib.util import channel_wait
        from stacklesslib.errors import TimeoutError as _Timeout

        try:
            channel_wait(ch, timeout)
        except _Timeout:
            return [], [], []
    finally:
        for fd, event in watched:
            mainloop.unwatch(fd, event)
    return real(rlist, wlist, xlist, 0)


def patch_select():
    """select.select waits cooperatively (selectors.SelectSelector with it); the epoll,
    poll and kqueue based selectors are replaced by the select based one (select.poll and
    select.epoll themselves still block the thread)."""
    _save(_select, "select", _cooperative_select)
    # (SelectSelector took its own reference to select.select when it was defined)
    _save(selectors.SelectSelector, "_select", staticmethod(_cooperative_select))
    for name in ("DefaultSelector", "PollSelector", "EpollSelector", "DevpollSelector",
                 "KqueueSelector"):
        if hasattr(selectors, name):
            _save(selectors, name, selectors.SelectSelector)


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
    patch_threading()


def unpatch_all():
    """Put back everything patch_*() replaced."""
    for module, name, value in reversed(list(_saved.values())):
        setattr(module, name, value)
    _saved.clear()


class Unpatched:
    """Context manager: the original time.sleep and select.select within the block."""

    _names = (("time", "sleep"), ("select", "select"))

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

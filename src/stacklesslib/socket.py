"""Cooperative sockets: blocking calls block only the calling tasklet.

`socket` is a subclass of the standard `socket.socket` whose file descriptor is always
non-blocking underneath; an operation that would block parks the tasklet until the main
loop's epoll reports the descriptor ready (or its timeout, `settimeout()`, expires with the
standard `TimeoutError`). Closing a socket wakes the tasklets waiting on it with
`OSError(EBADF)`; killing a waiting tasklet leaves the socket usable.
`stacklesslib.monkeypatch.patch_socket()` puts this class in the `socket` module.

Outside a running main loop (or in the tasklet that runs it) the calls block the thread as
the standard ones do.
"""
import errno
import selectors
import socket as _std

import stackless

from stacklesslib.main import mainloop

# the standard versions, kept before monkeypatch.patch_socket() replaces them
_real_socket = _std.socket
_real_socketpair = _std.socketpair
_real_getaddrinfo = _std.getaddrinfo
_real_gethostbyname = _std.gethostbyname
_poller = mainloop.poller
_READ, _WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE


def _cooperative():
    return mainloop.running and stackless.getcurrent() is not stackless.getmain()


def wait_fd(fd, event, timeout=None):
    """Block the current tasklet until fd may be ready for event (selectors.EVENT_READ or
    EVENT_WRITE), after a call on fd said it would block; TimeoutError after timeout
    seconds. A tasklet under the running main loop only."""
    if timeout is None:
        return _poller.wait(fd, event)
    from stacklesslib.errors import TimeoutError as _Timeout
    from stacklesslib.util import timeout as _timeout

    try:
        with _timeout(timeout, blocked=True):
            _poller.wait(fd, event)
    except _Timeout:
        raise TimeoutError("timed out") from None


def wait_ready(fd, event, timeout=None):
    """wait_fd() in a tasklet under the running main loop; elsewhere block the thread in a
    selector. TimeoutError after timeout seconds."""
    if _cooperative():
        wait_fd(fd, event, timeout)
        return
    with selectors.DefaultSelector() as sel:
        sel.register(fd, event)
        if not sel.select(timeout):
            raise TimeoutError("timed out")


def _closing(fd):
    """fd is about to be closed: wake whoever waits on it with EBADF."""
    _poller.closing(fd)
    mainloop.unwatch(fd)


class socket(_real_socket):
    __slots__ = ("_timeout",)

    def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
        super().__init__(family, type, proto, fileno)
        self._timeout = _std.getdefaulttimeout()
        super().setblocking(False)
        _poller.claim(self.fileno())

    # -- timeouts as the caller sees them; the descriptor stays non-blocking ---------------
    def settimeout(self, value):
        if value is not None and value < 0:
            raise ValueError("Timeout value out of range")
        self._timeout = value

    def gettimeout(self):
        return self._timeout

    def setblocking(self, flag):
        self._timeout = None if flag else 0.0

    @property
    def timeout(self):
        return self._timeout

    def _wait(self, event):
        wait_ready(self.fileno(), event, self._timeout)

    def _io(self, op, event, *args):
        """Run op(*args) until it does not say "would block", waiting between tries."""
        while True:
            try:
                return op(*args)
            except (BlockingIOError, InterruptedError):
                if self._timeout == 0.0:
                    raise
            self._wait(event)

    def accept(self):
        fd, addr = self._io(self._accept, _READ)
        sock = type(self)(self.family, self.type, self.proto, fileno=fd)
        if _std.getdefaulttimeout() is None and self.gettimeout():
            sock.setblocking(True)
        return sock, addr

    def connect(self, address):
        try:
            return super().connect(address)
        except (BlockingIOError, InterruptedError):
            if self._timeout == 0.0:
                raise
        self._wait(_WRITE)
        err = self.getsockopt(_std.SOL_SOCKET, _std.SO_ERROR)
        if err:
            raise OSError(err, errno.errorcode.get(err, "connect failed"))

    def connect_ex(self, address):
        try:
            self.connect(address)
            return 0
        except OSError as e:
            return e.errno or errno.EIO

    # the common calls without a timeout go straight to the poller's C versions
    def recv(self, bufsize, flags=0):
        if self._timeout is None:
            return _poller.recv(self.fileno(), bufsize, flags)
        return self._io(super().recv, _READ, bufsize, flags)

    def recv_into(self, buffer, nbytes=0, flags=0):
        if self._timeout is None:
            return _poller.recv_into(self.fileno(), buffer, nbytes, flags)
        return self._io(super().recv_into, _READ, buffer, nbytes, flags)

    def recvfrom(self, *args):
        return self._io(super().recvfrom, _READ, *args)

    def recvfrom_into(self, *args):
        return self._io(super().recvfrom_into, _READ, *args)

    def send(self, data, flags=0):
        if self._timeout is None:
            return _poller.send(self.fileno(), data, flags)
        return self._io(super().send, _WRITE, data, flags)

    def sendto(self, *args):
        return self._io(super().sendto, _WRITE, *args)

    def sendall(self, data, flags=0):
        if self._timeout is None:
            return _poller.sendall(self.fileno(), data, flags)
        view = memoryview(data).cast("B")
        sent, total = 0, len(view)
        while sent < total:
            sent += self._io(super().send, _WRITE, view[sent:], flags)

    def close(self):
        fd = self.fileno()
        if fd >= 0:
            _closing(fd)
        super().close()

    def detach(self):
        fd = self.fileno()
        if fd >= 0:
            _closing(fd)
        return super().detach()

    def dup(self):
        return type(self)(self.family, self.type, self.proto, fileno=_std.dup(self.fileno()))


def socketpair(family=_std.AF_UNIX, type=_std.SOCK_STREAM, proto=0):
    a, b = _real_socketpair(family, type, proto)
    return (socket(family, type, proto, a.detach()), socket(family, type, proto, b.detach()))


def create_connection(address, timeout=_std._GLOBAL_DEFAULT_TIMEOUT, source_address=None,
                      **kwargs):
    host, port = address
    err = None
    for family, type_, proto, _, sa in getaddrinfo(host, port, 0, _std.SOCK_STREAM):
        sock = None
        try:
            sock = socket(family, type_, proto)
            if timeout is not _std._GLOBAL_DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sa)
            return sock
        except OSError as e:
            err = e
            if sock is not None:
                sock.close()
    raise err if err is not None else OSError("getaddrinfo returns an empty list")


def getaddrinfo(*args, **kwargs):
    """DNS on a worker thread while only the calling tasklet waits."""
    if _cooperative():
        from stacklesslib.threadpool import call_on_thread

        return call_on_thread(_real_getaddrinfo, *args, **kwargs)
    return _real_getaddrinfo(*args, **kwargs)


def gethostbyname(name):
    if _cooperative():
        from stacklesslib.threadpool import call_on_thread

        return call_on_thread(_real_gethostbyname, name)
    return _real_gethostbyname(name)

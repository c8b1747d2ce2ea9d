"""Cooperative TLS sockets: ssl.SSLSocket whose blocking calls block only the calling tasklet.

`monkeypatch.patch_ssl()` makes every `SSLContext.wrap_socket()` return this class. The
descriptor stays non-blocking underneath; a TLS read, write or handshake that wants the
network waits through the main loop. The usual pattern works: a (cooperative) socket from
`socket.create_connection()` or `accept()`, then `context.wrap_socket(sock, ...)`, and
`context.wrap_socket(socket.socket(), ...)` then `connect()` (connect_ex) does the same.
"""
import errno as _errno
import os as _os
import selectors
import socket as _socket
import ssl as _ssl

from stacklesslib import socket as _cosocket

_READ, _WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE


class SSLSocket(_ssl.SSLSocket):
    def settimeout(self, value):
        if value is not None and value < 0:
            raise ValueError("Timeout value out of range")
        self._co_timeout = value
        _cosocket._real_socket.settimeout(self, 0.0)

    def gettimeout(self):
        return getattr(self, "_co_timeout", None)

    def setblocking(self, flag):
        self.settimeout(None if flag else 0.0)

    @property
    def timeout(self):
        return self.gettimeout()

    def _wait(self, event):
        if self.gettimeout() == 0.0:
            return False
        _cosocket.wait_ready(self.fileno(), event, self.gettimeout())
        return True

    def _retry(self, op, *args):
        while True:
            try:
                return op(*args)
            except _ssl.SSLWantReadError:
                if not self._wait(_READ):
                    raise
            except _ssl.SSLWantWriteError:
                if not self._wait(_WRITE):
                    raise
            except (BlockingIOError, InterruptedError):
                if not self._wait(_READ):
                    raise

    def read(self, len=1024, buffer=None):
        return self._retry(super().read, len, buffer)

    def write(self, data):
        return self._retry(super().write, data)

    def do_handshake(self, block=False):
        return self._retry(super().do_handshake)

    def recv(self, buflen=1024, flags=0):
        return self._retry(super().recv, buflen, flags)

    def recv_into(self, buffer, nbytes=None, flags=0):
        return self._retry(super().recv_into, buffer, nbytes, flags)

    def send(self, data, flags=0):
        while True:
            try:
                return super().send(data, flags)
            except _ssl.SSLWantReadError:
                if not self._wait(_READ):
                    raise
            except (_ssl.SSLWantWriteError, BlockingIOError, InterruptedError):
                if not self._wait(_WRITE):
                    raise

    def sendall(self, data, flags=0):
        view = memoryview(data).cast("B")
        sent = 0
        while sent < len(view):
            sent += self.send(view[sent:], flags)

    def _real_connect(self, addr, connect_ex):
        # ssl.SSLSocket's, with the TCP connect waiting cooperatively (the standard one
        # calls socket.connect on the non-blocking descriptor, which would raise)
        if self.server_side:
            raise ValueError("can't connect in server-side mode")
        if self._connected or self._sslobj is not None:
            raise ValueError("attempt to connect already-connected SSLSocket!")
        self._sslobj = self.context._wrap_socket(self, False, self.server_hostname,
                                                 owner=self, session=self._session)
        try:
            rc = self._tcp_connect(addr)
            if rc and not connect_ex:
                raise OSError(rc, _os.strerror(rc))
            if not rc:
                self._connected = True
                if self.do_handshake_on_connect:
                    self.do_handshake()
            return rc
        except (OSError, ValueError):
            self._sslobj = None
            raise

    def _tcp_connect(self, addr):
        rc = _cosocket._real_socket.connect_ex(self, addr)
        if rc in (_errno.EINPROGRESS, _errno.EAGAIN, _errno.EWOULDBLOCK):
            if not self._wait(_WRITE):
                return rc
            rc = self.getsockopt(_socket.SOL_SOCKET, _socket.SO_ERROR)
        return rc

    def accept(self):
        return self._retry(super().accept)

    def unwrap(self):
        return self._retry(super().unwrap)

    def close(self):
        fd = self.fileno()
        if fd >= 0:
            _cosocket._closing(fd)
        super().close()

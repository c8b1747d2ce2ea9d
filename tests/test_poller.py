"""The extension's poller (the C wait path of stacklesslib's sockets): its socket calls,
edge-triggered waits, descriptors closed behind its back, errors on bad arguments."""
import gc
import hashlib
import os
import selectors
import socket as _std
import threading
import time

import pytest

import _stackless
import stackless
from stacklesslib import app, main, util
from stacklesslib import socket as cosocket
from conftest import open_fds

READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE
poller = main.mainloop.poller


@pytest.fixture(autouse=True)
def no_leaks():
    before = open_fds()
    yield
    gc.collect()
    assert open_fds() == before, "file descriptors leaked"


def spawn(func, *args):
    return stackless.tasklet(func)(*args)


def wait_all(tasklets):
    while any(t.alive for t in tasklets):
        app.tasklet_sleep(0.001)


def test_large_transfers_in_both_directions():
    """sendall() of 4 MB parks on write edges; recv() beyond the 64 KiB copy buffer and
    recv_into() with nbytes; the bytes arrive intact."""
    payload = os.urandom(4 << 20)
    got = {}

    def reader(sock):
        h, total = hashlib.sha256(), 0
        buf = bytearray(10000)
        while total < len(payload):
            if total % 3 == 0:
                data = sock.recv(200000)  # larger than the copy buffer
            else:
                n = sock.recv_into(buf, 777)
                data = bytes(buf[:n])
            assert data
            h.update(data)
            total += len(data)
            if total < 200000:
                app.tasklet_sleep(0)  # slow at first: the writer fills the buffer
        got["digest"] = h.hexdigest()

    def body():
        a, b = cosocket.socketpair()
        t = spawn(reader, b)
        a.sendall(payload)
        assert a.send(b"") == 0
        wait_all([t])
        a.close()
        b.close()

    main.run(body)
    assert got["digest"] == hashlib.sha256(payload).hexdigest()


def test_many_tasklets_wait_on_one_socket_and_all_get_data_or_eof():
    received = []

    def reader(sock):
        received.append(sock.recv(1))

    def body():
        a, b = cosocket.socketpair()
        ts = [spawn(reader, a) for _ in range(3)]
        app.tasklet_sleep(0.001)
        assert all(t.blocked for t in ts)  # parked on the poller's channel
        b.sendall(b"xy")
        b.shutdown(_std.SHUT_WR)  # the third one reads end of file
        wait_all(ts)
        a.close()
        b.close()

    main.run(body)
    assert sorted(received) == [b"", b"x", b"y"]


def test_close_wakes_readers_and_writers_with_ebadf():
    errors = []

    def reader(sock):
        try:
            sock.recv(10)
        except OSError as e:
            errors.append(("r", e.errno))

    def writer(sock):
        try:
            while True:
                sock.sendall(b"x" * 65536)  # until the buffers are full, then it waits
        except OSError as e:
            errors.append(("w", e.errno))

    def body():
        a, b = cosocket.socketpair()
        ts = [spawn(reader, a), spawn(writer, a)]
        app.tasklet_sleep(0.01)
        assert all(t.blocked for t in ts)
        a.close()
        wait_all(ts)
        b.close()

    main.run(body)
    assert sorted(errors) == [("r", 9), ("w", 9)]


def test_a_descriptor_closed_behind_the_pollers_back_is_registered_again():
    """A socket closed without our close() (here: the standard one's) leaves its number
    marked registered; the next socket with that number claims it, so its waits work."""
    out = []

    def body():
        a, b = cosocket.socketpair()
        t = spawn(lambda: out.append(a.recv(1)))
        app.tasklet_sleep(0.001)
        b.sendall(b"1")
        wait_all([t])
        number = a.fileno()
        _std.socket.close(a)  # the kernel drops it from the epoll set; we are not told
        c, d = cosocket.socketpair()
        assert number in (c.fileno(), d.fileno())
        for sock, peer in ((c, d), (d, c)):
            t = spawn(lambda: out.append(sock.recv(1)))
            app.tasklet_sleep(0.001)
            peer.sendall(b"2")
            with util.timeout(5):
                wait_all([t])
        for s in (b, c, d):
            s.close()

    main.run(body)
    assert out == [b"1", b"2", b"2"]


def test_wait_reports_a_descriptor_that_is_ready_already():
    """The edge of data that came while nobody waited was used up; wait() (for callers
    doing their own I/O) re-arms and returns at once."""
    def body():
        a, b = cosocket.socketpair()
        t = spawn(a.recv, 1)
        app.tasklet_sleep(0.001)
        b.sendall(b"1")
        app.tasklet_sleep(0.001)  # t runs; the loop saw the edge
        assert not t.alive
        b.sendall(b"2")
        app.tasklet_sleep(0.005)  # the edge of "2" is reported with nobody waiting
        with util.timeout(5):
            poller.wait(a.fileno(), READ)
        assert a.recv(1) == b"2"
        a.close()
        b.close()

    main.run(body)


def test_timeout_and_kill_leave_the_socket_usable():
    def body():
        a, b = cosocket.socketpair()
        with pytest.raises(TimeoutError):
            cosocket.wait_fd(a.fileno(), READ, 0.01)
        t = spawn(a.recv, 1)
        app.tasklet_sleep(0.001)
        t.kill()
        b.sendall(b"z")
        assert a.recv(1) == b"z"
        a.close()
        b.close()

    main.run(body)


def test_outside_the_loop_the_calls_block_the_thread():
    a, b = cosocket.socketpair()
    timer = threading.Timer(0.05, b.sendall, (b"late",))
    timer.start()
    t0 = time.monotonic()
    assert a.recv(10) == b"late"
    assert time.monotonic() - t0 >= 0.04
    timer.join()
    a.close()
    b.close()


def test_bad_arguments_raise():
    with pytest.raises(TypeError):
        _stackless.poller(1)
    a, b = cosocket.socketpair()
    try:
        with pytest.raises(ValueError, match="negative buffersize in recv"):
            poller.recv(a.fileno(), -1)
        with pytest.raises(ValueError, match="buffer too small"):
            poller.recv_into(a.fileno(), bytearray(2), 5)
        with pytest.raises(TypeError):
            poller.recv_into(a.fileno(), b"read-only")
        with pytest.raises(TypeError):
            poller.send(a.fileno(), "text")
        with pytest.raises(TypeError):
            poller.recv("fd", 1)
        with pytest.raises(TypeError):
            poller.recv(a.fileno())
        with pytest.raises(ValueError, match="EVENT_READ"):
            poller.wait(a.fileno(), 3)
        with pytest.raises(OSError) as e:
            poller.recv(-1, 1)
        assert e.value.errno == 9
        with pytest.raises(TypeError):
            poller.poll("soon")
        assert poller.poll(0) == []
    finally:
        a.close()
        b.close()
    closed = a.fileno()
    assert closed == -1
    with pytest.raises(OSError) as e:
        a.recv(1)  # as the standard socket does
    assert e.value.errno == 9


def test_one_poll_at_a_time():
    """Two threads polling one poller would share its events buffer: the second is told."""
    p = _stackless.poller()
    r, w = os.pipe()
    p.watch(r)
    got = []

    def poll_in_thread():
        while True:
            try:
                got.append(p.poll(None))
                return
            except RuntimeError:  # the main thread's poll(0) was under way: again
                time.sleep(0.001)

    t = threading.Thread(target=poll_in_thread)
    t.start()
    refused = False
    deadline = time.monotonic() + 30
    while not refused and time.monotonic() < deadline:
        try:
            assert p.poll(0) == []  # the thread has not started polling yet
        except RuntimeError as e:
            refused = "already running" in str(e)
        time.sleep(0.001)
    os.write(w, b"x")
    t.join()
    assert refused and got == [[(r, READ)]]
    del p
    os.close(r)
    os.close(w)

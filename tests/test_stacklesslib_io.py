"""stacklesslib: cooperative sockets, monkeypatching, worker threads, waiting on many things.

Every test counts file descriptors before and after: nothing may leak, and no tasklet may
stay blocked (conftest checks the scheduler is idle afterwards)."""
import concurrent.futures
import errno
import os
import resource
import select
import selectors
import socket
import struct
import time

import pytest

import stackless
from stacklesslib import app, locks, main, monkeypatch, threadpool, wait
from stacklesslib import socket as cosocket
from conftest import open_fds


@pytest.fixture(autouse=True)
def no_leaks():
    before = open_fds()
    yield
    threadpool.shutdown()
    monkeypatch.unpatch_all()
    assert open_fds() == before, "file descriptors leaked"


def spawn(func, *args):
    return stackless.tasklet(func)(*args)


def listener():
    s = cosocket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(1024)
    return s


def echo_server(lsock, handlers):
    while True:
        try:
            conn, _ = lsock.accept()
        except OSError:
            return  # closed
        handlers.append(spawn(echo, conn))


def echo(conn):
    with conn:
        f = conn.makefile("rwb")
        try:
            for line in f:
                f.write(line.upper())
                f.flush()
        except (ConnectionError, OSError):
            pass
        finally:
            f.close()


def wait_all(tasklets):
    while any(t.alive for t in tasklets):
        app.tasklet_sleep(0.001)


def test_echo_server_with_many_clients():
    results = []

    def client(port, k):
        with cosocket.create_connection(("127.0.0.1", port)) as s:
            for i in range(5):
                s.sendall(b"msg %d %d\n" % (k, i))
                data = b""
                while not data.endswith(b"\n"):
                    data += s.recv(100)
                results.append(data)

    def body():
        lsock = listener()
        handlers = []
        server = spawn(echo_server, lsock, handlers)
        clients = [spawn(client, lsock.getsockname()[1], k) for k in range(50)]
        wait_all(clients)
        lsock.close()  # the accepting tasklet wakes with EBADF and returns
        wait_all(handlers + [server])

    main.run(body)
    assert sorted(results) == sorted(b"MSG %d %d\n" % (k, i) for k in range(50) for i in range(5))


def test_patch_all_makes_the_standard_modules_cooperative():
    log = []

    def sleeper(n):
        time.sleep(0.01 * n)  # the patched time.sleep
        log.append(n)

    def body():
        assert socket.socket is cosocket.socket and time.real_sleep is not time.sleep
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen()
        ts = [spawn(sleeper, n) for n in (3, 1, 2)]
        a, b = socket.socketpair()
        r, _, _ = select.select([a], [], [], 0.01)  # cooperative: nothing to read yet
        assert r == []
        b.sendall(b"x")
        r, _, _ = select.select([a], [], [], 1)
        assert r == [a] and a.recv(1) == b"x"
        with monkeypatch.Unpatched():
            assert time.sleep is time.real_sleep
        wait_all(ts)
        for s in (a, b, lsock):
            s.close()

    monkeypatch.patch_all()
    try:
        main.run(body)
    finally:
        monkeypatch.unpatch_all()
    assert log == [1, 2, 3]
    assert socket.socket is cosocket._real_socket and not hasattr(time.sleep, "__wrapped__")


def test_patched_poll_and_selectors_block_only_the_tasklet():
    ticks = []

    def ticker():
        for i in range(5):
            ticks.append(i)
            time.sleep(0.002)

    def body():
        a, b = socket.socketpair()
        t = spawn(ticker)
        p = select.poll()
        p.register(a, select.POLLIN)
        assert p.poll(30) == []  # timed out; the ticker ran meanwhile
        assert len(ticks) >= 3
        spawn(b.sendall, b"x")
        assert p.poll() == [(a.fileno(), select.POLLIN)]
        p.unregister(a)
        with selectors.DefaultSelector() as sel:
            assert isinstance(sel, selectors.PollSelector)
            sel.register(a, selectors.EVENT_READ, "data")
            [(key, events)] = sel.select(1)
            assert key.data == "data" and events == selectors.EVENT_READ
        assert a.recv(1) == b"x"
        wait_all([t])
        a.close()
        b.close()

    monkeypatch.patch_all()
    try:
        main.run(body)
        with monkeypatch.Unpatched():
            assert not isinstance(select.poll(), monkeypatch._CooperativePoll)
    finally:
        monkeypatch.unpatch_all()
    assert not isinstance(select.poll(), monkeypatch._CooperativePoll)


def test_tasklet_socketserver_and_patched_thread_module():
    import _thread
    import socketserver

    from stacklesslib.socketserver import TaskletTCPServer

    seen = []

    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            seen.append(stackless.getcurrent())
            self.wfile.write(self.rfile.readline().upper())

    def client(port, k, out):
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"line %d\n" % k)
            out.append(s.makefile("rb").readline())

    def body():
        out = []
        server = TaskletTCPServer(("127.0.0.1", 0), Handler)
        srv = spawn(server.serve_forever, 0.01)
        lock = _thread.allocate_lock()  # a tasklet lock now
        assert isinstance(lock, locks.Lock)
        port = server.server_address[1]
        ids = [_thread.start_new_thread(client, (port, k, out)) for k in range(5)]
        assert len(set(ids)) == 5
        while len(out) < 5:
            app.tasklet_sleep(0.001)
        server.shutdown()  # from a tasklet: serve_forever's loop sees it and returns
        wait_all([srv])
        server.server_close()
        return out

    monkeypatch.patch_all()
    try:
        out = main.run(body)
    finally:
        monkeypatch.unpatch_all()
    assert sorted(out) == [b"LINE %d\n" % k for k in range(5)]
    assert len(set(map(id, seen))) == 5 and stackless.main not in seen
    assert not isinstance(_thread.allocate_lock(), locks.Lock)


def test_peer_reset_half_close_and_slow_client():
    out = {}

    def reset_client(port):
        s = cosocket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.sendall(b"partial")  # no newline, then a reset
        s.close()

    def half_close_client(port):
        with cosocket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"last line\n")
            s.shutdown(socket.SHUT_WR)  # the server sees EOF, may still answer
            data = b""
            while True:
                chunk = s.recv(100)
                if not chunk:
                    break
                data += chunk
            out["half"] = data

    def slow_client(port):
        with cosocket.create_connection(("127.0.0.1", port)) as s:
            for byte in b"slow\n":
                s.send(bytes([byte]))
                app.tasklet_sleep(0.002)
            out["slow"] = s.recv(100)

    def body():
        lsock = listener()
        handlers = []
        server = spawn(echo_server, lsock, handlers)
        port = lsock.getsockname()[1]
        clients = [spawn(f, port) for f in (reset_client, half_close_client, slow_client)]
        wait_all(clients)
        wait_all(handlers)
        lsock.close()
        wait_all([server])

    main.run(body)
    assert out == {"half": b"LAST LINE\n", "slow": b"SLOW\n"}


def test_close_while_another_tasklet_waits_and_kill_while_blocked():
    errors = []

    def reader(sock):
        try:
            sock.recv(10)
        except OSError as e:
            errors.append(e.errno)

    def body():
        a, b = cosocket.socketpair()
        t = spawn(reader, a)
        app.tasklet_sleep(0.001)
        a.close()  # wakes the reader with EBADF
        wait_all([t])
        c, d = cosocket.socketpair()
        t2 = spawn(reader, c)
        app.tasklet_sleep(0.001)
        t2.kill()  # killed in recv(): the socket stays usable
        d.sendall(b"ok")
        assert c.recv(2) == b"ok"
        for s in (b, c, d):
            s.close()

    main.run(body)
    assert errors == [9]  # EBADF


def test_timeouts_on_sockets():
    def body():
        a, b = cosocket.socketpair()
        a.settimeout(0.01)
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):  # socket.timeout is TimeoutError
            a.recv(10)
        assert time.monotonic() - t0 >= 0.01
        a.setblocking(False)
        with pytest.raises(BlockingIOError):
            a.recv(10)
        assert a.gettimeout() == 0.0
        a.close()
        b.close()

    main.run(body)


def test_many_idle_connections_and_running_out_of_descriptors():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    accepted, refused = [], []

    def server(lsock):
        while True:
            try:
                conn, _ = lsock.accept()
            except OSError as e:
                if e.errno == 9:
                    return  # the listener was closed
                refused.append(e.errno)  # EMFILE: the server keeps serving
                app.tasklet_sleep(0.001)
                continue
            accepted.append(conn)

    def body():
        lsock = listener()
        srv = spawn(server, lsock)
        clients = []
        base = open_fds()
        resource.setrlimit(resource.RLIMIT_NOFILE, (base + 300, hard))
        try:
            for _ in range(200):  # idle connections: each costs two descriptors here
                try:
                    clients.append(cosocket.create_connection(lsock.getsockname()))
                except OSError:
                    break
                app.tasklet_sleep(0)
            app.tasklet_sleep(0.01)
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        for c in clients[:20]:
            c.close()
        n = len(accepted)
        extra = cosocket.create_connection(lsock.getsockname())
        while len(accepted) == n:
            app.tasklet_sleep(0.001)  # served again once descriptors are free
        extra.close()
        for s in clients[20:] + accepted:
            s.close()
        lsock.close()
        wait_all([srv])
        return len(clients)

    made = main.run(body)
    assert made > 100
    if "vgpreload" in os.environ.get("LD_PRELOAD", ""):
        return  # valgrind keeps descriptors of its own and fakes the limit: no EMFILE here
    assert refused and set(refused) == {24}  # EMFILE, reported to the accepting tasklet


def test_call_on_thread_blocks_only_the_caller():
    log = []

    def ticker():
        for i in range(5):
            log.append(i)
            app.tasklet_sleep(0.002)

    def body():
        t = spawn(ticker)
        result = threadpool.call_on_thread(lambda: (time.sleep(0.03), "done")[1])
        log.append(result)
        with pytest.raises(ZeroDivisionError):
            threadpool.call_on_thread(lambda: 1 / 0)
        wait_all([t])

    main.run(body)
    assert log.index("done") > 2  # the ticker ran while the thread worked


def test_waiting_for_tasklets_and_futures():
    def body():
        slow = wait.ValueTasklet(lambda: (app.tasklet_sleep(0.02), "slow")[1])()
        fast = wait.ValueTasklet(lambda: "fast")()
        assert wait.any([slow, fast]) is fast
        assert wait.wait([slow], timeout=0.001) == []
        assert slow.get() == "slow" and slow.join()
        failing = wait.ValueTasklet(lambda: 1 / 0)()
        with pytest.raises(ZeroDivisionError):
            failing.get()
        with concurrent.futures.ThreadPoolExecutor(2) as ex:
            futures = [ex.submit(time.sleep, 0.01), ex.submit(time.sleep, 0.02)]
            assert wait.all(futures, timeout=5)
        order = [w for w in wait.iwait([slow, fast])]
        assert set(order) == {slow, fast}

    main.run(body)


def test_magic_runs_a_threaded_program_on_tasklets_in_one_thread():
    from conftest import ROOT, run_python

    proc = run_python("""
        import runpy, sys
        sys.argv = ["-m", %r]
        runpy.run_module("stacklesslib.magic", run_name="__main__")
        """ % str(ROOT / "tests" / "programs" / "threaded_app.py"), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "results [0, 2, 4, 6, 8] counter 300 os threads 1",
        "[b'hello from /0', b'hello from /1', b'hello from /2', b'hello from /3', "
        "b'hello from /4']",
        "done 1",
    ]


def test_concurrent_url_fetch_example():
    import re

    from conftest import ROOT, run_python

    proc = run_python(None, script=ROOT / "examples" / "fetch_urls.py", timeout=120)
    assert proc.returncode == 0, proc.stderr
    m = re.search(r"(\d+) URLs in ([\d.]+) s \(one at a time they would take ([\d.]+) s\)",
                  proc.stdout)
    assert m and m.group(1) == "10"
    # the ten slow pages were fetched at the same time, not one after the other
    assert float(m.group(2)) < float(m.group(3)) / 3


def test_tls_sockets_are_cooperative(tmp_path):
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("the openssl command makes the test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost"],
                   check=True, capture_output=True)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(cert)
    log, seen = [], []
    refused = None
    go = stackless.channel()

    def serve(lsock):
        conn, _ = lsock.accept()
        go.receive()  # a slow server: the client waits in its handshake meanwhile
        with server_ctx.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(tls.recv(100).upper())

    def client(port):
        with socket.create_connection(("127.0.0.1", port)) as s:
            with client_ctx.wrap_socket(s, server_hostname="localhost") as tls:
                tls.sendall(b"over tls")
                log.append(tls.recv(100))

    def body():
        nonlocal refused
        with socket.socket() as probe:  # a port nobody listens on
            probe.bind(("127.0.0.1", 0))
            closed_port = probe.getsockname()[1]
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen()
        server = spawn(serve, lsock)
        cl = spawn(client, lsock.getsockname()[1])
        while go.balance == 0 or not cl.blocked:
            app.tasklet_sleep(0.001)  # until both wait: the client inside its handshake
        seen.append(not log)  # this tasklet runs while the handshake waits
        go.send(None)
        wait_all([server, cl])
        # an unconnected TLS socket connects (TCP, then the handshake) cooperatively too
        server = spawn(serve, lsock)
        spawn(go.send, None)
        with client_ctx.wrap_socket(socket.socket(), server_hostname="localhost") as tls:
            tls.connect(lsock.getsockname())
            tls.sendall(b"connected later")
            log.append(tls.recv(100))
        with client_ctx.wrap_socket(socket.socket(), server_hostname="localhost") as tls:
            refused = tls.connect_ex(("127.0.0.1", closed_port))
        wait_all([server])
        lsock.close()

    monkeypatch.patch_all()
    try:
        assert ssl.SSLContext.sslsocket_class.__module__ == "stacklesslib.ssl"
        main.run(body)
    finally:
        monkeypatch.unpatch_all()
    assert log == [b"OVER TLS", b"CONNECTED LATER"] and seen == [True]
    assert refused == errno.ECONNREFUSED
    assert ssl.SSLContext.sslsocket_class is ssl.SSLSocket


TEN_THOUSAND_CLIENT = r"""
import socket, struct, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
for i, s in enumerate(socks):
    s.sendall(b"%d\n" % i)
for i, s in enumerate(socks):
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(100)
        assert chunk, "end of file before the echo"
        data += chunk
    assert data == b"%d\n" % i, data
print("echoed", flush=True)
sys.stdin.readline()  # all stay open and idle while the server measures
for i, s in enumerate(socks):
    if i % 10 == 0:  # a tenth vanish with a reset, the rest close
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
"""


def test_ten_thousand_connections_then_every_peer_goes_away():
    """10,000 connections (500 under valgrind), one tasklet each, echo a line and then sit
    idle; the peers then close or reset. Afterwards no descriptor, tasklet or memory block
    is left behind (the client is another process: one process could not hold 20,000
    descriptors under the usual limit)."""
    import subprocess
    import sys

    n = 500 if "vgpreload" in os.environ.get("LD_PRELOAD", "") else 10000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < n + 200:
        pytest.skip("the descriptor limit is below %d" % (n + 200))
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    stats = {"echoed": 0, "ended": 0, "errors": 0}

    def handle(conn):
        try:
            line = b""
            while not line.endswith(b"\n"):
                line += conn.recv(100)
            conn.sendall(line)
            stats["echoed"] += 1
            while conn.recv(100):
                pass
        except ConnectionResetError:
            stats["errors"] += 1
        finally:
            conn.close()
            stats["ended"] += 1

    def accepter(lsock, handlers):
        while len(handlers) < n:
            conn, _ = lsock.accept()
            handlers.append(spawn(handle, conn))

    def run_round():
        lsock = listener()
        handlers = []
        acc = spawn(accepter, lsock, handlers)
        proc = subprocess.Popen([sys.executable, "-c", TEN_THOUSAND_CLIENT,
                                 str(lsock.getsockname()[1]), str(n)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert threadpool.call_on_thread(proc.stdout.readline) == "echoed\n"
            wait_all([acc])
            assert len(handlers) == n and stats["echoed"] == n
            assert all(t.blocked for t in handlers)  # idle, each parked in recv()
            assert open_fds() >= n
            proc.stdin.write("close\n")
            proc.stdin.flush()
            assert threadpool.call_on_thread(proc.wait) == 0
        finally:
            proc.kill()
            proc.wait()
            proc.stdin.close()
            proc.stdout.close()
        wait_all(handlers)
        lsock.close()

    def body():
        run_round()  # warms up: the first round grows caches and the poller's table
        gc.collect()
        blocks, fds = sys.getallocatedblocks(), open_fds()
        stats.update(echoed=0, ended=0, errors=0)
        run_round()
        gc.collect()
        assert open_fds() == fds
        return sys.getallocatedblocks() - blocks

    import gc

    try:
        grown = main.run(body)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert stats["ended"] == n
    assert 0 < stats["errors"] <= n // 10  # the resets (some may land as a plain close)
    assert stackless.getruncount() == 1
    assert grown < n // 100, "%d memory blocks more after %d connections" % (grown, n)

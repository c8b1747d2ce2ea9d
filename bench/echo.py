"""Line-echo server benchmark: one task per connection, many concurrent connections.

    python bench/echo.py [--conns 10000] [--seconds 5] [--runtimes stackless,gevent,...]

For each runtime a server process echoes what each connection sends (one tasklet,
greenlet, coroutine or tealet per connection); one load-generator process (asyncio with
uvloop when installed, protocol callbacks: the same client for every server) opens all the
connections, then on each connection sends a line and waits for its echo, again and again,
for the given time. Reported: requests per second, p50 and p99 latency, and the server's
RSS growth per connection (measured once all connections are open). Server on one core,
client on the other.
"""
import argparse
import json
import os
import select
import socket
import statistics
import subprocess
import sys
import time

RUNTIMES = ["stackless", "gevent", "asyncio", "uvloop", "tealetio"]
BACKLOG = 4096


def listener():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(BACKLOG)
    return s


def announce(sock):
    print(sock.getsockname()[1], flush=True)


# ---- servers -------------------------------------------------------------------------------


def serve_stackless():
    import stackless
    from stacklesslib import main
    from stacklesslib import socket as cosocket

    def handle(conn):
        recv, sendall = conn.recv, conn.sendall
        try:
            while True:
                data = recv(4096)
                if not data:
                    break
                sendall(data)
        except OSError:
            pass
        conn.close()

    def server():
        lsock = cosocket.socket(fileno=listener().detach())
        announce(lsock)
        while True:
            conn, _ = lsock.accept()
            stackless.tasklet(handle)(conn)

    main.run(server)


def serve_gevent():
    from gevent import monkey

    monkey.patch_all()
    import gevent

    def handle(conn):
        try:
            while True:
                data = conn.recv(4096)
                if not data:
                    break
                conn.sendall(data)
        except OSError:
            pass
        conn.close()

    lsock = socket.socket(fileno=listener().detach())
    announce(lsock)
    while True:
        conn, _ = lsock.accept()
        gevent.spawn(handle, conn)


def serve_asyncio(uvloop=False):
    import asyncio

    async def handle(reader, writer):
        try:
            while True:
                data = await reader.read(4096)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        writer.close()

    async def main():
        server = await asyncio.start_server(handle, sock=listener(), backlog=BACKLOG)
        announce(server.sockets[0])
        await server.serve_forever()

    if uvloop:
        import uvloop as uv

        uv.run(main())
    else:
        asyncio.run(main())


def serve_tealetio():
    import tealetio

    def entry():
        sched = tealetio.get_running_scheduler()

        def handle(conn):
            try:
                while True:
                    data = sched.sock_recv(conn, 4096)
                    if not data:
                        break
                    sched.sock_sendall(conn, data)
            except OSError:
                pass
            conn.close()

        lsock = listener()
        lsock.setblocking(False)
        announce(lsock)
        while True:
            conn, _ = sched.sock_accept(lsock)
            conn.setblocking(False)
            sched.spawn(lambda conn=conn: handle(conn))

    tealetio.run(entry, scheduler_factory=tealetio.SelectorScheduler)


SERVERS = {"stackless": serve_stackless, "gevent": serve_gevent, "asyncio": serve_asyncio,
           "uvloop": lambda: serve_asyncio(True), "tealetio": serve_tealetio}


# ---- the load generator ----------------------------------------------------------------------


def client(port, conns, seconds):
    import asyncio

    try:
        import uvloop
    except ImportError:
        uvloop = None
    line = b"x" * 40 + b"\n"
    latencies = []
    state = {"measuring": False, "count": 0}
    clock = time.perf_counter

    class Conn(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport
            self.buf = b""

        def go(self):
            self.sent = clock()
            self.transport.write(line)

        def data_received(self, data):
            self.buf += data
            if self.buf.endswith(b"\n"):
                self.buf = b""
                now = clock()
                if state["measuring"]:
                    latencies.append(now - self.sent)
                    state["count"] += 1
                self.go()

    async def main():
        loop = asyncio.get_running_loop()
        protos = []
        for i in range(0, conns, 500):
            batch = [loop.create_connection(Conn, "127.0.0.1", port)
                     for _ in range(min(500, conns - i))]
            for _, proto in await asyncio.gather(*batch):
                protos.append(proto)
        print("READY", flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)
        for p in protos:
            p.go()
        await asyncio.sleep(1.0)  # warm up
        state["measuring"] = True
        t0 = clock()
        await asyncio.sleep(seconds)
        state["measuring"] = False
        took = clock() - t0
        for p in protos:
            p.transport.close()
        return state["count"] / took

    rps = uvloop.run(main()) if uvloop else asyncio.run(main())
    latencies.sort()
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 100 else [0] * 99
    print(json.dumps({"rps": rps, "p50": q[49], "p99": q[98], "n": len(latencies)}), flush=True)


# ---- the driver ------------------------------------------------------------------------------


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def measure(runtime, conns, seconds):
    server = subprocess.Popen([sys.executable, __file__, "--serve", runtime],
                              stdout=subprocess.PIPE, text=True)
    try:
        os.sched_setaffinity(server.pid, {0})
    except (AttributeError, OSError):
        pass
    port = int(server.stdout.readline())
    time.sleep(0.2)
    rss0 = rss_kib(server.pid)
    cl = subprocess.Popen([sys.executable, __file__, "--client", str(port), str(conns),
                           str(seconds)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True)
    try:
        os.sched_setaffinity(cl.pid, {1})
    except (AttributeError, OSError):
        pass
    try:
        ready = cl.stdout.readline()
        if not ready.startswith("READY"):
            raise RuntimeError("client failed for %s: %r" % (runtime, ready))
        time.sleep(0.5)
        rss1 = rss_kib(server.pid)
        cl.stdin.write("go\n")
        cl.stdin.flush()
        result = json.loads(cl.stdout.readline())
    finally:
        cl.kill()
        cl.wait()
        server.kill()
        server.wait()
    result["rss_per_conn"] = (rss1 - rss0) * 1024 / conns
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--runtimes", default=",".join(RUNTIMES))
    ap.add_argument("--serve")
    ap.add_argument("--client", nargs=3)
    args = ap.parse_args()
    if args.serve:
        return SERVERS[args.serve]()
    if args.client:
        port, conns, seconds = args.client
        return client(int(port), int(conns), float(seconds))
    print("CPython %d.%d, %d connections, %g s per runtime (after 1 s warm-up)"
          % (sys.version_info[:2] + (args.conns, args.seconds)))
    print()
    print("| server | requests/s | p50 latency | p99 latency | RSS per connection |")
    print("|---|---|---|---|---|")
    for runtime in args.runtimes.split(","):
        try:
            r = measure(runtime, args.conns, args.seconds)
        except Exception as e:  # a runtime that is not installed
            print("| %s | (%s) | | | |" % (runtime, str(e).splitlines()[0][:60]))
            continue
        print("| %s | %s | %.2f ms | %.2f ms | %s B |" % (
            runtime, format(int(r["rps"]), ","), r["p50"] * 1e3, r["p99"] * 1e3,
            format(int(r["rss_per_conn"]), ",")), flush=True)


if __name__ == "__main__":
    sys.exit(main())

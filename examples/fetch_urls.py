"""Dalke's concurrent URL fetch, for today's Python: one tasklet per URL, plain urllib.

    python examples/fetch_urls.py [URL ...]

With no URLs it serves a few slow pages itself (a local http.server, each page takes
0.2 s) and fetches them all at once: the total time is that of one page, not their sum.
monkeypatch.patch_all() makes urllib's sockets cooperative; nothing else changes.
"""
import sys
import time

from stacklesslib import main, monkeypatch

monkeypatch.patch_all()

import http.server  # noqa: E402 (after patching, as a patched program would)
import socketserver  # noqa: E402
import threading  # noqa: E402
import urllib.request  # noqa: E402

import stackless  # noqa: E402


class SlowPage(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        time.sleep(0.2)  # a slow backend (a tasklet sleep: the server serves others)
        body = ("page %s\n" % self.path).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    request_queue_size = 128  # (the default 5 would make most clients retry their SYN)


def fetch(url, results):
    t0 = time.monotonic()
    with urllib.request.urlopen(url, timeout=10) as r:
        data = r.read()
    results.append((url, len(data), time.monotonic() - t0))


def run(urls):
    server = None
    if not urls:
        server = Server(("127.0.0.1", 0), SlowPage)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        urls = ["http://127.0.0.1:%d/%d" % (server.server_address[1], i) for i in range(10)]
    results = []
    t0 = time.monotonic()
    tasklets = [stackless.tasklet(fetch)(url, results) for url in urls]
    while any(t.alive for t in tasklets):
        time.sleep(0.01)
    total = time.monotonic() - t0
    for url, size, took in sorted(results):
        print("%-40s %6d bytes  %.2f s" % (url, size, took))
    print("%d URLs in %.2f s (one at a time they would take %.2f s)"
          % (len(results), total, sum(r[2] for r in results)))
    if server is not None:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main.run(run, sys.argv[1:])

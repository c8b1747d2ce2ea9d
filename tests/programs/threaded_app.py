"""An ordinary threaded program (threads, queue, locks, time.sleep, a threading HTTP
server and urllib clients); tests run it unchanged under `python -m stacklesslib.magic`."""
import queue, threading, time, socket, http.server, socketserver, urllib.request, sys
q = queue.Queue()
native = set()
def producer(n):
    for i in range(n):
        time.sleep(0.001)
        q.put(i)
    q.put(None)
results = []
def consumer():
    native.add(threading.get_native_id())
    while True:
        item = q.get()
        if item is None:
            break
        results.append(item * 2)
lock = threading.Lock()
counter = [0]
def bump():
    native.add(threading.get_native_id())
    for _ in range(100):
        with lock:
            v = counter[0]; time.sleep(0); counter[0] = v + 1
ths = [threading.Thread(target=producer, args=(5,)), threading.Thread(target=consumer)]
ths += [threading.Thread(target=bump) for _ in range(3)]
for t in ths: t.start()
for t in ths: t.join()
print("results", results, "counter", counter[0], "os threads", len(native | {threading.get_native_id()}))
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello from " + self.path.encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
srv.daemon_threads = True
threading.Thread(target=srv.serve_forever, daemon=True).start()
port = srv.server_address[1]
fetched = []
def fetch(path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path)) as r:
        fetched.append(r.read())
fs = [threading.Thread(target=fetch, args=("/%d" % i,)) for i in range(5)]
for t in fs: t.start()
for t in fs: t.join()
print(sorted(fetched))
srv.shutdown(); srv.server_close()
print("done", threading.active_count())

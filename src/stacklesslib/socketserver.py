"""socketserver with a tasklet per request: the mix-in of the published stacklesslib.

    from stacklesslib.socketserver import TaskletTCPServer
    server = TaskletTCPServer(("127.0.0.1", 8000), MyHandler)
    stacklesslib.main.run(server.serve_forever)

`TaskletMixIn` is `socketserver.ThreadingMixIn`'s counterpart: `process_request()` starts a
tasklet that handles the request and closes it. The server's own socket should be a
cooperative one (`monkeypatch.patch_socket()`, or patch_all()) so that `serve_forever()`
and the handlers block only their tasklets.
"""
import socketserver as _socketserver

import stackless


class TaskletMixIn:
    """Handle each request in a new tasklet."""

    def process_request_tasklet(self, request, client_address):
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def process_request(self, request, client_address):
        stackless.tasklet(self.process_request_tasklet)(request, client_address)


class TaskletTCPServer(TaskletMixIn, _socketserver.TCPServer):
    pass


class TaskletUDPServer(TaskletMixIn, _socketserver.UDPServer):
    pass

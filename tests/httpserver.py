"""A real HTTP server on 127.0.0.1 for tests: the stand-in for hosts the app talks to."""

import contextlib
import threading
from http.server import ThreadingHTTPServer


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a client that timed out and left is what several tests are about


@contextlib.contextmanager
def local_server(handler, **attributes):
    """Serve ``handler`` on a free port; yields the server with ``url``, a ``stop`` event (set
    when the test ends, so a handler waiting on it returns) and ``attributes`` for the handler."""
    server = QuietServer(("127.0.0.1", 0), handler)
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    server.stop = threading.Event()
    for name, value in attributes.items():
        setattr(server, name, value)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        yield server
    finally:
        server.stop.set()
        server.shutdown()
        server.server_close()

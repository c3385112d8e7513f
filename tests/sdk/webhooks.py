"""A tiny HTTP server on 127.0.0.1:0 that collects webhook deliveries."""

import queue
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY_BYTES = 1024 * 1024


@dataclass
class Delivery:
    """One POST as received: path, headers (a plain dict) and the raw body bytes."""

    path: str
    headers: dict
    body: bytes


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.send_error(413)
            return
        body = self.rfile.read(length)
        self.server.deliveries.put(Delivery(self.path, dict(self.headers.items()), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class WebhookReceiver:
    """Collects deliveries in a thread; `wait_for` blocks until a matching one arrives."""

    def __init__(self):
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.deliveries = queue.Queue()
        self._seen = []
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self):
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/hook"

    def wait_for(self, matches, timeout_s):
        """The first delivery (already seen or arriving within timeout_s) that `matches`."""
        deadline = time.monotonic() + timeout_s
        while True:
            for delivery in self._seen:
                if matches(delivery):
                    return delivery
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                self._seen.append(self._server.deliveries.get(timeout=remaining))
            except queue.Empty:
                return None

    @property
    def seen(self):
        """Every delivery received so far by `wait_for`."""
        return list(self._seen)

    def close(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

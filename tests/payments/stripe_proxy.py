"""A proxy in front of the sandbox, as a real network or load balancer is: forwards every
request to the sandbox over real HTTP, except those that a test's rule answers itself
(a 500 before Stripe processed anything, a body trickled out slowly, a connection
dropped after the request was sent). The `stripe_proxy` fixture (tests/payments/
conftest.py) points the gateway at one."""

import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

# (proxy, method, path, how many such requests so far, handler, body) -> whether the
# rule answered the request itself (else it is forwarded).
Rule = Callable[["StripeProxy", str, str, int, "Handler", bytes], bool]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        proxy = self.server.proxy
        body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
        with proxy.lock:
            key = (self.command, self.path.split("?")[0])
            proxy.seen[key] = proxy.seen.get(key, 0) + 1
            count = proxy.seen[key]
        if proxy.rule is not None and proxy.rule(proxy, self.command, key[1], count, self, body):
            return
        self.forward(body)

    def forward(self, body: bytes) -> None:
        proxy = self.server.proxy
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host",)}
        try:
            answer = requests.request(
                self.command, proxy.upstream + self.path, data=body, headers=headers, timeout=60
            )
        except requests.RequestException:
            if proxy.stopped:  # the sandbox stopped behind a request its test gave up on
                return
            raise
        self.send_response(answer.status_code)
        for name, value in answer.headers.items():
            if name.lower() not in ("content-length", "transfer-encoding", "connection",
                                    "content-encoding"):  # fmt: skip
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    def answer_json(self, status: int, payload: bytes, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def answer_500(self) -> None:
        payload = b'{"error": {"type": "api_error", "message": "injected by the review proxy"}}'
        self.answer_json(500, payload, **{"Stripe-Should-Retry": "true"})

    def drop_connection(self) -> None:
        """Closes the connection without an answer, as a network failure after the
        request was sent does."""
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def answer_trickled(self, payload: bytes, *, every: float) -> None:
        """A 200 whose body comes one byte at a time, `every` seconds apart."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        for i in range(len(payload)):
            self.wfile.write(payload[i : i + 1])
            self.wfile.flush()
            time.sleep(every)

    do_GET = do_POST = do_DELETE = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # stop() does not wait for a handler still trickling or hanging: its test is over.
    block_on_close = False
    proxy: "StripeProxy"


class StripeProxy:
    def __init__(self, upstream: str, rule: Rule | None = None, *, port: int = 0) -> None:
        self.upstream = upstream
        self.rule = rule
        self.lock = threading.Lock()
        self.seen: dict[tuple[str, str], int] = {}
        self.stopped = False
        self.server = _Server(("127.0.0.1", port), Handler)
        self.server.proxy = self
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.stopped = True
        self.server.shutdown()
        self.server.server_close()
